"""Stepping one thread into a named network namespace and back, for calls that act on "this" namespace."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from pyroute2 import netns as pr_netns


@contextlib.contextmanager
def inside(name: str | None) -> Iterator[None]:
    """Move the current thread into namespace ``name`` for the block, and always back out (None: stay).

    ``setns(CLONE_NEWNET)`` only moves the calling thread. Not pyroute2's ``pushns``/``popns``: those keep
    one process-wide stack (two threads would restore each other's namespace), save ``/proc/self`` (the main
    thread's namespace, not this thread's) and ``pushns(name)`` *creates* a missing namespace. Here the saved
    namespace is this thread's own, kept in a local, and the target is entered with flags=0, so a deleted
    namespace is never resurrected.
    """
    if name is None:
        yield
        return
    saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        pr_netns.setns(name, flags=0)
        try:
            yield
        finally:
            pr_netns.setns(saved)
    finally:
        os.close(saved)
