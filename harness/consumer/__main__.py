"""``python -m harness.consumer``: builds the consumer ahead of its first use (set-up runs this)."""

from harness.consumer import build_consumer

print(build_consumer())
