"""Hypothesis strategies that build whole frames, in layers that can each be fuzzed alone.

- HTTP (``requests``, ``payloads``): request lines and header sections from a grammar that leans towards the
  places where docs/EXTRACTION.md draws a line: lengths next to the configured limits, names that almost match
  a configured header, whitespace and CR where R11-R13 treat them specially, obs-fold, bare LF, NUL and high
  bytes, missing final CRLF, pipelined requests (R14).
- Transport (``frame_specs``): a ``FrameSpec`` around a payload: IPv4 options, TCP options, IPv6 and its
  extension header, 0-3 VLAN tags of either TPID, watched and unwatched ports, fragments, UDP, padding; then
  ``captures`` cuts the request into two segments at any byte or truncates the frame at any byte.
- Raw mutations (``mutated``): byte flips, insertions and deletions anywhere in a built frame, for what the
  grammar never writes.

Every strategy takes the ``ExtractorConfig`` because the interesting lengths are its limits. Branches that
Hypothesis shrinks towards come first, so a shrunk failure reads as a plain request with one odd detail.

Frames come from ``FrameSpec`` as everywhere else, but through ``fast_build``: scapy takes about a millisecond
per frame, more than everything else in an example, so the headers are built by scapy once per transport shape
and only the lengths and checksums are patched per payload. tests/test_fuzz_strategies.py holds it byte for
byte equal to ``harness.frames.build``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

from hypothesis import strategies as st

from harness.config import METHOD_MAX_LEN, SCHEME_MAX_LEN, TCHARS, ExtractorConfig
from harness.frames import FrameSpec, build, split

TOKEN = "".join(sorted(chr(byte) for byte in TCHARS))
VISIBLE = "".join(chr(byte) for byte in range(0x21, 0x7F))
HIGH = "".join(chr(byte) for byte in range(0x80, 0x100))
CONTROL = "".join(chr(byte) for byte in [*range(0x20), 0x7F])
STANDARD_METHODS = ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE")
GOOD_VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")
BAD_VERSIONS = (
    b"HTTP/2.0",
    b"http/1.1",
    b"HTTP/1.",
    b"HTTP/1.11",
    b"HTTP/0.9",
    b"HTTP/1.1 ",
    b"",
    b"HTTP/1.2",
)
# Option encodings scapy round-trips unchanged; combined up to the 40 bytes an IHL or data offset allows.
IP_OPTIONS = (b"\x01", b"\x00", b"\x94\x04\x00\x00", b"\x07\x07\x04\x00\x00\x00\x00")
TCP_OPTIONS = (b"\x01", b"\x02\x04\x05\xb4", b"\x04\x02", b"\x03\x03\x07", b"\x08\x0a" + bytes(range(8)))
MAX_OPTION_BYTES = 40
# BPF_PROG_TEST_RUN refuses XDP input shorter than an Ethernet header, so R1 (malformed under 14 bytes) is
# left to the corpus and the lab; every frame drawn here has at least this many bytes.
MIN_FRAME = 14


@functools.cache
def latin1(alphabet: str, min_size: int = 0, max_size: int | None = None) -> st.SearchStrategy[bytes]:
    """Byte strings over ``alphabet`` (a str of code points < 256)."""
    return st.text(alphabet, min_size=min_size, max_size=max_size).map(lambda text: text.encode("latin-1"))


@functools.cache
def weighted(*branches: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """One of ``branches`` picked with the given weights; shrinks towards the first branch."""
    # Not st.one_of(a, a, b): one_of drops repeated branches, so repetition would not weigh anything.
    table = tuple(strategy for weight, strategy in branches for _ in range(weight))
    return st.sampled_from(table).flatmap(_itself)


def _itself(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return strategy


@functools.cache
def lengths(limit: int, most: int) -> st.SearchStrategy[int]:
    """A length that is often exactly at a limit's edge (limit - 1, limit, limit + 1), else anything up to most."""
    return weighted(
        (2, st.integers(0, min(most, 12))),
        (3, st.sampled_from([limit - 1, limit, limit + 1])),
        (1, st.integers(0, most)),
    )


@st.composite
def sized(draw: st.DrawFn, alphabet: str, size: st.SearchStrategy[int]) -> bytes:
    """A byte string over ``alphabet`` whose length is drawn from ``size``."""
    length = max(0, draw(size))
    return draw(latin1(alphabet, min_size=length, max_size=length))


# --- HTTP: R9-R14 --------------------------------------------------------------------------------------


