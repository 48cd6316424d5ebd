"""Run a few lines of Python inside a named network namespace without a subprocess.

``setns(CLONE_NEWNET)`` only moves the calling thread, and a socket keeps the namespace it was
created in for its whole life, so a thread can step in, create sockets, and step out again. That is
cheaper than a subprocess for each poll, and the socket stays usable from the main namespace.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

from pyroute2 import netns as pr_netns


@contextlib.contextmanager
def inside(name: str) -> Iterator[None]:
    """Move the current thread into namespace ``name`` for the block, and always back out.

    Not pyroute2's ``pushns``/``popns``: those keep one process-wide stack (two threads would restore
    each other's namespace), save ``/proc/self`` (the main thread's namespace, not this thread's) and
    ``pushns(name)`` *creates* a missing namespace. Here the saved namespace is this thread's own, kept
    in a local, and the target is entered with flags=0, so a deleted namespace is never resurrected.
    """
    saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        pr_netns.setns(name, flags=0)
        try:
            yield
        finally:
            pr_netns.setns(saved)
    finally:
        os.close(saved)


def socket_in(name: str, family: int, type: int, proto: int = 0) -> socket.socket:
    """Create a socket that lives in namespace ``name`` (and stays there after this returns)."""
    with inside(name):
        return socket.socket(family, type, proto)
