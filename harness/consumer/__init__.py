"""The compiled event consumer of ``xhdr log``: consumer.c, built here with gcc, and its command line.

Decoding each ring-buffer record in Python costs about 36 us, more than the kernel spends extracting the
request, so the data path is a small C program that maps the extractor's ring buffer itself and writes the
same lines as ``harness.log_format.event_json`` and ``event_line``
(tests/test_consumer.py compares them byte for byte).

The binary is built on first use and cached outside the repository, named by a hash of everything that
shapes it, so an edited source or header is rebuilt and an unchanged one is never compiled twice.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from harness.config import ExtractorConfig

SOURCE = Path(__file__).with_name("consumer.c")
BPF_DIR = Path(__file__).resolve().parents[2] / "bpf"
EVENT_HEADER = BPF_DIR / "xhdr_event.h"
# No -Werror: a newer gcc with a new warning must not stop `xhdr log`; the test builds with it.
CFLAGS = ("-O2", "-std=c11", "-Wall", "-Wextra")
# OpenSSL's libcrypto: HMAC-SHA256 for --audit (Debian's libssl-dev, installed at set-up).
LIBRARIES = ("-lcrypto",)
# The ring buffer is ringbuf_pages pages of 4 KiB (BPF_RINGBUF_OUTPUT in bpf/xhdr.c).
RING_PAGE_BYTES = 4096


class ConsumerBuildError(RuntimeError):
    """gcc could not build consumer.c; the message is one line with gcc's first error."""


def cache_dir() -> Path:
    """Where the built consumer lives: outside the repository, so a read-only checkout still works."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path(tempfile.gettempdir()) / "xhdr-cache")
    return base / "consumer"


def compile_command(output: Path, extra_flags: tuple[str, ...] = ()) -> list[str]:
    """The gcc command line that builds consumer.c into ``output``."""
    return ["gcc", *CFLAGS, *extra_flags, f"-I{BPF_DIR}", "-o", str(output), str(SOURCE), *LIBRARIES]


def build_consumer() -> Path:
    """Compiles consumer.c once per version of it, of bpf/xhdr_event.h and of the flags; returns the binary.

    The binary is written under a temporary name and renamed into place, so a concurrent build or a
    reader never sees half a file. The consumer does not depend on the extractor's -D limits, so one
    binary serves every configuration.
    """
    digest = hashlib.sha256(
        SOURCE.read_bytes() + EVENT_HEADER.read_bytes() + " ".join(CFLAGS + LIBRARIES).encode()
    ).hexdigest()[:16]
    binary = cache_dir() / f"consumer-{digest}"
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(f"{binary.name}.{os.getpid()}.tmp")
    try:
        done = subprocess.run(
            compile_command(partial),
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "LC_ALL": "C"},  # untranslated, so the error line can be found
        )
    except FileNotFoundError:
        raise ConsumerBuildError(
            "gcc is not installed; install it (apt-get install gcc) to build the event consumer"
        ) from None
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        lines = done.stderr.splitlines()
        errors = (line for line in lines if ": error: " in line or ": fatal error: " in line)
        first = next(errors, lines[0] if lines else "no output")
        raise ConsumerBuildError(f"gcc could not build {SOURCE.name}: {first}")
    partial.replace(binary)
    return binary


def consumer_argv(
    config: ExtractorConfig,
    ring_fd: int,
    *,
    json: bool,
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
        str(config.ringbuf_pages * RING_PAGE_BYTES),
        "--max-target-len",
        str(config.max_target_len),
        "--format",
        "json" if json else "text",
    ]
    if count is not None:
        argv += ["--count", str(count)]
    if output is not None:
        argv += ["--output", str(output)]
    if audit_key is not None:
        argv += ["--audit", str(audit_key)]
    for rule in config.headers:
        argv += ["--header", f"{rule.name}:{rule.mode.name.lower()}"]
    return argv


if __name__ == "__main__":
    print(build_consumer())