@functools.cache
def methods() -> st.SearchStrategy[bytes]:
    """R9 methods: standard ones, extension tokens up to one past the 16-character limit, now and then a bad byte."""
    return weighted(
        (8, st.sampled_from(STANDARD_METHODS).map(str.encode)),
        (2, sized(TOKEN, lengths(METHOD_MAX_LEN, METHOD_MAX_LEN + 2))),
        (
            1,
            st.tuples(latin1(TOKEN, 0, 4), latin1(CONTROL + HIGH + " :/", 1, 1), latin1(TOKEN, 0, 4)).map(
                b"".join
            ),
        ),
    )


@functools.cache
def targets(config: ExtractorConfig) -> st.SearchStrategy[bytes]:
    """R9 targets: origin (with percent-encoding), absolute, authority, asterisk, long ones at the limit, odd bytes."""
    segment = st.lists(
        st.one_of(latin1(VISIBLE, 1, 8), st.integers(0, 255).map(lambda byte: b"%%%02X" % byte)), max_size=4
    ).map(b"".join)
    origin = st.lists(segment, min_size=1, max_size=4).map(lambda parts: b"/" + b"/".join(parts))
    host = st.sampled_from([b"example.com", b"10.0.0.1", b"[2001:db8::1]", b"h"])
    return weighted(
        (4, origin),
        (1, st.just(b"*")),
        (1, st.tuples(st.sampled_from([b"http://", b"https://"]), host, origin).map(b"".join)),
        (1, st.tuples(host, st.sampled_from([b":80", b":443", b""])).map(b"".join)),
        (
            2,
            sized(VISIBLE, lengths(config.max_target_len - 1, 3 * config.max_target_len)).map(
                lambda t: b"/" + t
            ),
        ),
        (1, latin1(VISIBLE + HIGH, 0, 40)),
        (1, st.tuples(latin1(VISIBLE, 0, 8), latin1(CONTROL, 1, 1), latin1(VISIBLE, 0, 8)).map(b"".join)),
    )


@functools.cache
def line_ends() -> st.SearchStrategy[bytes]:
    """R9, R11: CR LF, bare LF, and the endings that are not one (a lone CR, CR CR LF)."""
    return weighted((6, st.just(b"\r\n")), (3, st.just(b"\n")), (1, st.sampled_from([b"\r", b"\r\r\n", b""])))


@functools.cache
def names(config: ExtractorConfig) -> st.SearchStrategy[bytes]:
    """R12 names: configured ones in any letter case, near misses, random tokens (some over 32 bytes), empty."""
    configured = st.sampled_from([rule.name for rule in config.headers])

    @st.composite
    def case_variant(draw: st.DrawFn) -> bytes:
        name = draw(configured)
        flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
        return "".join(c.swapcase() if flip else c for c, flip in zip(name, flips, strict=True)).encode()

    near_miss = st.tuples(configured, st.integers(-1, 1), latin1(TOKEN, 1, 1)).map(
        lambda drawn: (
            drawn[0][: drawn[1]] if drawn[1] < 0 else drawn[0] + drawn[2].decode() * drawn[1]
        ).encode()
    )
    return weighted(
        (5, case_variant()),
        (2, latin1(TOKEN, 1, 12)),
        (1, near_miss),
        (1, sized(TOKEN, st.integers(30, 40))),
        (1, st.just(b"")),
    )


@functools.cache
def values(config: ExtractorConfig) -> st.SearchStrategy[bytes]:
    """R13 values: visible, inner SP/HT, high bytes, now and then NUL, a bare CR or another control byte;
    lengths next to ``max_value_len``; auth-like ``scheme SP credentials`` with schemes around 16 characters."""
    plain = VISIBLE + " \t" + HIGH[:8]
    return weighted(
        (3, latin1(plain, 0, 12)),
        (4, sized(VISIBLE, lengths(config.max_value_len, 3 * config.max_value_len))),
        (1, latin1(plain + CONTROL, 0, 20)),
        (
            2,
            st.tuples(
                sized(TOKEN, lengths(SCHEME_MAX_LEN, SCHEME_MAX_LEN + 2)),
                st.sampled_from([b" ", b"", b"\t"]),
                latin1(VISIBLE + " ", 0, 24),
            ).map(b"".join),
        ),
    )


@functools.cache
def whitespace() -> st.SearchStrategy[bytes]:
    """Optional whitespace (OWS) around a value."""
    return weighted((3, st.just(b"")), (2, latin1(" \t", 1, 3)))


