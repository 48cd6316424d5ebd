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
- TLS (``client_hellos``, ``hello_payloads``, ``tls_flows``, docs/EXTRACTION.md R21, R22): ClientHellos built by
  ``harness.oracle.tls`` with their extensions in random orders and sizes (SNI and ALPN lengths next to the
  limits, GREASE versions and types, over 32 extensions, padding past the view, the three read types missing
  or repeated), then broken: a length field off by a few bytes, a header byte changed, bytes after the
  extensions, the record cut or garbled; random bytes and HTTP requests too. They go to a TLS port, alone or
  as the start of a connection whose later segments are encrypted.
- Flows (``flows``, docs/EXTRACTION.md R14-R18): the frames of one TCP connection carrying 1-4 requests, some
  with Content-Length bodies that hold request-looking text, cut at arbitrary bytes (sometimes every byte),
  with or without its SYN (or data on it), with retransmissions, overlapping re-sends, swaps, losses, RST and
  FIN anywhere, sequence numbers near the 2^32 wrap. A ``Flow`` is judged as a whole; every other target's
  frames each on a flow of its own.

Every strategy takes the ``ExtractorConfig`` because the interesting lengths are its limits. Branches that
Hypothesis shrinks towards come first, so a shrunk failure reads as a plain request with one odd detail.

Frames come from ``FrameSpec`` as everywhere else, but through ``fast_build``: scapy takes about a millisecond
per frame, more than everything else in an example, so the headers are built by scapy once per transport shape
and only the lengths and checksums are patched per payload. tests/test_fuzz_strategies.py holds it byte for
byte equal to ``harness.oracle.frames.build``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import struct
from collections.abc import Callable

from hypothesis import strategies as st

from harness.core.config import METHOD_MAX_LEN, SCHEME_MAX_LEN, TCHARS, ExtractorConfig
from harness.oracle import tls
from harness.oracle.frames import FrameSpec, build, split

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


@st.composite
def case_variants(draw: st.DrawFn, names: st.SearchStrategy[str]) -> bytes:
    """One of ``names`` with any letters' case flipped (R12 and R17 match names ignoring ASCII case)."""
    name = draw(names)
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.swapcase() if flip else c for c, flip in zip(name, flips, strict=True)).encode()


