"""The reference extractor: docs/EXTRACTION.md written as a plain Python parser of frame bytes.

It is the oracle the kernel program is compared with, event by event and counter by counter, so it favours
being obviously right over being fast: each function reads one layer and cites the rule it implements. In
short (the document is the contract; this is a summary):

Frames and counters
    Every frame counts once in ``packets`` and once in one outcome, the first that applies. R1: under 14 bytes
    is malformed. R2: up to two 802.1Q/802.1ad tags are read (a short tag is malformed, a third tag is
    ``vlan_too_deep``); the VLAN id is the low 12 bits of the TCI. R3: only IPv4 and IPv6 go on (else
    ``not_ip``). R4: a broken IPv4 header is malformed, a non-zero fragment offset is ``later_fragment``, a
    protocol other than TCP is ``not_tcp``; the IP end is capped by the total length, so Ethernet padding is
    never payload. R5: the same for IPv6, where any extension header is ``ipv6_ext_header``. R6: a TCP header
    that does not fit before the IP end is malformed, an unwatched destination port is ``port_not_watched``;
    otherwise ``tcp_watched`` counts and an empty payload is ``no_payload``. R7: only the first
    ``max_scan_bytes`` of the payload (the view) are read, and a longer payload marks every event
    ``SCAN_LIMIT``. R8: a view that does not begin with a request is ``not_http``; otherwise
    ``http_request`` and ``events`` count once per request logged.

Request line
    R9: ``method SP target SP version (CRLF | LF)``, with a 1..16 tchar method, a target of visible or high
    bytes (``target`` keeps ``max_target_len`` bytes, ``target_length`` counts them all, a longer one is
    ``TARGET_TRUNCATED``) and exactly ``HTTP/1.0`` or ``HTTP/1.1``. Any byte that breaks the grammar means
    "not a request". R10: a line the view cuts after the method's SP, with every byte so far fitting, is still
    logged as ``LINE_CUT``, with no headers, version 0 unless all eight version bytes were seen.

Header section
    R11: lines end at LF, one CR before it is dropped; an empty line (LF or CR LF) completes the request. A CR
    followed by anything else starts a bad non-empty line; a view ending right after a CR at a line start
    leaves that line unknown. Each non-empty line counts in ``header_lines``; one more than
    ``max_header_lines`` sets ``TOO_MANY_HEADERS`` and ends the frame's scan. A view that ends before the
    empty line sets ``HEADERS_CUT``.

    R12: a field line is ``name ":" value`` with a tchar name; obs-fold, no colon, an empty name or a
    non-tchar before the colon set ``BAD_LINE`` as soon as the offending byte is seen. Names match the
    configured rules ignoring ASCII case.

    R13: the value loses one final CR, then SP/HT at both ends; ``length`` is the trimmed length; a value the
    view cuts is logged from what was seen, with ``CUT``; the first occurrence fills the slot, later ones only
    add ``REPEATED``. Modes: ``value`` keeps ``max_value_len`` bytes (``TRUNCATED`` beyond), ``hash`` keeps a
    keyed SipHash-2-4 of the whole trimmed value, ``auth`` also keeps the scheme (1..16 tchar then SP at the
    start), ``presence`` keeps flags and length only.

Several requests in one frame
    R14: after a complete request, the next byte of the view starts another request, up to
    ``max_requests_per_packet``; it is logged only when its request line is complete and valid, otherwise the
    scan stops and nothing more is counted.

Readings chosen where the rules leave room (each is marked "Reading:" in the code below):

- A header line cut by the view after a CR that is not at the line start (``Host\\r`` then the view ends): the
  CR is a non-tchar byte before any colon, so ``BAD_LINE`` is set now (whatever follows, the line is bad).
- A cut line counts in ``header_lines`` as soon as it begins (it is a non-empty line), whether or not its name
  is complete.
- The final-CR rule of R13 applies to a cut value too (``X-A: b\\r`` then the view ends gives ``b``).
- A repeated occurrence that the view cuts sets only ``REPEATED``: the slot keeps the first occurrence, so it
  does not gain ``CUT``.
- R10 with the view ending right after the method's SP logs an empty target (``target_length`` 0).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import struct

from harness.config import METHOD_MAX_LEN, SCHEME_MAX_LEN, TCHARS, ExtractorConfig, HeaderMode, HeaderRule
from harness.counters import OUTCOMES, Counter
from harness.event import EventFlag, HeaderEvent, HeaderValue, SlotFlag

SP, LF = 0x20, 0x0A
VLAN_TPIDS = (0x8100, 0x88A8)
MAX_VLAN_TAGS = 2
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
IPPROTO_TCP = 6
IPV6_EXTENSION_HEADERS = frozenset({0, 43, 44, 50, 51, 60, 135, 139, 140})
VERSIONS = {b"HTTP/1.0": 10, b"HTTP/1.1": 11}
VERSION_LEN = 8
TCHAR_BYTES = bytes(sorted(TCHARS))
TARGET_BYTES = bytes([*range(0x21, 0x7F), *range(0x80, 0x100)])
DEFAULT_CONFIG = ExtractorConfig()
DEFAULT_KEY = bytes(16)


@dataclasses.dataclass(frozen=True)
class Expected:
    """What one frame should do to the extractor: counter deltas (every counter, zeros too) and its events."""

    counters: dict[Counter, int]
    events: tuple[HeaderEvent, ...]

    @property
    def outcome(self) -> Counter:
        """The one outcome counter this frame moves (R1-R8)."""
        (outcome,) = (counter for counter in OUTCOMES if self.counters[counter])
        return outcome


class _Outcome(Exception):
    """Raised by the layer readers to end a frame early with one outcome counter (R1-R6)."""

    def __init__(self, counter: Counter, tcp_watched: bool = False) -> None:
        super().__init__(counter.label)
        self.counter = counter
        self.tcp_watched = tcp_watched


@dataclasses.dataclass(frozen=True)
class _Flow:
    """The addressing part of every event of one frame."""

    family: int
    saddr: str
    daddr: str
    sport: int
    dport: int
    vlan_ids: tuple[int, ...]


def extract(frame: bytes, config: ExtractorConfig = DEFAULT_CONFIG, key: bytes = DEFAULT_KEY) -> Expected:
    """What the extractor must count and log for ``frame`` under ``config`` with SipHash ``key``."""
    try:
        flow, payload = _read_layers(frame, config)
    except _Outcome as outcome:
        return _expected(outcome.counter, outcome.tcp_watched, ())
    view = payload[: config.max_scan_bytes]  # R7
    requests = _scan(view, config, key)
    if not requests:
        return _expected(Counter.NOT_HTTP, True, ())  # R8
    scan_limit = EventFlag.SCAN_LIMIT if len(payload) > len(view) else EventFlag(0)
    events = tuple(request.event(flow, index, config, scan_limit) for index, request in enumerate(requests))
    return _expected(Counter.HTTP_REQUEST, True, events)


def _expected(outcome: Counter, tcp_watched: bool, events: tuple[HeaderEvent, ...]) -> Expected:
    """The counter deltas of one frame; the ring buffer is assumed never full, so events_lost stays 0."""
    counters = {counter: 0 for counter in Counter}
    counters[Counter.PACKETS] = 1
    counters[outcome] = len(events) if outcome is Counter.HTTP_REQUEST else 1
    counters[Counter.TCP_WATCHED] = int(tcp_watched)
    counters[Counter.EVENTS] = len(events)
    return Expected(counters=counters, events=events)


# --- Frames: R1-R6 -----------------------------------------------------------------------------------------


def _read_layers(frame: bytes, config: ExtractorConfig) -> tuple[_Flow, bytes]:
    """Walks Ethernet, VLAN, IP and TCP; returns the flow and the TCP payload, or raises ``_Outcome``."""
    ethertype, offset, vlan_ids = _ethernet(frame)
    if ethertype == ETHERTYPE_IPV4:
        family, saddr, daddr, l4_start, ip_end = 4, *_ipv4(frame, offset)
    elif ethertype == ETHERTYPE_IPV6:
        family, saddr, daddr, l4_start, ip_end = 6, *_ipv6(frame, offset)
    else:
        raise _Outcome(Counter.NOT_IP)  # R3
    sport, dport, payload = _tcp(frame, l4_start, ip_end, config)
    return _Flow(family, saddr, daddr, sport, dport, vlan_ids), payload


def _ethernet(frame: bytes) -> tuple[int, int, tuple[int, ...]]:
    """R1, R2: the EtherType after at most two VLAN tags, where the network header starts, the VLAN ids."""
    if len(frame) < 14:
        raise _Outcome(Counter.MALFORMED)
    ethertype, offset = _u16(frame, 12), 14
    vlan_ids: list[int] = []
    while ethertype in VLAN_TPIDS and len(vlan_ids) < MAX_VLAN_TAGS:
        if len(frame) < offset + 4:
            raise _Outcome(Counter.MALFORMED)
        vlan_ids.append(_u16(frame, offset) & 0x0FFF)
        ethertype, offset = _u16(frame, offset + 2), offset + 4
    if ethertype in VLAN_TPIDS:
        raise _Outcome(Counter.VLAN_TOO_DEEP)
    return ethertype, offset, tuple(vlan_ids)


def _ipv4(frame: bytes, start: int) -> tuple[str, str, int, int]:
    """R4: source, destination, TCP start and IP end of an IPv4 packet that carries TCP."""
    if len(frame) < start + 20 or frame[start] >> 4 != 4:
        raise _Outcome(Counter.MALFORMED)
    header_len = (frame[start] & 0x0F) * 4
    total_len = _u16(frame, start + 2)
    if header_len < 20 or len(frame) < start + header_len or total_len < header_len:
        raise _Outcome(Counter.MALFORMED)
    if _u16(frame, start + 6) & 0x1FFF:
        raise _Outcome(Counter.LATER_FRAGMENT)
    if frame[start + 9] != IPPROTO_TCP:
        raise _Outcome(Counter.NOT_TCP)
    saddr, daddr = (_address(frame[at : at + 4]) for at in (start + 12, start + 16))
    return saddr, daddr, start + header_len, min(len(frame), start + total_len)


def _ipv6(frame: bytes, start: int) -> tuple[str, str, int, int]:
    """R5: source, destination, TCP start and IP end of an IPv6 packet whose next header is TCP."""
    if len(frame) < start + 40 or frame[start] >> 4 != 6:
        raise _Outcome(Counter.MALFORMED)
    next_header = frame[start + 6]
    if next_header in IPV6_EXTENSION_HEADERS:
        raise _Outcome(Counter.IPV6_EXT_HEADER)
    if next_header != IPPROTO_TCP:
        raise _Outcome(Counter.NOT_TCP)
    saddr, daddr = (_address(frame[at : at + 16]) for at in (start + 8, start + 24))
    return saddr, daddr, start + 40, min(len(frame), start + 40 + _u16(frame, start + 4))


def _tcp(frame: bytes, start: int, ip_end: int, config: ExtractorConfig) -> tuple[int, int, bytes]:
    """R6: ports and payload of a TCP segment to a watched port with a non-empty payload."""
    if start + 20 > ip_end:
        raise _Outcome(Counter.MALFORMED)
    header_len = (frame[start + 12] >> 4) * 4
    if header_len < 20 or start + header_len > ip_end:
        raise _Outcome(Counter.MALFORMED)
    sport, dport = _u16(frame, start), _u16(frame, start + 2)
    if dport not in config.ports:
        raise _Outcome(Counter.PORT_NOT_WATCHED)
    payload = frame[start + header_len : ip_end]
    if not payload:
        raise _Outcome(Counter.NO_PAYLOAD, tcp_watched=True)
    return sport, dport, payload


def _u16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "big")


def _address(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


# --- Requests: R9-R14 --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _RequestLine:
    """A request line as far as the view shows it; ``end`` is None when the view cut it (R10)."""

    method: bytes
    target: bytes  # every target byte seen, before truncation to max_target_len
    version: int
    end: int | None


@dataclasses.dataclass
class _Request:
    """One request being read: the request line plus what the header section adds to it."""

    line: _RequestLine
    slots: list[HeaderValue]
    flags: EventFlag = dataclasses.field(default_factory=lambda: EventFlag(0))
    header_lines: int = 0

    def event(self, flow: _Flow, index: int, config: ExtractorConfig, extra: EventFlag) -> HeaderEvent:
        """The event the kernel writes for this request (R9 target truncation, R14 request_index)."""
        flags = self.flags | extra
        if len(self.line.target) > config.max_target_len:
            flags |= EventFlag.TARGET_TRUNCATED
        if self.line.end is None:
            flags |= EventFlag.LINE_CUT
        return HeaderEvent(
            **dataclasses.asdict(flow),
            request_index=index,
            method=self.line.method,
            target=self.line.target[: config.max_target_len],
            target_length=len(self.line.target),
            version=self.line.version,
            flags=flags,
            header_lines=self.header_lines,
            headers=tuple(self.slots),
        )


def _scan(view: bytes, config: ExtractorConfig, key: bytes) -> list[_Request]:
    """R8, R10, R14: the requests logged from one view, in order."""
    requests: list[_Request] = []
    position: int | None = 0
    while position is not None and position < len(view) and len(requests) < config.max_requests_per_packet:
        line = _request_line(view, position)
        if line is None or (requests and line.end is None):
            break  # R8 (first request) or R14 (a later one needs a complete, valid request line)
        request = _Request(line, [HeaderValue(rule.name, rule.mode) for rule in config.headers])
        requests.append(request)
        if line.end is None:
            break  # R10: a cut request line has no header fields and no HEADERS_CUT
        position = _header_section(view, line.end, request, config, key)
    return requests


def _request_line(view: bytes, start: int) -> _RequestLine | None:
    """R9, R10: the request line starting at ``start``, or None when the bytes seen break the grammar."""
    space = start + _run_length(view, start, TCHAR_BYTES, METHOD_MAX_LEN)
    if space == start or space == len(view) or view[space] != SP:
        return None  # empty method, a non-token byte, a 17th character, or no SP in the view
    method = view[start:space]
    target_end = space + 1 + _run_length(view, space + 1, TARGET_BYTES, len(view))
    target = view[space + 1 : target_end]
    if target_end == len(view):
        return _RequestLine(method, target, 0, None)  # Reading: may be an empty target (view ends at the SP)
    if view[target_end] != SP or not target:
        return None
    return _version_and_end(view, target_end + 1, method, target)


def _version_and_end(view: bytes, start: int, method: bytes, target: bytes) -> _RequestLine | None:
    """R9, R10: the version and the CR LF or LF that end the request line."""
    seen = view[start : start + VERSION_LEN]
    if not any(version.startswith(seen) for version in VERSIONS):
        return None
    if len(seen) < VERSION_LEN:
        return _RequestLine(method, target, 0, None)
    version = VERSIONS[seen]
    after = start + VERSION_LEN
    ending = view[after : after + 2]
    if ending in (b"", b"\r"):
        return _RequestLine(method, target, version, None)
    if ending[0] == LF:
        return _RequestLine(method, target, version, after + 1)
    if ending == b"\r\n":
        return _RequestLine(method, target, version, after + 2)
    return None


def _run_length(data: bytes, start: int, allowed: bytes, limit: int) -> int:
    """How many bytes from ``start`` (at most ``limit``) are all in ``allowed``."""
    window = data[start : start + limit]
    rest = window.lstrip(allowed)
    return len(window) - len(rest)


def _is_token(data: bytes) -> bool:
    """Whether every byte is a tchar (true for b"")."""
    return not data.translate(None, TCHAR_BYTES)


def _header_section(
    view: bytes, position: int, request: _Request, config: ExtractorConfig, key: bytes
) -> int | None:
    """R11: reads header lines up to the empty line; returns where a next request may start, or None."""
    while True:
        rest = view[position : position + 2]
        if rest in (b"", b"\r"):
            # The view ended before the empty line; a lone CR at its end is an unknown line, not counted.
            request.flags |= EventFlag.HEADERS_CUT
            return None
        if rest == b"\r\n":
            return position + 2  # the empty line: the request is complete
        if rest[0] == LF:
            return position + 1
        if request.header_lines == config.max_header_lines:
            request.flags |= EventFlag.TOO_MANY_HEADERS
            return None
        request.header_lines += 1  # Reading: a line counts as soon as it begins, even if the view cuts it
        position = _field_line(view, position, request, config, key)


def _field_line(view: bytes, start: int, request: _Request, config: ExtractorConfig, key: bytes) -> int:
    """R12, R13: reads one non-empty header line, updates the request, returns the next line's start."""
    line_end = view.find(b"\n", start)
    cut = line_end == -1
    line = view[start:] if cut else view[start:line_end]
    name, bad = _field_name(line, cut)
    if bad:
        request.flags |= EventFlag.BAD_LINE
    index = None if name is None else _slot_numbers(config.headers).get(name.lower())
    if index is not None:
        value = _trimmed_value(line[len(name) + 1 :])
        request.slots[index] = _filled(request.slots[index], value, cut, config, key)
    return len(view) if cut else line_end + 1


