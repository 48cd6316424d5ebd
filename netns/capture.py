"""Collect the frames that arrive at a lab host's veth end, as the wire carried them.

Proving that ``Lab.send`` delivers frames byte-exact needs a receiver below IP: an AF_PACKET socket
inside the host's namespace. One kernel detail matters: on receive, the kernel moves an outer VLAN
tag out of the frame into packet metadata before packet sockets see it (XDP runs earlier and still
sees the tag). The tag is read back from PACKET_AUXDATA and reinserted, so a captured frame equals the
sent one.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from types import TracebackType
from typing import Self

from harness.core.wait import wait_until
from netns.lab import ETH_P_ALL, Host
from netns.nsenter import socket_in

SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
ETH_P_8021Q = 0x8100
AUXDATA = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata
_MAX_FRAME = 65536


def with_vlan_tag(frame: bytes, ancillary: list[tuple[int, int, bytes]]) -> bytes:
    """Puts back the outer VLAN tag the kernel moved into the packet's metadata (PACKET_AUXDATA), given the
    ancillary data of the ``recvmsg`` that read ``frame`` from a socket with PACKET_AUXDATA on."""
    for level, kind, data in ancillary:
        if level != SOL_PACKET or kind != PACKET_AUXDATA or len(data) < AUXDATA.size:
            continue
        status, _, _, _, _, tci, tpid = AUXDATA.unpack_from(data)
        if status & TP_STATUS_VLAN_VALID:
            if not status & TP_STATUS_VLAN_TPID_VALID:
                tpid = ETH_P_8021Q
            return frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]
    return frame


class Capture:
    """Frames received on ``host``'s veth end (the host's own outgoing frames are skipped).

    Open it before sending; the kernel queues frames on the socket until :meth:`drain` reads them, so
    no thread is needed. Use as a context manager so the socket is closed.
    """

    def __init__(self, host: Host) -> None:
        self.host = host
        self.frames: list[bytes] = []
        # Protocol 0: a packet socket made with ETH_P_ALL receives from every interface (the namespace's
        # loopback included) until bind() narrows it to one, so it is made deaf and bound with the protocol.
        sock = socket_in(host.netns, socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind((host.ifname, ETH_P_ALL))  # CPython puts the protocol in network order itself
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock = sock

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def drain(self) -> list[bytes]:
        """Read every frame queued so far, append them to :attr:`frames`, and return the new ones."""
        new = []
        aux_size = socket.CMSG_SPACE(AUXDATA.size)
        while True:
            try:
                frame, ancillary, _, address = self._sock.recvmsg(_MAX_FRAME, aux_size)
            except BlockingIOError:
                break
            if address[2] == PACKET_OUTGOING:
                continue
            new.append(with_vlan_tag(frame, ancillary))
        self.frames.extend(new)
        return new

    def wait_for(
        self, done: Callable[[list[bytes]], bool], timeout: float = 5.0, what: str = "frames"
    ) -> list[bytes]:
        """Drain until ``done(all frames so far)`` is true; return all frames captured."""

        def check() -> list[bytes] | None:
            self.drain()
            return self.frames if done(self.frames) else None

        return wait_until(check, timeout, f"{what} on {self.host.ifname} in {self.host.netns}")
