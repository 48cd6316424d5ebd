"""C programs xhdr compiles on the machine it runs on (the event consumer, the C baseline): gcc, once each.

A binary is named by a hash of its source, the headers it includes and its flags, and kept outside the
repository, so an edited source is rebuilt, an unchanged one is never compiled twice, and a read-only checkout
still works. It is written under a temporary name and renamed into place, so a concurrent build or a reader
never sees half a file.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from harness.core.errors import UserError

BPF_DIR = Path(__file__).resolve().parents[2] / "bpf"


class BuildError(UserError, RuntimeError):
    """gcc could not build a program; the message is one line with gcc's first error."""


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path(tempfile.gettempdir()) / "xhdr-cache") / "bin"


def gcc_command(source: Path, output: Path, flags: Sequence[str], libraries: Sequence[str] = ()) -> list[str]:
    """The gcc command line that builds ``source`` (which may include bpf/'s headers) into ``output``."""
    return ["gcc", *flags, f"-I{BPF_DIR}", "-o", str(output), str(source), *libraries]


def built(source: Path, flags: Sequence[str], libraries: Sequence[str] = ()) -> Path:
    """The binary of ``source`` for these flags, compiled now if no cached one matches."""
    headers = b"".join(header.read_bytes() for header in sorted(BPF_DIR.glob("*.h")))
    digest = hashlib.sha256(
        source.read_bytes() + headers + " ".join([*flags, *libraries]).encode()
    ).hexdigest()[:16]
    binary = cache_dir() / f"{source.stem}-{digest}"
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(f"{binary.name}.{os.getpid()}.tmp")
    try:
        done = subprocess.run(
            gcc_command(source, partial, flags, libraries),
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "LC_ALL": "C"},  # untranslated, so the error line can be found
        )
    except FileNotFoundError:
        raise BuildError(
            f"gcc is not installed; install it (apt-get install gcc) to build {source.name}"
        ) from None
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        lines = done.stderr.splitlines()
        errors = (line for line in lines if ": error: " in line or ": fatal error: " in line)
        raise BuildError(
            f"gcc could not build {source.name}: {next(errors, lines[0] if lines else 'no output')}"
        )
    partial.replace(binary)
    return binary