@functools.cache
def header_lines(config: ExtractorConfig) -> st.SearchStrategy[bytes]:
    """R11-R13: one header line with its ending: a field, obs-fold, whitespace before the colon, no colon, CR first."""
    end = line_ends()
    field = st.tuples(names(config), st.just(b":"), whitespace(), values(config), whitespace(), end)
    return weighted(
        (8, field.map(b"".join)),
        (1, st.tuples(latin1(" \t", 1, 2), values(config), end).map(b"".join)),
        (1, st.tuples(names(config), latin1(" \t", 1, 2), st.just(b":"), values(config), end).map(b"".join)),
        (1, st.tuples(latin1(VISIBLE.replace(":", "") + " ", 0, 12), end).map(b"".join)),
        (1, st.tuples(st.just(b"\r"), latin1(VISIBLE, 1, 6), end).map(b"".join)),
    )


SEPARATORS = weighted((15, st.just((b" ", b" "))), (1, st.tuples(latin1(" \t", 0, 2), latin1(" \t", 0, 2))))
SECTION_ENDS = weighted((6, line_ends()), (1, st.just(b"")))
BODIES = weighted((6, st.just(b"")), (1, st.binary(max_size=24)))


@functools.cache
def request_lines(config: ExtractorConfig) -> st.SearchStrategy[tuple[bytes, bytes, bytes]]:
    """R9: (method, target, version), the version now and then one R9 refuses."""
    return weighted(
        (12, st.tuples(methods(), targets(config), st.sampled_from(GOOD_VERSIONS))),
        (1, st.tuples(methods(), targets(config), st.sampled_from(BAD_VERSIONS))),
    )


@functools.cache
def header_counts(config: ExtractorConfig) -> st.SearchStrategy[int]:
    """How many header lines: mostly a few, sometimes past ``max_header_lines`` (R11)."""
    return weighted((4, st.integers(0, 4)), (1, st.integers(0, config.max_header_lines + 2)))


@st.composite
def _requests(draw: st.DrawFn, config: ExtractorConfig) -> bytes:
    method, target, version = draw(request_lines(config))
    before, after = draw(SEPARATORS)
    start = method + before + target + after + version + draw(line_ends())
    lines = header_lines(config)
    fields = b"".join(draw(lines) for _ in range(draw(header_counts(config))))
    return start + fields + draw(SECTION_ENDS) + draw(BODIES)


@functools.cache
def requests(config: ExtractorConfig) -> st.SearchStrategy[bytes]:
    """One request: request line, header lines (sometimes more than ``max_header_lines``) and an end that may
    be missing, a bare LF or followed by a body."""
    return _requests(config)


@st.composite
def _at_the_view_edge(draw: st.DrawFn, config: ExtractorConfig) -> bytes:
    """A request whose payload ends within two bytes of ``max_scan_bytes`` (R7), its last bytes a value, a line
    end or the empty line, so the view cuts a value, a CR, an LF or nothing."""
    head = draw(requests(config)).split(b"\n\r\n")[0].split(b"\n\n")[0] + b"\n"
    name = draw(names(config))
    tail = draw(st.sampled_from([b"", b"\r", b"\r\n", b"\r\n\r", b"\r\n\r\n"]))
    size = config.max_scan_bytes + draw(st.integers(-2, 2))
    fill = max(0, size - len(head) - len(name) - 2 - len(tail))
    return head + name + b": " + draw(latin1(VISIBLE + " ", fill, fill)) + tail


@functools.cache
def payloads(config: ExtractorConfig) -> st.SearchStrategy[bytes]:
    """A TCP payload: one request, several pipelined ones (R14), or bytes that are not HTTP at all (R8)."""
    return weighted(
        (6, requests(config)),
        (
            2,
            st.lists(requests(config), min_size=2, max_size=config.max_requests_per_packet + 1).map(b"".join),
        ),
        (1, st.binary(min_size=0, max_size=64)),
        (1, sized(VISIBLE + " \r\n", st.integers(config.max_scan_bytes - 2, config.max_scan_bytes + 2))),
        (1, _at_the_view_edge(config)),
    )


@functools.cache
def simple_requests(config: ExtractorConfig) -> st.SearchStrategy[bytes]:
    """Well-formed requests only, for fuzzing the transport alone."""
    field = st.tuples(
        st.sampled_from([rule.name.encode() for rule in config.headers]), latin1(VISIBLE, 1, 12)
    )
    return st.tuples(
        st.sampled_from(STANDARD_METHODS).map(str.encode), latin1(VISIBLE, 0, 12), st.lists(field, max_size=4)
    ).map(
        lambda drawn: (
            b"%s /%s HTTP/1.1\r\n" % drawn[:2] + b"".join(b"%s: %s\r\n" % f for f in drawn[2]) + b"\r\n"
        )
    )