@functools.cache
def names(config: ExtractorConfig) -> st.SearchStrategy[bytes]:
    """R12 names: configured ones in any letter case, near misses, random tokens (some over 32 bytes), empty."""
    configured = st.sampled_from([rule.name for rule in config.headers])
    near_miss = st.tuples(configured, st.integers(-1, 1), latin1(TOKEN, 1, 1)).map(
        lambda drawn: (
            drawn[0][: drawn[1]] if drawn[1] < 0 else drawn[0] + drawn[2].decode() * drawn[1]
        ).encode()
    )
    return weighted(
        (5, case_variants(configured)),
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
Framing = tuple[bytes, bytes]  # (header lines that frame the body, the body)
# No framing line: the body is bytes where the next request should start (R14). ``_framed_bodies`` gives
# bodies with a Content-Length.
UNFRAMED = BODIES.map(lambda body: (b"", body))


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


def _framed(draw: st.DrawFn, fields: list[bytes], framing: st.SearchStrategy[Framing]) -> Framing:
    """(the header lines with the framing lines put among them at a random place, the body)."""
    lines, body = draw(framing)
    if lines:
        fields.insert(draw(st.integers(0, len(fields))), lines)
    return b"".join(fields), body


@st.composite
def _requests(draw: st.DrawFn, config: ExtractorConfig, framing: st.SearchStrategy[Framing]) -> bytes:
    """A request from the whole grammar, with the body ``framing`` gives."""
    method, target, version = draw(request_lines(config))
    before, after = draw(SEPARATORS)
    start = method + before + target + after + version + draw(line_ends())
    lines = header_lines(config)
    fields, body = _framed(draw, [draw(lines) for _ in range(draw(header_counts(config)))], framing)
    return start + fields + draw(SECTION_ENDS) + body


@functools.cache
def requests(config: ExtractorConfig) -> st.SearchStrategy[bytes]:
    """One request: request line, header lines (sometimes more than ``max_header_lines``) and an end that may
    be missing, a bare LF or followed by a body."""
    return _requests(config, UNFRAMED)


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
def _simple_fields(config: ExtractorConfig) -> st.SearchStrategy[list[bytes]]:
    """Up to four well-formed lines of configured headers (built once per configuration, not per draw)."""
    field = st.tuples(
        st.sampled_from([rule.name.encode() for rule in config.headers]), latin1(VISIBLE, 1, 12)
    )
    return st.lists(field.map(lambda pair: b"%s: %s\r\n" % pair), max_size=4)


METHODS = st.sampled_from([method.encode() for method in STANDARD_METHODS])


@st.composite
def _simple_requests(draw: st.DrawFn, config: ExtractorConfig, framing: st.SearchStrategy[Framing]) -> bytes:
    """A well-formed request: a standard method, configured headers, and the body ``framing`` gives."""
    method = draw(METHODS)
    path = draw(latin1(VISIBLE, 0, 12))
    fields, body = _framed(draw, draw(_simple_fields(config)), framing)
    return b"%s /%s HTTP/1.1\r\n" % (method, path) + fields + b"\r\n" + body


@functools.cache
def simple_requests(config: ExtractorConfig) -> st.SearchStrategy[bytes]:
    """Well-formed requests only, for fuzzing the transport alone."""
    return _simple_requests(config, st.just((b"", b"")))


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


@dataclasses.dataclass(frozen=True)
class Shapes:
    """Where ``frame_specs`` may take a frame: every variation, or only those that reach a flow (R15)."""

    tag_counts: st.SearchStrategy[int] = TAG_COUNTS
    fragments: st.SearchStrategy[str] = FRAGMENTS
    ipv6_ext: st.SearchStrategy[bool] = IPV6_EXT
    protocols: st.SearchStrategy[str] = PROTOCOLS


ANY_SHAPE = Shapes()
# A flow's frames must all get past R2-R5 to have a flow at all: no third VLAN tag, later fragment, IPv6
# extension header or UDP (the per-frame targets cover those). A first fragment is parsed like any packet.
FLOW_SHAPE = Shapes(
    tag_counts=weighted((6, st.just(0)), (2, st.integers(1, 2))),
    fragments=weighted((8, st.just("none")), (1, st.just("first"))),
    ipv6_ext=st.just(False),
    protocols=st.just("tcp"),
)


@st.composite
def frame_specs(
    draw: st.DrawFn,
    config: ExtractorConfig,
    payload: st.SearchStrategy[bytes],
    shapes: Shapes = ANY_SHAPE,
) -> FrameSpec:
    """R1-R7 around a payload: family, VLAN tags, options, fragments, ports, protocol, Ethernet padding."""
    family = draw(FAMILIES)
    tags = draw(shapes.tag_counts)
    return FrameSpec(
        payload=draw(payload),
        family=family,
        sport=draw(PORTS),
        dport=draw(dports(config)),
        vlan_ids=tuple(draw(VLAN_IDS) for _ in range(tags)),
        vlan_tpids=tuple(draw(TPIDS) for _ in range(tags)),
        ip_options=draw(IP_OPTION_BYTES) if family == 4 else b"",
        tcp_options=draw(TCP_OPTION_BYTES),
        fragment=draw(shapes.fragments) if family == 4 else "none",
        ipv6_ext=draw(shapes.ipv6_ext) if family == 6 else False,
        protocol=draw(shapes.protocols),
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


# --- Flows: R14-R18 ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Flow:
    """The client frames of one TCP connection, in the order they are sent; judged by one fresh FlowTracker.

    The kernel's flow map outlives an example, so ``reset``, an RST for the flow's tuple, goes first: it
    removes whatever state an earlier example left (R15), while to a fresh ``FlowTracker`` an RST of a flow
    without state changes and counts nothing. Both sides so start the flow's frames from no state, and the
    reset's own outcome is not compared (the kernel's ``flows_closed`` depends on the examples before).
    Distinct ports per example would need a counter across examples and take the ports from the fuzzer.
    """

    reset: bytes
    frames: tuple[bytes, ...]
    leaving: frozenset[int] = frozenset()  # which frames the server sends (their indices): R24, R25

    @property
    def sent(self) -> tuple[bytes, ...]:
        """Every frame the kernel is given, in order: the reset, then the flow's frames."""
        return (self.reset, *self.frames)

    @property
    def arriving(self) -> tuple[bytes, ...]:
        """The flow's frames that the client sends, in order."""
        return tuple(frame for index, frame in enumerate(self.frames) if index not in self.leaving)


Item = bytes | Flow  # what an example is made of: a frame on a flow of its own, or a whole flow


def sent(item: Item) -> tuple[bytes, ...]:
    """The frames an item is made of, in the order they are sent: the frame, or the flow's reset and frames."""
    return item.sent if isinstance(item, Flow) else (item,)


FORGED_BEFORE = weighted(
    (2, st.just(b"")), (2, latin1(VISIBLE + " \r\n", 1, 40)), (1, st.binary(min_size=1, max_size=8))
)
FORGED_AFTER = weighted((1, st.just(b"")), (1, st.binary(min_size=1, max_size=16)))


@st.composite
def _forged(draw: st.DrawFn, config: ExtractorConfig) -> bytes:
    """A body holding a request, line and headers, at a random offset: only its length says it is a body."""
    inner = weighted((3, simple_requests(config)), (1, requests(config)))
    return draw(FORGED_BEFORE) + draw(inner) + draw(FORGED_AFTER)


@functools.cache
def bodies(config: ExtractorConfig) -> st.SearchStrategy[bytes]:
    """Message bodies (R14): random bytes, request-looking text, none, and longer than the view (R7)."""
    return weighted(
        (3, st.binary(max_size=24)),
        (4, _forged(config)),
        (1, st.just(b"")),
        (1, sized(VISIBLE + " \r\n", st.integers(config.max_scan_bytes - 8, 2 * config.max_scan_bytes))),
    )


RIGHT_LENGTH = weighted((12, st.just(True)), (1, st.just(False)))
# How the length is written: plainly, a leading zero, 12 digits (the kernel's second word), 17 digits (R17
# refuses), not digits at all (None).
LENGTH_FORMS = weighted(
    (20, st.just(b"%d")),
    (1, st.just(b"0%d")),
    (1, st.just(b"%012d")),
    (1, st.just(b"%017d")),
    (1, st.just(None)),
)
CONTENT_LENGTH_NAMES = case_variants(st.just("Content-Length"))
# What follows the Content-Length line: nothing, the same line again, or a Transfer-Encoding (R17: unknown).
ALSO = weighted((20, st.just("nothing")), (1, st.just("again")), (1, st.just("coding")))
# Transfer-Encoding values (R19): a final chunked, and the forms that are not (another coding last, none).
CODINGS = st.sampled_from(
    [b"chunked", b"gzip, chunked", b"CHUNKED", b"chunked, gzip", b"identity", b"gzip", b""]
)
# The Content-Length line's end: the odd ones of ``line_ends`` would merge it with the next line (R17: bad).
LENGTH_LINE_ENDS = weighted((3, st.just(b"\r\n")), (1, st.just(b"\n")), (1, line_ends()))


@st.composite
def _framed_bodies(draw: st.DrawFn, config: ExtractorConfig) -> Framing:
    """(Content-Length line, body): mostly the body's length, any letter case, OWS (R17); now and then a
    length that is wrong, one R17 refuses (17 digits, not digits, a second line) or a Transfer-Encoding."""
    body = draw(bodies(config))
    declared = len(body) if draw(RIGHT_LENGTH) else draw(st.integers(0, len(body) + 8))
    form = draw(LENGTH_FORMS)
    value = form % declared if form is not None else draw(latin1(VISIBLE, 1, 4))
    ows = whitespace()
    line = draw(CONTENT_LENGTH_NAMES) + b":" + draw(ows) + value + draw(ows) + draw(LENGTH_LINE_ENDS)
    coding = b"Transfer-Encoding: %s\r\n" % draw(CODINGS)
    also = {"nothing": b"", "again": line, "coding": coding}[draw(ALSO)]
    return line + also, body


CHUNKED_CODINGS = st.sampled_from([b"chunked", b"gzip, chunked", b"CHUNKED", b"Chunked "])
# A chunk size's form (R20): plain lower or upper hex, leading zeros (17 digits are refused), an extension.
SIZE_FORMS = weighted(
    (12, st.just(b"%x")),
    (2, st.just(b"%X")),
    (1, st.just(b"0%x")),
    (1, st.just(b"%017x")),
    (2, st.just(b"%x;name=value")),
    (1, st.just(b"%x;")),
)
TRAILERS = weighted((4, st.just(b"")), (1, st.just(b"X-Checksum: 1\r\n")), (1, st.just(b"A: 1\r\nB:\r\n")))
# Now and then a chunked body breaks R20's grammar in one place, which loses the flow.
CHUNK_FAULTS = weighted(
    (20, st.just(None)),
    (1, st.just((b"\r\n", b"\n"))),
    (1, st.just((b"\r\n", b" \r\n"))),
    (1, st.just((b"\r\n", b"\r"))),
    (1, st.just((b"\r\n", b"x\r\n"))),
)


@st.composite
def _chunked_bodies(draw: st.DrawFn, config: ExtractorConfig) -> Framing:
    """(Transfer-Encoding line, chunked body) of R20: a body from ``bodies`` cut in chunks of random sizes
    (request-looking text may be chunk data), each size in one of SIZE_FORMS, the last chunk, trailers, and now
    and then one fault in the framing."""
    data = draw(bodies(config))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
    parts = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True) if b > a]
    body = b"".join((draw(SIZE_FORMS) % len(part)) + b"\r\n" + part + b"\r\n" for part in parts)
    body += b"0\r\n" + draw(TRAILERS) + b"\r\n"
    fault = draw(CHUNK_FAULTS)
    if fault is not None:
        ends = [at for at in range(len(body)) if body.startswith(fault[0], at)]
        at = draw(st.sampled_from(ends))
        body = body[:at] + fault[1] + body[at + len(fault[0]) :]
    line = draw(case_variants(st.just("Transfer-Encoding"))) + b": " + draw(CHUNKED_CODINGS) + b"\r\n"
    return line, body


