"""The user-space half of the example parser tests/objects/reqline.bpf.c: what a user of xhdr writes for it.

``decode`` turns one of its ring-buffer records into the fields it logs; ``expected`` says, from a frame's
bytes alone, which records it should write for that frame. ``as_logged`` is the decoder for the other oracle,
xhdr's reference. ``xhdr fuzz --object reqline.bpf.o --ring lines
--decoder tests/objects/reqline.py:decode --oracle tests/objects/reqline.py:expected`` holds the one to the
other on generated frames, as tests/test_example_parser.py does in CI.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

RECORD = struct.Struct("<BBBB16s64s")  # struct request_line
METHOD_MAX = 16
TARGET_MAX = 64
HTTP_PORT = 80
ETHERNET = 14
IPV4, IPV6, TCP = 0x0800, 0x86DD, 6
TARGET_ENDS = b" \r\n"


class RequestLine(NamedTuple):
    method: bytes
    target: bytes
    truncated: bool  # the target was longer than TARGET_MAX bytes


def decode(record: bytes) -> RequestLine:
    """One record the program wrote."""
    method_len, target_len, truncated, _, method, target = RECORD.unpack(record)
    return RequestLine(method[:method_len], target[:target_len], bool(truncated))


def as_logged(record: bytes) -> dict[str, str]:
    """One record as the fields ``xhdr log --json`` names them: for ``xhdr fuzz --object`` without ``--oracle``,
    which holds the program to xhdr's reference on these fields."""
    line = decode(record)
    return {"method": line.method.decode("latin-1"), "target": line.target.decode("latin-1")}


def expected(frame: bytes) -> list[RequestLine]:
    """The records the program writes for ``frame``: one for a segment to port 80 that starts with a method
    (1-16 upper-case letters) and SP, none for anything else."""
    payload = _payload(frame)
    if payload is None:
        return []
    method_len = 0
    while True:
        if method_len == len(payload):
            return []
        byte = payload[method_len]
        if byte == ord(" "):
            break
        if not ord("A") <= byte <= ord("Z") or method_len == METHOD_MAX:
            return []
        method_len += 1
    if method_len == 0:
        return []
    rest = payload[method_len + 1 :]
    target_len = 0
    while target_len < len(rest) and rest[target_len] not in TARGET_ENDS and target_len < TARGET_MAX:
        target_len += 1
    truncated = target_len == TARGET_MAX and len(rest) > TARGET_MAX and rest[TARGET_MAX] not in TARGET_ENDS
    return [RequestLine(payload[:method_len], rest[:target_len], truncated)]


def _payload(frame: bytes) -> bytes | None:
    """The TCP payload of a segment to port 80 over IPv4 (no fragment) or IPv6 (TCP right after the fixed
    header), up to the IP length or the frame's end; None for any other frame."""
    if len(frame) < ETHERNET:
        return None
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    if ethertype == IPV4:
        if len(frame) < ETHERNET + 20:
            return None
        ihl = frame[ETHERNET] & 0x0F
        (total, fragment) = struct.unpack_from("!H2xH", frame, ETHERNET + 2)
        if ihl < 5 or frame[ETHERNET + 9] != TCP or fragment & 0x3FFF:
            return None
        tcp, ip_end = ETHERNET + 4 * ihl, ETHERNET + total
    elif ethertype == IPV6:
        if len(frame) < ETHERNET + 40 or frame[ETHERNET + 6] != TCP:
            return None
        (length,) = struct.unpack_from("!H", frame, ETHERNET + 4)
        tcp, ip_end = ETHERNET + 40, ETHERNET + 40 + length
    else:
        return None
    if len(frame) < tcp + 20:
        return None
    (dport,) = struct.unpack_from("!H", frame, tcp + 2)
    offset = frame[tcp + 12] >> 4
    if dport != HTTP_PORT or offset < 5:
        return None
    start, stop = tcp + 4 * offset, min(ip_end, len(frame))
    return frame[start:stop] if start < stop else None