def _field_name(line: bytes, cut: bool) -> tuple[bytes | None, bool]:
    """R12: (name, bad) for one header line; name is None when the line is bad or its colon not seen yet.

    ``line`` excludes the LF but may end in CR: a CR can only sit before the colon in a bad line, and a
    complete colon-less line is bad anyway, so the final CR needs no special case here.
    """
    colon = line.find(b":")
    name = line if colon == -1 else line[:colon]
    if not _is_token(name):
        return None, True  # obs-fold (SP/HT first), whitespace or CR before the colon. Reading: also when cut
    if colon == -1:
        return None, not cut  # a colon-less line is bad once its LF is seen; a cut one is not known yet
    if colon == 0:
        return None, True  # empty name
    return name, False


@functools.cache
def _slot_numbers(rules: tuple[HeaderRule, ...]) -> dict[bytes, int]:
    """R12: lower-cased configured name -> slot, so a field name matches ignoring ASCII case."""
    return {rule.name.encode("ascii").lower(): index for index, rule in enumerate(rules)}


def _trimmed_value(raw: bytes) -> bytes:
    """R13: one final CR dropped (Reading: also when the view cut the line), then SP/HT trimmed both sides."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw.strip(b" \t")


def _filled(slot: HeaderValue, value: bytes, cut: bool, config: ExtractorConfig, key: bytes) -> HeaderValue:
    """R13: the slot after one more occurrence of its header."""
    if slot.flags & SlotFlag.REPEATED:
        return slot
    if slot.present:
        return dataclasses.replace(slot, flags=slot.flags | SlotFlag.REPEATED)  # Reading: never adds CUT
    flags = SlotFlag.PRESENT | (SlotFlag.CUT if cut else SlotFlag(0))
    kept, digest = b"", 0
    if slot.mode is HeaderMode.VALUE:
        kept = value[: config.max_value_len]
        if len(value) > config.max_value_len:
            flags |= SlotFlag.TRUNCATED
    elif slot.mode in (HeaderMode.HASH, HeaderMode.AUTH):
        digest = siphash24(key, value)
        kept = auth_scheme(value) if slot.mode is HeaderMode.AUTH else b""
    return dataclasses.replace(slot, flags=flags, length=len(value), value=kept, hash=digest)


def auth_scheme(value: bytes) -> bytes:
    """R13 auth mode: the 1..16 tchar at the start of the trimmed value when an SP follows them, else b""."""
    end = _run_length(value, 0, TCHAR_BYTES, SCHEME_MAX_LEN)
    return value[:end] if end and value[end : end + 1] == b" " else b""


# --- SipHash-2-4 -------------------------------------------------------------------------------------------

_MASK64 = (1 << 64) - 1


@functools.lru_cache(maxsize=4096)
def siphash24(key: bytes, data: bytes) -> int:
    """SipHash-2-4 with 64-bit output (Aumasson & Bernstein), k0/k1 little-endian from the 16-byte key (R13).

    Cached because a run sends the same few secrets in many frames, and pure-Python SipHash is the slowest
    step of the reference (about 0.3 ms for a 1,500-byte value).
    """
    if len(key) != 16:
        raise ValueError(f"SipHash key must be 16 bytes, got {len(key)}")
    k0, k1 = struct.unpack("<QQ", key)
    v = (k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573)
    whole = len(data) - len(data) % 8
    blocks = [*struct.unpack(f"<{whole // 8}Q", data[:whole])]
    blocks.append(int.from_bytes(data[whole:], "little") | (len(data) & 0xFF) << 56)
    for block in blocks:
        v0, v1, v2, v3 = _sip_rounds(v[0], v[1], v[2], v[3] ^ block, 2)
        v = (v0 ^ block, v1, v2, v3)
    v0, v1, v2, v3 = _sip_rounds(v[0], v[1], v[2] ^ 0xFF, v[3], 4)
    return v0 ^ v1 ^ v2 ^ v3


def _sip_rounds(v0: int, v1: int, v2: int, v3: int, count: int) -> tuple[int, int, int, int]:
    """``count`` SipRounds on the state (v0, v1, v2, v3), 64-bit arithmetic."""
    for _ in range(count):
        v0 = (v0 + v1) & _MASK64
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _MASK64
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK64
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK64
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def _rotl(x: int, bits: int) -> int:
    return ((x << bits) | (x >> (64 - bits))) & _MASK64