@functools.cache
def flow_requests(config: ExtractorConfig) -> st.SearchStrategy[bytes]:
    """The requests of a connection: mostly well-formed, so a flow goes on past them, many with a
    Content-Length or a chunked body (R14, R17, R20), some from the whole grammar."""
    framed = _framed_bodies(config)
    chunked = _chunked_bodies(config)
    return weighted(
        (3, simple_requests(config)),
        (4, _simple_requests(config, framed)),
        (2, _simple_requests(config, chunked)),
        (1, requests(config)),
        (1, _requests(config, framed)),
        (1, _requests(config, chunked)),
    )


@dataclasses.dataclass(frozen=True)
class Piece:
    """One segment of a flow before it is built: ``data`` is the stream from byte ``at`` on (a SYN's own
    sequence number is the one before ``at``, its payload starts after it: R15, R16)."""

    at: int
    data: bytes = b""
    flags: str = "PA"

    @property
    def end(self) -> int:
        return self.at + len(self.data)


MAX_SEGMENT = 1400  # payload bytes, as on a 1500-byte MTU; BPF_PROG_TEST_RUN takes at most a page per frame
# Besides a few cuts: none more, a cut at every line start (a segment per line, a body in several), or a cut
# at every byte of a stretch of up to 128 bytes (1-byte segments through a request line, headers or a body).
CUT_STYLES = weighted((4, st.just("few")), (2, st.just("lines")), (1, st.just("bytes")))


