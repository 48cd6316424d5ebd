"""Sockets that live in a named network namespace, made without a subprocess.

A socket keeps the namespace it was created in for its whole life, so a thread can step in
(``harness.core.namespace.inside``), create sockets, and step out again. That is cheaper than a subprocess for
each poll, and the socket stays usable from the main namespace.
"""

from __future__ import annotations

import socket

from harness.core.namespace import inside

__all__ = ["inside", "socket_in"]


def socket_in(name: str, family: int, type: int, proto: int = 0) -> socket.socket:
    """Create a socket that lives in namespace ``name`` (and stays there after this returns)."""
    with inside(name):
        return socket.socket(family, type, proto)