# --- Transport: R1-R7 ----------------------------------------------------------------------------------


@st.composite
def options(draw: st.DrawFn, pieces: tuple[bytes, ...]) -> bytes:
    """Option bytes made of known encodings, at most 40 bytes once padded to a multiple of 4."""
    chosen = draw(st.lists(st.sampled_from(pieces), max_size=8))
    raw = b""
    for piece in chosen:
        if len(raw) + len(piece) <= MAX_OPTION_BYTES:
            raw += piece
    return raw


FAMILIES = weighted((3, st.just(4)), (1, st.just(6)))
TAG_COUNTS = weighted((6, st.just(0)), (2, st.integers(1, 2)), (1, st.just(3)))
VLAN_IDS = st.integers(0, 4095)
TPIDS = st.sampled_from([0x8100, 0x88A8])
FRAGMENTS = weighted((6, st.just("none")), (1, st.just("first")), (1, st.just("later")))
PORTS = st.integers(1, 65535)
IP_OPTION_BYTES = weighted((4, st.just(b"")), (1, options(IP_OPTIONS)))
TCP_OPTION_BYTES = weighted((3, st.just(b"")), (1, options(TCP_OPTIONS)))
IPV6_EXT = weighted((5, st.just(False)), (1, st.just(True)))
PROTOCOLS = weighted((15, st.just("tcp")), (1, st.just("udp")))
PADDING = weighted((6, st.just(0)), (1, st.integers(1, 40)))


@functools.cache
def dports(config: ExtractorConfig) -> st.SearchStrategy[int]:
    """Mostly a watched port (R6), sometimes any port."""
    return weighted((8, st.sampled_from(config.ports)), (1, PORTS))


@st.composite
def frame_specs(draw: st.DrawFn, config: ExtractorConfig, payload: st.SearchStrategy[bytes]) -> FrameSpec:
    """R1-R7 around a payload: family, VLAN tags, options, fragments, ports, protocol, Ethernet padding."""
    family = draw(FAMILIES)
    tags = draw(TAG_COUNTS)
    return FrameSpec(
        payload=draw(payload),
        family=family,
        sport=draw(PORTS),
        dport=draw(dports(config)),
        vlan_ids=tuple(draw(VLAN_IDS) for _ in range(tags)),
        vlan_tpids=tuple(draw(TPIDS) for _ in range(tags)),
        ip_options=draw(IP_OPTION_BYTES) if family == 4 else b"",
        tcp_options=draw(TCP_OPTION_BYTES),
        fragment=draw(FRAGMENTS) if family == 4 else "none",
        ipv6_ext=draw(IPV6_EXT) if family == 6 else False,
        protocol=draw(PROTOCOLS),
        pad=draw(PADDING),
    )


@functools.cache
def plain_specs(config: ExtractorConfig, payload: st.SearchStrategy[bytes]) -> st.SearchStrategy[FrameSpec]:
    """The ordinary transport (IPv4 or IPv6 to a watched port, nothing else), for fuzzing HTTP alone."""
    return st.builds(
        FrameSpec, payload=payload, family=st.sampled_from([4, 6]), dport=st.sampled_from(config.ports)
    )


CUTS = weighted((5, st.just("whole")), (2, st.just("split")), (2, st.just("truncate")))


@st.composite
def captures(draw: st.DrawFn, specs: st.SearchStrategy[FrameSpec]) -> list[bytes]:
    """The frames one spec makes: the whole frame, the request cut into two segments at any byte, or the frame
    truncated at any byte (R4-R6 and R10-R13 on every prefix)."""
    spec = draw(specs)
    how = draw(CUTS)
    if how == "split" and len(spec.payload) > 1:
        at = draw(st.integers(1, len(spec.payload) - 1))
        return [fast_build(segment) for segment in split(spec, at)]
    frame = fast_build(spec)
    if how == "truncate":
        return [frame[: draw(st.integers(MIN_FRAME, len(frame) - 1))]]
    return [frame]


EDITS = st.sampled_from(["flip", "insert", "delete"])