@st.composite
def segmented(draw: st.DrawFn, stream: bytes, starts: frozenset[int]) -> list[Piece]:
    """The stream cut at a few offsets, half of them where the grammar draws lines (after an LF, at one of
    the request ``starts`` or just before it, in the body of the request before: R14, R18) and half anywhere,
    sometimes at every line or every byte (CUT_STYLES)."""
    size = len(stream)
    cuts = set(range(MAX_SEGMENT, size, MAX_SEGMENT))
    if size > 1:
        before = {start - back for start in starts for back in (1, 4)}
        lines = starts | before | {at + 1 for at, byte in enumerate(stream) if byte == 0x0A}
        places = sorted(at for at in lines if 0 < at < size)
        anywhere = st.integers(1, size - 1)
        cut = st.one_of(anywhere, st.sampled_from(places)) if places else anywhere
        cuts.update(draw(st.lists(cut, max_size=6)))
        style = draw(CUT_STYLES)
        if style == "lines":
            cuts.update(places)
        elif style == "bytes":
            start = draw(st.integers(1, size - 1))
            cuts.update(range(start, min(size, start + draw(st.integers(1, 128)))))
    bounds = [0, *sorted(cuts), size]
    return [Piece(start, stream[start:end]) for start, end in itertools.pairwise(bounds)]


OPENINGS = weighted(
    (6, st.just("syn")), (1, st.just("none")), (1, st.just("fast open")), (1, st.just("late"))
)


@st.composite
def opened(draw: st.DrawFn, pieces: list[Piece]) -> list[Piece]:
    """How the flow begins (R15): a SYN first, no SYN (mid-stream), the first segment's data on the SYN (TCP
    Fast Open), or a SYN only before a later segment (as after attaching to a busy link)."""
    how = draw(OPENINGS)
    if how == "syn":
        return [Piece(0, flags="S"), *pieces]
    if how == "fast open":
        return [Piece(0, pieces[0].data, "S"), *pieces[1:]]
    if how == "late":
        at = draw(st.integers(0, len(pieces) - 1))
        return [*pieces[:at], Piece(pieces[at].at, flags="S"), *pieces[at:]]
    return pieces


def _next_at(pieces: list[Piece], index: int) -> int:
    """The stream offset a segment put at ``index`` would start at: that of the one it goes before."""
    return pieces[index].at if index < len(pieces) else max(piece.end for piece in pieces)


@st.composite
def _repeated(draw: st.DrawFn, pieces: list[Piece], stream: bytes) -> list[Piece]:
    """A segment sent again later (R16: retransmitted once every byte of it was read)."""
    index = draw(st.integers(0, len(pieces) - 1))
    again = draw(st.integers(index + 1, len(pieces)))
    return [*pieces[:again], pieces[index], *pieces[again:]]


CHANGED = weighted((3, st.just(False)), (1, st.just(True)))


@st.composite
def _overlapping(draw: st.DrawFn, pieces: list[Piece], stream: bytes) -> list[Piece]:
    """A re-send that starts up to 64 bytes before a segment and covers it and maybe more, sent in its place
    or before it: R16 reads from the first new byte, so the old ones, sometimes changed, are never read."""
    index = draw(st.integers(0, len(pieces) - 1))
    piece = pieces[index]
    if not 0 <= piece.at <= len(stream):  # a stray segment: nothing of the stream to re-send
        return pieces
    start = max(0, piece.at - draw(st.integers(1, 64)))
    end = min(len(stream), max(piece.end, piece.at + 1) + draw(st.integers(0, 64)))
    old = stream[start : piece.at]
    if draw(CHANGED):
        old = draw(st.binary(min_size=len(old), max_size=len(old)))
    resent = Piece(start, old + stream[piece.at : end], piece.flags)
    return [*pieces[:index], resent, *pieces[index + draw(st.integers(0, 1)) :]]


NEIGHBOURS = weighted((3, st.just(True)), (1, st.just(False)))


@st.composite
def _swapped(draw: st.DrawFn, pieces: list[Piece], stream: bytes) -> list[Piece]:
    """Two segments swapped, mostly neighbours (R16: out_of_order, then retransmitted or read)."""
    if len(pieces) < 2:
        return pieces
    first = draw(st.integers(0, len(pieces) - 2))
    second = first + 1 if draw(NEIGHBOURS) else draw(st.integers(first + 1, len(pieces) - 1))
    swapped = list(pieces)
    swapped[first], swapped[second] = pieces[second], pieces[first]
    return swapped


@st.composite
def _dropped(draw: st.DrawFn, pieces: list[Piece], stream: bytes) -> list[Piece]:
    """A segment lost for good: every later one is out_of_order (R16)."""
    index = draw(st.integers(0, len(pieces) - 1))
    return [*pieces[:index], *pieces[index + 1 :]]


RST_DATA_SIZES = weighted((3, st.just(0)), (1, st.integers(1, 16)))


@st.composite
def _reset(draw: st.DrawFn, pieces: list[Piece], stream: bytes) -> list[Piece]:
    """An RST anywhere, bare, with ACK or SYN, or carrying the next bytes: the state goes (R15)."""
    index = draw(st.integers(0, len(pieces)))
    at = _next_at(pieces, index)
    data = stream[max(0, at) : max(0, at + draw(RST_DATA_SIZES))]
    flags = draw(st.sampled_from(["R", "RA", "SR"]))
    return [*pieces[:index], Piece(at, data, flags), *pieces[index:]]


ON_DATA = weighted((2, st.just(False)), (1, st.just(True)))


@st.composite
def _finished(draw: st.DrawFn, pieces: list[Piece], stream: bytes) -> list[Piece]:
    """A FIN at the end or in the middle, alone or on a data segment (read before the state goes, R15)."""
    index = len(pieces) - draw(st.integers(0, len(pieces)))  # shrinks towards a FIN at the end
    if draw(ON_DATA) and index < len(pieces):
        fin = dataclasses.replace(pieces[index], flags="F" + pieces[index].flags.replace("F", ""))
        return [*pieces[:index], fin, *pieces[index + 1 :]]
    return [*pieces[:index], Piece(_next_at(pieces, index), flags="FA"), *pieces[index:]]


