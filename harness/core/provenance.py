"""Where a figure comes from: the git commit of the code measured, for results that are compared over time."""

from __future__ import annotations

import subprocess
from pathlib import Path


def commit_of(directory: Path | None = None) -> str:
    """The short commit of the repository holding ``directory`` (default: the working directory), ``+`` when
    its tree has changes since; ``unknown`` outside a repository or without git."""
    where = ["-C", str(directory)] if directory is not None else []

    def git(*args: str) -> str:
        done = subprocess.run(["git", *where, *args], capture_output=True, text=True, check=True, timeout=10)
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+" if dirty else "")
