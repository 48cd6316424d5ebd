"""Names that say which running process owns a thing, so the next xhdr run can remove what a killed one left.

A run killed with SIGKILL cannot clean up: its namespaces (netns/lab.py) and its scratch directories stay.
Everything of that kind is named ``xhdr-<pid>-<start time>-<tag>-...``; a thing whose owner is no longer
running (the pid is gone, a zombie, or now another process with another start time) is stale, and the
sweepers registered under the ``xhdr.sweepers`` entry points remove it before any command starts
(harness/cli/main.py). A thing of a live run, a parallel one or this one, is never touched.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path

NAME_PREFIX = "xhdr"
TAG_BYTES = 3  # a random tag: six hex digits
# xhdr-<pid>-<start time>-<tag>-...: the owner (pid-start time) and its pid. The tag is matched too, so the
# names of older xhdr versions (xhdr-<pid>-<tag>-..., a tag of digits only included) are never misread.
_OWNED = re.compile(rf"^{NAME_PREFIX}-((\d+)-\d+)-[0-9a-f]{{{2 * TAG_BYTES}}}-")


def owner_id(pid: int) -> str | None:
    """``PID-START`` for a running process (START: clock ticks after boot, field 22 of /proc/PID/stat).

    A pid alone does not name a process: pids are reused (pid_max may be 32768), and a stale thing whose pid
    now belongs to another process would be kept for good. None for no process, or one that has exited
    and is a zombie (it can clean up nothing any more).
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] in "ZX" else f"{pid}-{fields[19]}"


def owned_prefix() -> str:
    """``xhdr-<pid>-<start time>-<tag>``: a new name of this process, unique among its own."""
    return f"{NAME_PREFIX}-{owner_id(os.getpid())}-{secrets.token_hex(TAG_BYTES)}"


def is_stale(name: str) -> bool:
    """Whether ``name`` is an owned name whose owner no longer runs."""
    match = _OWNED.match(name)
    return match is not None and owner_id(int(match.group(2))) != match.group(1)


def scratch_directory(purpose: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary directory owned by this process (``xhdr-<owner>-<tag>-<purpose>-...``): removed when the
    block exits, and by the next run's sweeper after a SIGKILL."""
    return tempfile.TemporaryDirectory(prefix=f"{owned_prefix()}-{purpose}-")


def sweep_stale_directories() -> list[str]:
    """Remove the scratch directories of killed runs (the ``xhdr.sweepers`` entry point ``directories``).

    They hold copies of the sources, builds and logs, nothing to keep; the names removed are returned.
    """
    removed = []
    for directory in Path(tempfile.gettempdir()).glob(f"{NAME_PREFIX}-*"):
        if directory.is_dir() and is_stale(directory.name):
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory.name)
    return removed