HALF = 1 << 31
STRAY_DISTANCES = weighted(
    (2, st.sampled_from((HALF - 1, HALF, HALF + 1, -HALF, -HALF + 1, -HALF - 1))),
    (1, st.integers(-(1 << 32), 1 << 32)),
)


@st.composite
def _stray(draw: st.DrawFn, pieces: list[Piece], stream: bytes) -> list[Piece]:
    """A segment far off in sequence space: about 2^31 from where it goes, where RFC 1982 order flips (R15)."""
    index = draw(st.integers(0, len(pieces)))
    distance = draw(STRAY_DISTANCES)
    stray = Piece(_next_at(pieces, index) + distance, draw(st.binary(min_size=1, max_size=16)))
    return [*pieces[:index], stray, *pieces[index:]]


Perturbation = Callable[[list[Piece], bytes], st.SearchStrategy[list[Piece]]]
PERTURBATIONS: st.SearchStrategy[Perturbation] = weighted(
    (3, st.just(_repeated)),
    (3, st.just(_overlapping)),
    (2, st.just(_swapped)),
    (1, st.just(_dropped)),
    (2, st.just(_reset)),
    (2, st.just(_finished)),
    (1, st.just(_stray)),
)
PERTURBATION_COUNTS = weighted((3, st.just(0)), (3, st.just(1)), (1, st.integers(2, 3)))


@st.composite
def perturbed(draw: st.DrawFn, pieces: list[Piece], stream: bytes) -> list[Piece]:
    """The segments after 0-3 of: a retransmission, an overlapping re-send, a swap, a loss, an RST, a FIN, a
    segment far away in sequence space."""
    for _ in range(draw(PERTURBATION_COUNTS)):
        if not pieces:  # every segment dropped
            break
        pieces = draw(draw(PERTURBATIONS)(pieces, stream))
    return pieces


SEQ_SPACE = 1 << 32
# The sequence number of the stream's first byte: the one the corpus uses, anywhere, or close enough to 2^32
# that the flow's sequence numbers wrap (R15 compares them modulo 2^32).
FIRST_SEQS = weighted(
    (1, st.just(1000)),
    (2, st.integers(0, SEQ_SPACE - 1)),
    (2, st.integers(-64, 4).map(lambda first: first % SEQ_SPACE)),
)
TRUNCATED = weighted((12, st.just(False)), (1, st.just(True)))


@functools.cache
def flow_messages(config: ExtractorConfig) -> st.SearchStrategy[list[bytes]]:
    """The 1-4 requests of a connection, in order (``flow_requests``)."""
    return st.lists(flow_requests(config), min_size=1, max_size=4)


@functools.cache
def flow_specs(config: ExtractorConfig) -> st.SearchStrategy[FrameSpec]:
    """A flow's transport shape; its frames get their payloads, flags and sequence numbers from the pieces."""
    return frame_specs(config, st.just(b""), FLOW_SHAPE)


def _frame(spec: FrameSpec, piece: Piece, first: int) -> bytes:
    """The frame of one piece: its data at sequence number ``first + at``, one less on a SYN."""
    seq = (first + piece.at - ("S" in piece.flags)) % SEQ_SPACE
    return fast_build(dataclasses.replace(spec, payload=piece.data, flags=piece.flags, seq=seq))


@st.composite
def flows(draw: st.DrawFn, config: ExtractorConfig) -> Flow:
    """One TCP connection: 1-4 requests (some with bodies, some bodies holding a request) as one stream, cut
    into segments (``segmented``), begun (``opened``) and perturbed (``perturbed``) in one transport shape, now
    and then one frame cut shorter than its IP length (R16 counts the IP length)."""
    spec = draw(flow_specs(config))
    messages = draw(flow_messages(config))
    stream = b"".join(messages)
    starts = frozenset(itertools.accumulate(len(message) for message in messages))
    return _connection(draw, spec, stream, starts)


def _connection(draw: st.DrawFn, spec: FrameSpec, stream: bytes, starts: frozenset[int]) -> Flow:
    """The frames of one connection carrying ``stream`` (``starts``: where its messages start) in the
    transport shape ``spec``: segmented, begun and perturbed, now and then one frame truncated."""
    pieces = draw(perturbed(draw(opened(draw(segmented(stream, starts)))), stream))
    first = draw(FIRST_SEQS)
    frames = [_frame(spec, piece, first) for piece in pieces]
    if frames and draw(TRUNCATED):
        index = draw(st.integers(0, len(frames) - 1))
        frames[index] = frames[index][: draw(st.integers(MIN_FRAME, len(frames[index]) - 1))]
    return Flow(_frame(spec, Piece(0, flags="R"), first), tuple(frames))


# --- TLS: R21, R22 -------------------------------------------------------------------------------------


@functools.cache
def tls_dports(config: ExtractorConfig) -> st.SearchStrategy[int]:
    """Mostly a TLS port (R21); now and then an HTTP port (a hello there is not HTTP, R8) or any port."""
    return weighted(
        (8, st.sampled_from(config.tls_ports or config.ports)),
        (1, st.sampled_from(config.ports)),
        (1, PORTS),
    )


