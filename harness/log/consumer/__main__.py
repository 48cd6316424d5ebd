"""``python -m harness.log.consumer``: builds the consumer ahead of its first use (set-up runs this)."""

from harness.log.consumer import build_consumer

print(build_consumer())
