"""The compiled event consumer of ``xhdr log``: consumer.c, built here with gcc, and its command line.

Decoding each ring-buffer record in Python costs about 36 us, more than the kernel spends extracting the
request, so the data path is a small C program that maps the extractor's ring buffer itself and writes the
same lines as ``harness.log.format.event_json`` and ``event_line``
(tests/test_consumer.py compares them byte for byte).

The binary is built at set-up, or on first use, and cached (harness/core/cbuild.py).
"""

from __future__ import annotations

import enum
from pathlib import Path

from harness.core.cbuild import built, gcc_command
from harness.core.config import ExtractorConfig

SOURCE = Path(__file__).with_name("consumer.c")
# No -Werror: a newer gcc with a new warning must not stop `xhdr log`; the test builds with it.
CFLAGS = ("-O2", "-std=c11", "-Wall", "-Wextra")
# OpenSSL's libcrypto: HMAC-SHA256 for --audit (Debian's libssl-dev, installed at set-up).
LIBRARIES = ("-lcrypto",)


class LogFormat(enum.StrEnum):
    """What the consumer writes per event: a JSON line, a text line, or the record itself (docs/RECORDS.md)."""

    JSON = "json"
    TEXT = "text"
    RECORDS = "records"


def compile_command(output: Path, extra_flags: tuple[str, ...] = ()) -> list[str]:
    """The gcc command line that builds consumer.c into ``output`` (the test adds -Werror)."""
    return gcc_command(SOURCE, output, (*CFLAGS, *extra_flags), LIBRARIES)


def build_consumer() -> Path:
    """consumer.c built once per version of it, of bpf/xhdr_event.h and of the flags (harness/core/cbuild.py).

    The consumer does not depend on the extractor's -D limits, so one binary serves every configuration (the
    two it needs to find the parts of a record's data come on its command line).
    """
    return built(SOURCE, CFLAGS, LIBRARIES)


def consumer_argv(
    config: ExtractorConfig,
    ring_fd: int,
    *,
    fmt: LogFormat,
    count: int | None = None,
    output: Path | None = None,
    audit_key: Path | None = None,
) -> list[str]:
    """The consumer's command line for a loaded extractor's ring buffer (``ring_fd`` must be inherited).

    The header rules go in slot order: slot ``i`` of a record belongs to the ``i``-th ``--header``.
    """
    argv = [
        str(build_consumer()),
        "--ring-fd",
        str(ring_fd),
        "--ring-bytes",
        str(config.ring_bytes),
        "--max-target-len",
        str(config.max_target_len),
        "--max-value-len",
        str(config.max_value_len),
    ]
    argv += _common_options(fmt, count, output, audit_key)
    if config.responses:
        argv.append("--responses")  # requests' X-Request-IDs then wait for their responses' lines
    for rule in config.headers:
        argv += ["--header", f"{rule.name}:{rule.mode.name.lower()}"]
    return argv


def decoder_argv(records: Path, *, fmt: LogFormat, output: Path | None = None) -> list[str]:
    """The consumer's command line that renders a records file as the lines ``xhdr log`` would have written."""
    return [str(build_consumer()), "--input", str(records), *_common_options(fmt, None, output, None)]


def _common_options(
    fmt: LogFormat, count: int | None, output: Path | None, audit_key: Path | None
) -> list[str]:
    argv = ["--format", fmt.value]
    if count is not None:
        argv += ["--count", str(count)]
    if output is not None:
        argv += ["--output", str(output)]
    if audit_key is not None:
        argv += ["--audit", str(audit_key)]
    return argv


if __name__ == "__main__":
    print(build_consumer())