HOST_NAME_BYTES = "abcdefghijklmnopqrstuvwxyz0123456789-."
PROTOCOLS = st.sampled_from([b"h2", b"http/1.1", b"http/1.0", b"h3", b"spdy/3.1", b"acme-tls/1"])
# supported_versions entries and legacy_version values: the real ones, GREASE (R22 skips it), the rest
TLS_VERSION_VALUES = weighted(
    (6, st.sampled_from([tls.TLS_1_3, tls.TLS_1_2])),
    (2, st.sampled_from(tls.GREASE)),
    (1, st.sampled_from([0, 0x0300, tls.TLS_1_0, tls.TLS_1_1, 0x7F1C, 0x0A1A, 0x1A2A])),  # 0x?A?A, not GREASE
    (1, st.integers(0, 0xFFFF)),
)
NAME_TYPES = weighted((12, st.just(tls.HOST_NAME)), (1, st.integers(1, 255)))
MORE_NAMES = weighted((6, st.just([])), (1, st.lists(latin1(HOST_NAME_BYTES, 0, 12), min_size=1, max_size=2)))


@st.composite
def _server_names(draw: st.DrawFn, config: ExtractorConfig) -> tls.Extension:
    """A server_name extension (R22): a host name whose length is often at ``max_target_len``'s edge, now and
    then another name type or more entries (only the first is read)."""
    name = draw(sized(HOST_NAME_BYTES, lengths(config.max_target_len, 2 * config.max_target_len)))
    more = draw(MORE_NAMES)
    return tls.SERVER_NAME, tls.server_name(name, *more, name_type=draw(NAME_TYPES))


@functools.cache
def _protocol_names(config: ExtractorConfig) -> st.SearchStrategy[bytes]:
    """ALPN protocol names: known ones, random ones, some as long as ``max_value_len``, now and then an
    empty one (which ends R22's names)."""
    long = sized(VISIBLE, lengths(config.max_value_len, min(255, 2 * config.max_value_len)))
    return weighted(
        (6, PROTOCOLS), (2, latin1(VISIBLE, 1, 12)), (1, long.map(lambda name: name[:255])), (1, st.just(b""))
    )


@st.composite
def _alpn_lists(draw: st.DrawFn, config: ExtractorConfig) -> tls.Extension:
    """An ALPN extension (R22) of 0-8 names; their total often crosses ``max_value_len``."""
    return tls.ALPN, tls.alpn(*draw(st.lists(_protocol_names(config), max_size=8)))


@st.composite
def _version_lists(draw: st.DrawFn) -> tls.Extension:
    """A supported_versions extension (R22) of 0-10 versions, GREASE among them (only the first 8 count)."""
    return tls.SUPPORTED_VERSIONS, tls.supported_versions(*draw(st.lists(TLS_VERSION_VALUES, max_size=10)))


@functools.cache
def _read_extensions(config: ExtractorConfig) -> st.SearchStrategy[tls.Extension]:
    """One of the three extension types R22 reads."""
    return st.one_of(_server_names(config), _alpn_lists(config), _version_lists())


OTHER_TYPES = weighted(
    (3, st.sampled_from([10, 11, 13, 21, 22, 23, 35, 45, 51, 0xFF01])),
    (1, st.sampled_from(tls.GREASE)),
    (1, st.integers(0, 0xFFFF)),
)
OTHER_DATA = weighted((3, st.just(b"")), (3, st.binary(max_size=8)), (1, st.binary(max_size=40)))
OTHER_EXTENSIONS = st.tuples(OTHER_TYPES, OTHER_DATA)
# How many extensions R22 does not read: a few, or about TLS_MAX_EXTENSIONS (32), empty so that the 33rd
# still starts inside a small view
OTHER_EXTENSION_LISTS = weighted(
    (6, st.lists(OTHER_EXTENSIONS, max_size=6)),
    (1, st.lists(st.tuples(OTHER_TYPES, st.just(b"")), min_size=28, max_size=34)),
)
NO_BLOCK = weighted((12, st.just(False)), (1, st.just(True)))
PADDED = weighted((4, st.just(False)), (1, st.just(True)))


@st.composite
def _extension_lists(draw: st.DrawFn, config: ExtractorConfig) -> tuple[tls.Extension, ...] | None:
    """A hello's extensions in a random order: 0-4 of the types R22 reads (so some missing, some twice)
    among others, sometimes more than 32 in all or padding that takes the hello past the view (R7); now
    and then no extensions block at all."""
    if draw(NO_BLOCK):
        return None
    read = draw(st.lists(_read_extensions(config), max_size=4))
    others = draw(OTHER_EXTENSION_LISTS)
    extensions = draw(st.permutations(read + others))
    if draw(PADDED):
        extensions.append((tls.PADDING, bytes(draw(st.integers(0, config.max_scan_bytes)))))
    return tuple(extensions)


@st.composite
def client_hellos(draw: st.DrawFn, config: ExtractorConfig) -> tls.ClientHello:
    """Well-formed ClientHellos (R22): fixed fields of every legal size, extensions from ``_extension_lists``."""
    return tls.ClientHello(
        legacy_version=draw(weighted((6, st.just(tls.TLS_1_2)), (1, TLS_VERSION_VALUES))),
        random=draw(weighted((3, st.just(bytes(tls.RANDOM_LEN))), (1, st.binary(min_size=32, max_size=32)))),
        session_id=draw(
            weighted((3, st.just(b"")), (3, st.binary(min_size=32, max_size=32)), (1, st.binary(max_size=32)))
        ),
        cipher_suites=tuple(draw(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=16))),
        compression=draw(weighted((6, st.just(b"\x00")), (1, st.binary(min_size=1, max_size=3)))),
        extensions=draw(_extension_lists(config)),
        record_version=draw(
            weighted((4, st.just(tls.TLS_1_0)), (1, st.sampled_from([0x0300, 0x0303, 0x0304])))
        ),
    )