@st.composite
def mutated(draw: st.DrawFn, frames: st.SearchStrategy[list[bytes]]) -> list[bytes]:
    """Each frame with 1-4 raw edits: a byte replaced, bytes inserted, a run deleted; anywhere, even in headers."""
    result = []
    for frame in draw(frames):
        data = bytearray(frame)
        for _ in range(draw(st.integers(1, 4))):
            kind = draw(EDITS)
            at = draw(st.integers(0, len(data)))
            if kind == "flip" and at < len(data):
                data[at] = draw(st.integers(0, 255))
            elif kind == "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=8))
            else:
                del data[at : at + draw(st.integers(1, 8))]
        result.append(bytes(data) if len(data) >= MIN_FRAME else bytes(data) + frame[len(data) : MIN_FRAME])
    return result


# --- Campaign targets ----------------------------------------------------------------------------------


def _all(config: ExtractorConfig) -> st.SearchStrategy[list[bytes]]:
    whole = captures(frame_specs(config, payloads(config)))
    return weighted((6, whole), (2, captures(plain_specs(config, payloads(config)))), (1, mutated(whole)))


TARGETS: dict[str, Callable[[ExtractorConfig], st.SearchStrategy[list[bytes]]]] = {
    "all": _all,
    "http": lambda config: captures(plain_specs(config, payloads(config))),
    "transport": lambda config: captures(frame_specs(config, simple_requests(config))),
    "mutation": lambda config: mutated(captures(frame_specs(config, payloads(config)))),
}


def batches(
    config: ExtractorConfig, target: str = "all", max_captures: int = 4
) -> st.SearchStrategy[list[bytes]]:
    """What one example feeds the kernel: 1-``max_captures`` captures of ``target``, as one list of frames."""
    if target not in TARGETS:
        raise ValueError(f"unknown fuzz target {target!r}; choose one of {', '.join(TARGETS)}")
    return st.lists(TARGETS[target](config), min_size=1, max_size=max_captures).map(
        lambda groups: [frame for group in groups for frame in group]
    )


# --- Building frames fast ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _template(spec: FrameSpec) -> bytes:
    """The frame scapy builds for a transport shape: no payload, padding or truncation, placeholder ports and
    VLAN ids (patched by ``fast_build``, so random ports and ids do not defeat the cache)."""
    return build(spec)


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(memoryview(data).cast("H"))  # native order; folded and swapped below
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    folded = ~total & 0xFFFF
    return int.from_bytes(folded.to_bytes(2, "little"), "big")


def fast_build(spec: FrameSpec) -> bytes:
    """``harness.frames.build(spec)``, byte for byte, with scapy run once per transport shape."""
    if spec.protocol != "tcp" or spec.ipv6_ext:
        return build(spec)
    shape = dataclasses.replace(
        spec, payload=b"", pad=0, truncate_to=None, sport=1, dport=1, vlan_ids=(0,) * len(spec.vlan_ids)
    )
    frame = bytearray(_template(shape)) + spec.payload
    for index, vlan in enumerate(spec.vlan_ids):
        frame[14 + 4 * index : 16 + 4 * index] = vlan.to_bytes(2, "big")  # TCI: priority 0, DEI 0
    l3 = 14 + 4 * len(spec.vlan_ids)
    if spec.family == 4:
        ihl = (frame[l3] & 0x0F) * 4
        frame[l3 + 2 : l3 + 4] = (len(frame) - l3).to_bytes(2, "big")
        frame[l3 + 10 : l3 + 12] = b"\x00\x00"
        frame[l3 + 10 : l3 + 12] = _checksum(bytes(frame[l3 : l3 + ihl])).to_bytes(2, "big")
        l4 = l3 + ihl
        pseudo = bytes(frame[l3 + 12 : l3 + 20]) + b"\x00\x06" + (len(frame) - l4).to_bytes(2, "big")
    else:
        frame[l3 + 4 : l3 + 6] = (len(frame) - l3 - 40).to_bytes(2, "big")
        l4 = l3 + 40
        pseudo = bytes(frame[l3 + 8 : l3 + 40]) + (len(frame) - l4).to_bytes(4, "big") + b"\x00\x00\x00\x06"
    frame[l4 : l4 + 4] = spec.sport.to_bytes(2, "big") + spec.dport.to_bytes(2, "big")
    frame[l4 + 16 : l4 + 18] = b"\x00\x00"
    frame[l4 + 16 : l4 + 18] = _checksum(pseudo + bytes(frame[l4:])).to_bytes(2, "big")
    frame += bytes(spec.pad)
    return bytes(frame if spec.truncate_to is None else frame[: spec.truncate_to])