def _true_lengths(hello: tls.ClientHello) -> dict[str, int]:
    """The values ``to_bytes`` computes for the three length fields a hello can override."""
    body = hello.body()
    return {
        "record_length": tls.HANDSHAKE_HEADER_LEN + len(body),
        "handshake_length": len(body),
        "extensions_length": max(0, len(hello.extensions_block()) - 2),
    }


# Header bytes R22 refuses, and the edges of those it accepts (record version 3.4 is, 3.5 is not)
BROKEN_HEADERS = st.one_of(
    st.tuples(st.just("record_type"), st.sampled_from([20, 21, 23, 0x96, 0])),
    st.tuples(st.just("record_version"), st.sampled_from([0x0304, 0x0305, 0x03FF, 0x0203, 0x0403])),
    st.tuples(st.just("handshake_type"), st.sampled_from([0, 2, 11, 0x81])),
)
NEAR = weighted((3, st.integers(-8, 8)), (1, st.integers(-0xFFFF, 0xFFFF)))
TRAILING = weighted((2, st.just(b"\x00")), (1, st.binary(min_size=1, max_size=8)))
BREAKS = st.sampled_from(["length", "header", "trailing"])


@st.composite
def _broken(draw: st.DrawFn, hello: tls.ClientHello) -> tls.ClientHello:
    """``hello`` with one field broken: a length field a few bytes off (or anything), a header byte R22
    refuses or only just accepts, or bytes after the extensions block (one: BAD_EXTENSIONS)."""
    how = draw(BREAKS)
    if how == "length":
        field, true = draw(st.sampled_from(sorted(_true_lengths(hello).items())))
        limit = 0xFFFFFF if field == "handshake_length" else 0xFFFF
        return dataclasses.replace(hello, **{field: min(limit, max(0, true + draw(NEAR)))})
    if how == "header":
        field, value = draw(BROKEN_HEADERS)
        return dataclasses.replace(hello, **{field: value})
    return dataclasses.replace(hello, trailing=draw(TRAILING))


GARBLES = st.sampled_from(["cut", "bytes", "splice"])


@st.composite
def _garbled(draw: st.DrawFn, record: bytes) -> bytes:
    """A hello's record cut short (a hello the payload's end cuts, R22), with 1-3 bytes changed (often in
    the headers and fixed fields), or with random bytes spliced in."""
    how = draw(GARBLES)
    if how == "cut":
        return record[: draw(st.integers(1, len(record) - 1))]
    data = bytearray(record)
    if how == "bytes":
        for _ in range(draw(st.integers(1, 3))):
            end = draw(st.sampled_from([min(len(data), 48), len(data)]))
            data[draw(st.integers(0, end - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    at = draw(st.integers(0, len(data)))
    return bytes(data[:at]) + draw(st.binary(min_size=1, max_size=8)) + bytes(data[at:])


def _record(hello: tls.ClientHello) -> bytes:
    return hello.to_bytes()


@functools.cache
def hello_payloads(config: ExtractorConfig) -> st.SearchStrategy[bytes]:
    """What a TLS flow starts with (R21): a well-formed ClientHello, one with a field broken, one cut or
    garbled, random bytes, or an HTTP request (``not_tls``)."""
    hellos = client_hellos(config)
    return weighted(
        (6, hellos.map(_record)),
        (2, hellos.flatmap(_broken).map(_record)),
        (2, hellos.map(_record).flatmap(_garbled)),
        (1, st.binary(min_size=1, max_size=64)),
        (1, simple_requests(config)),
    )


@st.composite
def tls_specs(draw: st.DrawFn, config: ExtractorConfig, payload: st.SearchStrategy[bytes]) -> FrameSpec:
    """``frame_specs`` (R1-R7) around a payload, to a port from ``tls_dports``."""
    spec = draw(frame_specs(config, payload))
    return dataclasses.replace(spec, dport=draw(tls_dports(config)))


APPLICATION_DATA = weighted((1, st.just(b"")), (3, st.binary(max_size=160)))


@st.composite
def tls_flows(draw: st.DrawFn, config: ExtractorConfig) -> Flow:
    """One TLS connection (R21): a first payload from ``hello_payloads``, then encrypted bytes, cut,
    begun and perturbed as ``flows`` does (a retransmitted or overlapping hello, a hello on the SYN, a
    segment before the SYN, RST and FIN)."""
    spec = dataclasses.replace(draw(flow_specs(config)), dport=draw(tls_dports(config)))
    hello = draw(hello_payloads(config))
    return _connection(draw, spec, hello + draw(APPLICATION_DATA), frozenset({len(hello)}))


# --- Responses: R24, R25 ---------------------------------------------------------------------------------

# Final statuses, interim ones (R25: 101 answers, the others do not), and any three digits.
STATUSES = weighted(
    (6, st.sampled_from([200, 204, 301, 304, 404, 500, 503])),
    (2, st.sampled_from([100, 101, 102, 103])),
    (1, st.integers(0, 999)),
)
STATUS_LINE_TAILS = st.sampled_from(
    [b" OK\r\n\r\n", b"\r\n\r\n", b" Not Found\r\nContent-Length: 0\r\n\r\n", b" "]
)


@st.composite
def server_segments(draw: st.DrawFn) -> bytes:
    """What a server's segment starts with: a status line (HTTP/1.0 or 1.1, a status, a reason or none), now
    and then one byte of its first 13 changed or the segment cut inside them, or a body's bytes."""
    version = draw(st.sampled_from([b"1.1", b"1.0"]))
    segment = b"HTTP/" + version + b" " + b"%03d" % draw(STATUSES) + draw(STATUS_LINE_TAILS)
    change = draw(
        weighted((6, st.just("none")), (1, st.just("byte")), (1, st.just("cut")), (1, st.just("body")))
    )
    if change == "byte":
        at = draw(st.integers(0, 12))
        segment = segment[:at] + bytes([draw(SPECIAL_OR_ANY)]) + segment[at + 1 :]
    elif change == "cut":
        segment = segment[: draw(st.integers(1, 12))]
    elif change == "body":
        segment = draw(st.binary(min_size=1, max_size=64))
    return segment


SPECIAL_OR_ANY = st.one_of(st.sampled_from(b"HTP/1. 0\r\n9"), st.integers(0, 255))


@st.composite
def response_flows(draw: st.DrawFn, config: ExtractorConfig) -> Flow:
    """One connection of ``flows`` with the server's segments woven in: up to 8, each after a random one of
    the client's frames, so that responses come before, between and after the requests they answer, and
    status lines answer requests that were retransmitted, lost or never logged."""
    spec = draw(flow_specs(config))
    messages = draw(flow_messages(config))
    stream = b"".join(messages)
    client = _connection(draw, spec, stream, frozenset(itertools.accumulate(len(m) for m in messages)))
    segments = draw(st.lists(server_segments(), max_size=8))
    after = sorted(
        draw(st.lists(st.integers(0, len(client.frames)), min_size=len(segments), max_size=len(segments)))
    )
    server_seq = draw(FIRST_SEQS)
    frames: list[bytes] = list(client.frames)
    leaving: list[int] = []
    for placed, (position, segment) in enumerate(zip(after, segments, strict=True)):
        index = position + placed  # past the client's frames before it and the server's placed already
        reply = dataclasses.replace(spec, payload=segment, flags="PA", seq=server_seq % SEQ_SPACE, reply=True)
        frames.insert(index, fast_build(reply))
        leaving.append(index)
        server_seq += len(segment)
    return Flow(client.reset, tuple(frames), frozenset(leaving))


# --- Campaign targets ----------------------------------------------------------------------------------


def _flows(config: ExtractorConfig) -> st.SearchStrategy[list[Item]]:
    return flows(config).map(lambda flow: [flow])


def _tls(config: ExtractorConfig) -> st.SearchStrategy[list[Item]]:
    """TLS frames each after its SYN (whole, in two segments, truncated), mutated ones, TLS connections."""
    frames = captures(tls_specs(config, hello_payloads(config)))
    return weighted((4, frames), (1, mutated(frames)), (3, tls_flows(config).map(lambda flow: [flow])))


def _all(config: ExtractorConfig) -> st.SearchStrategy[list[Item]]:
    whole = captures(frame_specs(config, payloads(config)))
    return weighted(
        (6, whole),
        (2, captures(plain_specs(config, payloads(config)))),
        (1, mutated(whole)),
        (2, _flows(config)),
        (2, _tls(config)),
    )


# Each target gives groups of items: the frames of one capture (each judged on a flow of its own, right after
# its SYN) or one flow (judged as a whole).
TARGETS: dict[str, Callable[[ExtractorConfig], st.SearchStrategy[list[Item]]]] = {
    "all": _all,
    "http": lambda config: captures(plain_specs(config, payloads(config))),
    "transport": lambda config: captures(frame_specs(config, simple_requests(config))),
    "mutation": lambda config: mutated(captures(frame_specs(config, payloads(config)))),
    "flows": _flows,
    "tls": _tls,
    "responses": lambda config: response_flows(config).map(lambda flow: [flow]),
}


def batches(
    config: ExtractorConfig, target: str = "all", max_captures: int = 4
) -> st.SearchStrategy[list[Item]]:
    """What one example feeds the kernel: 1-``max_captures`` groups of ``target``, as one list of items."""
    if target not in TARGETS:
        raise ValueError(f"unknown fuzz target {target!r}; choose one of {', '.join(TARGETS)}")
    return st.lists(TARGETS[target](config), min_size=1, max_size=max_captures).map(
        lambda groups: [item for group in groups for item in group]
    )


# --- Building frames fast ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _template(spec: FrameSpec) -> bytes:
    """The frame scapy builds for a transport shape: no payload, padding or truncation, placeholder ports,
    VLAN ids and sequence number (patched by ``fast_build``, so random ones do not defeat the cache)."""
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
    """``harness.oracle.frames.build(spec)``, byte for byte, with scapy run once per transport shape."""
    if spec.protocol != "tcp" or spec.ipv6_ext:
        return build(spec)
    shape = dataclasses.replace(
        spec,
        payload=b"",
        pad=0,
        truncate_to=None,
        sport=1,
        dport=1,
        vlan_ids=(0,) * len(spec.vlan_ids),
        seq=0,
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
    ports = (spec.dport, spec.sport) if spec.reply else (spec.sport, spec.dport)
    frame[l4 : l4 + 8] = struct.pack("!HHI", *ports, spec.seq)
    frame[l4 + 16 : l4 + 18] = b"\x00\x00"
    frame[l4 + 16 : l4 + 18] = _checksum(pseudo + bytes(frame[l4:])).to_bytes(2, "big")
    frame += bytes(spec.pad)
    return bytes(frame if spec.truncate_to is None else frame[: spec.truncate_to])
