"""The reference extractor against expectations written by hand, rule by rule (docs/EXTRACTION.md).

The kernel program is checked against the reference; these tables are what keeps the reference itself honest.
Each table row is one behaviour a rule describes, written as input and expected output side by side.
"""

from __future__ import annotations

import dataclasses

import pytest

from harness.core.config import ExtractorConfig, HeaderMode, HeaderRule
from harness.core.counters import OUTCOMES, Counter, zero_counts
from harness.core.event import EventFlag, HeaderEvent, SlotFlag
from harness.oracle.corpus import CorpusCase, load_corpus
from harness.oracle.frames import FrameSpec, arp_frame, build, describe_difference, split
from harness.oracle.reference import Expected, auth_scheme, extract, siphash24

F = EventFlag
S = SlotFlag
KEY = bytes(range(16))
HTTP = b"GET / HTTP/1.1\r\n"


def run(payload: bytes, config: ExtractorConfig | None = None, **spec: object) -> Expected:
    """The reference's answer for ``payload`` in an ordinary client frame."""
    frame = build(FrameSpec(payload=payload, **spec))
    return extract(frame, config or ExtractorConfig(), KEY)


def only_event(payload: bytes, config: ExtractorConfig | None = None) -> HeaderEvent:
    result = run(payload, config)
    assert len(result.events) == 1, result.events
    return result.events[0]


def patched(frame: bytes, offset: int, value: bytes) -> bytes:
    return frame[:offset] + value + frame[offset + len(value) :]


# --- SipHash-2-4 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "message", "digest"),
    [
        (bytes(range(16)), bytes(range(15)), 0xA129CA6149BE45E5),  # the paper's worked example (appendix A)
        (bytes(range(16)), b"", 0x726FDB47DD0E0E31),  # vectors.h, first entry
        (bytes(range(16)), bytes(range(8)), 0x93F5F5799A932462),  # vectors.h: one full block, empty tail
    ],
)
def test_siphash24_vectors(key: bytes, message: bytes, digest: int) -> None:
    assert siphash24(key, message) == digest


def test_siphash24_rejects_short_key() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        siphash24(b"short", b"")


# --- R1-R6: frames and counters -----------------------------------------------------------------------------

REQUEST = HTTP + b"Host: a\r\n\r\n"
IPV4_FRAME = build(FrameSpec(REQUEST))
IPV6_FRAME = build(FrameSpec(REQUEST, family=6))
IP, TCP = 14, 34  # offsets in an untagged IPv4 frame without options

LAYER_CASES = {
    "R1 runt": (IPV4_FRAME[:13], Counter.MALFORMED),
    "R1 bare ethernet": (IPV4_FRAME[:14], Counter.MALFORMED),
    "R2 vlan tag cut": (build(FrameSpec(REQUEST, vlan_ids=(7,)))[:17], Counter.MALFORMED),
    "R2 second tag cut": (build(FrameSpec(REQUEST, vlan_ids=(7, 8)))[:21], Counter.MALFORMED),
    "R2 third tag": (build(FrameSpec(REQUEST, vlan_ids=(1, 2, 3))), Counter.VLAN_TOO_DEEP),
    "R2 third tag 88a8": (
        build(FrameSpec(REQUEST, vlan_ids=(1, 2, 3), vlan_tpids=(0x88A8, 0x88A8, 0x88A8))),
        Counter.VLAN_TOO_DEEP,
    ),
    "R2 two tags fine": (build(FrameSpec(REQUEST, vlan_ids=(1, 2))), Counter.HTTP_REQUEST),
    "R3 arp": (arp_frame(), Counter.NOT_IP),
    "R3 unknown ethertype": (patched(IPV4_FRAME, 12, b"\x88\xb5"), Counter.NOT_IP),
    "R4 short ipv4": (IPV4_FRAME[: IP + 19], Counter.MALFORMED),
    "R4 version 6 in ipv4": (patched(IPV4_FRAME, IP, b"\x65"), Counter.MALFORMED),
    "R4 ihl 4": (patched(IPV4_FRAME, IP, b"\x44"), Counter.MALFORMED),
    "R4 options missing": (
        build(FrameSpec(REQUEST, ip_options=b"\x94\x04\x00\x00"))[: IP + 22],
        Counter.MALFORMED,
    ),
    "R4 total length below header": (patched(IPV4_FRAME, IP + 2, b"\x00\x13"), Counter.MALFORMED),
    "R4 total length cuts tcp": (patched(IPV4_FRAME, IP + 2, b"\x00\x27"), Counter.MALFORMED),
    "R4 total length ends at tcp": (patched(IPV4_FRAME, IP + 2, b"\x00\x28"), Counter.NO_PAYLOAD),
    "R4 later fragment": (build(FrameSpec(REQUEST, fragment="later")), Counter.LATER_FRAGMENT),
    "R4 offset 1 without MF": (patched(IPV4_FRAME, IP + 6, b"\x00\x01"), Counter.LATER_FRAGMENT),
    "R4 first fragment": (build(FrameSpec(REQUEST, fragment="first")), Counter.HTTP_REQUEST),
    "R4 DF is not a fragment": (patched(IPV4_FRAME, IP + 6, b"\x40\x00"), Counter.HTTP_REQUEST),
    "R4 udp": (build(FrameSpec(REQUEST, protocol="udp")), Counter.NOT_TCP),
    "R4 later fragment before protocol": (
        build(FrameSpec(REQUEST, protocol="udp", fragment="later")),
        Counter.LATER_FRAGMENT,
    ),
    "R5 short ipv6": (IPV6_FRAME[: IP + 39], Counter.MALFORMED),
    "R5 version 4 in ipv6": (patched(IPV6_FRAME, IP, b"\x40"), Counter.MALFORMED),
    "R5 hop by hop": (build(FrameSpec(REQUEST, family=6, ipv6_ext=True)), Counter.IPV6_EXT_HEADER),
    **{
        f"R5 ext header {number}": (patched(IPV6_FRAME, IP + 6, bytes([number])), Counter.IPV6_EXT_HEADER)
        for number in (0, 43, 44, 50, 51, 60, 135, 139, 140)
    },
    "R5 udp": (build(FrameSpec(REQUEST, family=6, protocol="udp")), Counter.NOT_TCP),
    "R5 no next header": (patched(IPV6_FRAME, IP + 6, b"\x3b"), Counter.NOT_TCP),
    "R5 payload length cuts tcp": (patched(IPV6_FRAME, IP + 4, b"\x00\x13"), Counter.MALFORMED),
    "R6 tcp cut": (IPV4_FRAME[: TCP + 19], Counter.MALFORMED),
    "R6 data offset 4": (patched(IPV4_FRAME, TCP + 12, b"\x40"), Counter.MALFORMED),
    "R6 data offset past ip end": (patched(IPV4_FRAME, TCP + 12, b"\xf0"), Counter.MALFORMED),
    "R6 options fit": (
        build(FrameSpec(REQUEST, tcp_options=bytes.fromhex("020405b4"))),
        Counter.HTTP_REQUEST,
    ),
    "R6 port not watched": (build(FrameSpec(REQUEST, dport=81)), Counter.PORT_NOT_WATCHED),
    "R6 source port 80 only": (build(FrameSpec(REQUEST, sport=80, dport=40000)), Counter.PORT_NOT_WATCHED),
    "R6 syn": (build(FrameSpec(b"", flags="S")), Counter.NO_PAYLOAD),
    "R6 payload only in padding": (build(FrameSpec(b"", pad=30)), Counter.NO_PAYLOAD),
    "R8 not http": (build(FrameSpec(b"SSH-2.0-OpenSSH_9.6\r\n")), Counter.NOT_HTTP),
    "R8 request": (IPV4_FRAME, Counter.HTTP_REQUEST),
}
WATCHED = {Counter.NO_PAYLOAD, Counter.NOT_HTTP, Counter.HTTP_REQUEST}
# R15 tallies of the cases above that move one: a SYN opens its flow, not_http loses it (R8).
FLOW_TALLIES = {"R6 syn": Counter.FLOWS_OPENED, "R8 not http": Counter.FLOWS_LOST}


@pytest.mark.parametrize(
    ("frame", "outcome", "tally"),
    [(*case, FLOW_TALLIES.get(name)) for name, case in LAYER_CASES.items()],
    ids=LAYER_CASES.keys(),
)
def test_frame_outcome(frame: bytes, outcome: Counter, tally: Counter | None) -> None:
    result = extract(frame)
    expected = zero_counts()
    expected[Counter.PACKETS] = 1
    expected[outcome] = 1
    expected[Counter.TCP_WATCHED] = int(outcome in WATCHED)
    expected[Counter.EVENTS] = int(outcome is Counter.HTTP_REQUEST)
    if tally is not None:
        expected[tally] = 1
    assert result.counters == expected
    assert result.outcome is outcome
    assert len(result.events) == expected[Counter.EVENTS]


def test_config_ports_decide_watching() -> None:
    config = ExtractorConfig(ports=(8000,))
    assert run(REQUEST, config, dport=8000).outcome is Counter.HTTP_REQUEST
    assert run(REQUEST, config, dport=80).outcome is Counter.PORT_NOT_WATCHED


ADDRESS_CASES = {
    "ipv4": (FrameSpec(REQUEST, sport=51000), (4, "198.18.0.1", "198.18.0.2", 51000, 80, ())),
    "ipv6 8080": (
        FrameSpec(REQUEST, family=6, dport=8080),
        (6, "2001:db8:1::1", "2001:db8:1::2", 40000, 8080, ()),
    ),
    "vlan low 12 bits": (
        FrameSpec(REQUEST, vlan_ids=(0xE00A,)),
        (4, "198.18.0.1", "198.18.0.2", 40000, 80, (10,)),
    ),
    "qinq outer first": (
        FrameSpec(REQUEST, family=6, vlan_ids=(300, 4), vlan_tpids=(0x88A8, 0x8100)),
        (6, "2001:db8:1::1", "2001:db8:1::2", 40000, 80, (300, 4)),
    ),
}


@pytest.mark.parametrize(("spec", "fields"), ADDRESS_CASES.values(), ids=ADDRESS_CASES.keys())
def test_event_addressing(spec: FrameSpec, fields: tuple) -> None:
    (event,) = extract(build(spec)).events
    assert (event.family, event.saddr, event.daddr, event.sport, event.dport, event.vlan_ids) == fields


# --- R9, R10: request line ----------------------------------------------------------------------------------

LONG = b"/" + b"t" * 139
# payload -> (method, target, target_length, version, flags), or None for not_http
REQUEST_LINE_CASES: dict[str, tuple[bytes, tuple | None]] = {
    "crlf": (b"GET /a HTTP/1.1\r\n\r\n", (b"GET", b"/a", 2, 11, F(0))),
    "lf": (b"GET /a HTTP/1.0\n\n", (b"GET", b"/a", 2, 10, F.BARE_LF)),  # R19: both lines end in LF alone
    "tchar method": (b"M-S!#$%&'*+.^_`| * HTTP/1.1\r\n\r\n", (b"M-S!#$%&'*+.^_`|", b"*", 1, 11, F(0))),
    "16 char method": (b"A" * 16 + b" / HTTP/1.1\n\n", (b"A" * 16, b"/", 1, 11, F.BARE_LF)),
    "17 char method": (b"A" * 17 + b" / HTTP/1.1\n\n", None),
    "empty method": (b" / HTTP/1.1\n\n", None),
    "lower-case method is fine": (b"get / HTTP/1.1\n\n", (b"get", b"/", 1, 11, F.BARE_LF)),
    "non-tchar in method": (b"GE(T / HTTP/1.1\n\n", None),
    "tab after method": (b"GET\t/ HTTP/1.1\n\n", None),
    "empty target": (b"GET  HTTP/1.1\n\n", None),
    "control byte in target": (b"GET /a\x01b HTTP/1.1\n\n", None),
    "DEL in target": (b"GET /a\x7f HTTP/1.1\n\n", None),
    "high byte in target": (b"GET /\x80\xff HTTP/1.1\n\n", (b"GET", b"/\x80\xff", 3, 11, F.BARE_LF)),
    "absolute form target": (
        b"GET http://a/b?c HTTP/1.1\n\n",
        (b"GET", b"http://a/b?c", 12, 11, F.BARE_LF),
    ),
    "target exactly max": (
        b"GET /" + b"t" * 127 + b" HTTP/1.1\n\n",
        (b"GET", b"/" + b"t" * 127, 128, 11, F.BARE_LF),
    ),
    "target over max": (
        b"GET " + LONG + b" HTTP/1.1\n\n",
        (b"GET", LONG[:128], 140, 11, F.TARGET_TRUNCATED | F.BARE_LF),
    ),
    "two spaces before version": (b"GET /  HTTP/1.1\n\n", None),
    "HTTP/1.2": (b"GET / HTTP/1.2\n\n", None),
    "lower-case version": (b"GET / http/1.1\n\n", None),
    "space after version": (b"GET / HTTP/1.1 \r\n\r\n", None),
    "CR not followed by LF": (b"GET / HTTP/1.1\rX\n\n", None),
    "CR CR LF": (b"GET / HTTP/1.1\r\r\n\n", None),
    "no version": (b"GET /\r\n", None),
    # R10: the view ends inside the line; every byte so far fits the grammar.
    "cut in method": (b"GET", None),
    "cut right after method SP": (b"GET ", (b"GET", b"", 0, 0, F.LINE_CUT)),
    "cut in target": (b"GET /ab", (b"GET", b"/ab", 3, 0, F.LINE_CUT)),
    "cut long target": (b"GET " + LONG, (b"GET", LONG[:128], 140, 0, F.LINE_CUT | F.TARGET_TRUNCATED)),
    "cut after target SP": (b"GET /ab ", (b"GET", b"/ab", 3, 0, F.LINE_CUT)),
    "cut in version": (b"GET /ab HTTP/1", (b"GET", b"/ab", 3, 0, F.LINE_CUT)),
    "cut version 7 of 8 bytes": (b"GET /ab HTTP/1.", (b"GET", b"/ab", 3, 0, F.LINE_CUT)),
    "cut after version": (b"GET /ab HTTP/1.0", (b"GET", b"/ab", 3, 10, F.LINE_CUT)),
    "cut after CR": (b"GET /ab HTTP/1.1\r", (b"GET", b"/ab", 3, 11, F.LINE_CUT)),
    "cut but already wrong version": (b"GET /ab HTTX", None),
    "cut but bad target byte": (b"GET /a\x00", None),
    "cut but wrong byte after version": (b"GET / HTTP/1.1x", None),
}


@pytest.mark.parametrize(("payload", "line"), REQUEST_LINE_CASES.values(), ids=REQUEST_LINE_CASES.keys())
def test_request_line(payload: bytes, line: tuple | None) -> None:
    result = run(payload)
    if line is None:
        assert result.outcome is Counter.NOT_HTTP
        assert result.events == ()
        assert result.counters[Counter.FLOWS_LOST] == 1  # R8
        return
    (event,) = result.events
    assert (event.method, event.target, event.target_length, event.version, event.flags) == line
    # R14: a cut request line loses the flow; a complete request ending with the payload keeps it
    assert result.counters[Counter.FLOWS_LOST] == int(bool(event.flags & F.LINE_CUT))
    if event.flags & F.LINE_CUT:  # R10: no header fields, no HEADERS_CUT
        assert event.header_lines == 0
        assert not any(slot.flags for slot in event.headers)


def test_cut_request_line_with_scan_limit() -> None:
    """R7 + R10: the view, not the segment, cuts the line."""
    config = ExtractorConfig(max_scan_bytes=64, max_target_len=8)
    event = only_event(b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n\r\n", config)
    assert event.flags == F.LINE_CUT | F.SCAN_LIMIT | F.TARGET_TRUNCATED
    assert (event.target, event.target_length, event.version) == (b"/aaaaaaa", 60, 0)


# --- R11, R12: header lines ---------------------------------------------------------------------------------

# One segment per request (R18): the payload's end then cuts a header section as the view does (R11-R13).
# test_reference_flows.py has what a header section cut by its payload's end does when it may go on.
ONE_SEGMENT = ExtractorConfig(max_request_segments=1)
TWO_LINES = ONE_SEGMENT.with_changes(max_header_lines=2, headers=(HeaderRule("Host"), HeaderRule("X")))
# headers after "GET / HTTP/1.1\r\n" -> (event flags, header_lines, Host value or None), under TWO_LINES
HEADER_LINE_CASES: dict[str, tuple[bytes, EventFlag, int, bytes | None]] = {
    "complete crlf": (b"Host: h\r\n\r\n", F(0), 1, b"h"),
    "complete lf": (b"Host: h\n\n", F.BARE_LF, 1, b"h"),
    "no header at all": (b"\r\n", F(0), 0, None),
    "view ends at line start": (b"", F.HEADERS_CUT, 0, None),
    "lone CR at view end is unknown": (b"Host: h\r\n\r", F.HEADERS_CUT, 1, b"h"),
    "CR then byte starts a bad line": (b"\rHost: h\r\n\r\n", F.BAD_LINE | F.CONTROL_BYTE, 1, None),
    "CR then byte, cut": (b"\rH", F.BAD_LINE | F.CONTROL_BYTE | F.HEADERS_CUT, 1, None),
    "CR CR LF is a bad line": (b"\r\r\nHost: h\r\n\r\n", F.BAD_LINE | F.CONTROL_BYTE, 2, b"h"),
    "cut name is not bad yet": (b"Hos", F.HEADERS_CUT, 1, None),
    "cut name with space is bad": (b"Ho st", F.BAD_LINE | F.WS_BEFORE_COLON | F.HEADERS_CUT, 1, None),
    "cut name then CR is bad": (b"Host\r", F.BAD_LINE | F.HEADERS_CUT, 1, None),
    "colon-less line": (b"Host\r\n\r\n", F.BAD_LINE, 1, None),
    "colon-less line lf": (b"Host\n\n", F.BAD_LINE | F.BARE_LF, 1, None),
    "empty name": (b": h\r\n\r\n", F.BAD_LINE, 1, None),
    "space before colon": (b"Host : h\r\n\r\n", F.BAD_LINE | F.WS_BEFORE_COLON, 1, None),
    "tab before colon": (b"Host\t: h\r\n\r\n", F.BAD_LINE | F.WS_BEFORE_COLON, 1, None),
    "obs-fold SP": (b"Host: h\r\n more\r\n\r\n", F.BAD_LINE | F.OBS_FOLD, 2, b"h"),
    "obs-fold HT cut": (b"Host: h\r\n\tm", F.BAD_LINE | F.OBS_FOLD | F.HEADERS_CUT, 2, b"h"),
    "non-tchar in name": (b"Ho@st: h\r\n\r\n", F.BAD_LINE, 1, None),
    "unmatched names skipped silently": (b"Accept: */*\r\nHost: h\r\n\r\n", F(0), 2, b"h"),
    "bad line does not hide later field": (
        b"Bad Line\r\nHost: h\r\n\r\n",
        F.BAD_LINE | F.WS_BEFORE_COLON,  # R19: SP right after the tchar run, though no colon follows
        2,
        b"h",
    ),
    "exactly max lines": (b"A: 1\r\nHost: h\r\n\r\n", F(0), 2, b"h"),
    "one line too many": (b"A: 1\r\nB: 2\r\nHost: h\r\n\r\n", F.TOO_MANY_HEADERS, 2, None),
    "too many, bad extra line": (b"A: 1\r\nB: 2\r\n x\r\n\r\n", F.TOO_MANY_HEADERS, 2, None),
    "too many, CR-started extra line": (b"A: 1\r\nB: 2\r\n\rx\r\n\r\n", F.TOO_MANY_HEADERS, 2, None),
    "max lines then lone CR at view end": (b"A: 1\r\nB: 2\r\n\r", F.HEADERS_CUT, 2, None),
    "max lines then view end": (b"A: 1\r\nB: 2\r\n", F.HEADERS_CUT, 2, None),
    "too many, extra line cut": (b"A: 1\r\nB: 2\r\nC", F.TOO_MANY_HEADERS, 2, None),
    "bad lines count toward max": (
        b" x\r\n y\r\nHost: h\r\n\r\n",
        F.BAD_LINE | F.OBS_FOLD | F.TOO_MANY_HEADERS,
        2,
        None,
    ),
}


@pytest.mark.parametrize(
    ("headers", "flags", "lines", "host"), HEADER_LINE_CASES.values(), ids=HEADER_LINE_CASES.keys()
)
def test_header_lines(headers: bytes, flags: EventFlag, lines: int, host: bytes | None) -> None:
    event = only_event(HTTP + headers, TWO_LINES)
    assert (event.flags, event.header_lines) == (flags, lines)
    slot = event.header("Host")
    assert (slot.value if slot.present else None) == host


def test_too_many_headers_stops_the_frame() -> None:
    """R11, R14: after TOO_MANY_HEADERS nothing more is read, not even a pipelined request; the flow is lost."""
    payload = HTTP + b"A: 1\r\nB: 2\r\nC: 3\r\n\r\n" + HTTP + b"\r\n"
    result = run(payload, TWO_LINES)
    assert [event.flags for event in result.events] == [F.TOO_MANY_HEADERS]
    assert result.counters[Counter.FLOWS_LOST] == 1


# --- R13: values --------------------------------------------------------------------------------------------

MODES = ONE_SEGMENT.with_changes(
    max_value_len=16,
    headers=(
        HeaderRule("V"),
        HeaderRule("H", HeaderMode.HASH),
        HeaderRule("A", HeaderMode.AUTH),
        HeaderRule("P", HeaderMode.PRESENCE),
    ),
)
P, T, C, R = S.PRESENT, S.TRUNCATED, S.CUT, S.REPEATED
# header lines after the request line -> (slot name, flags, length, value, hashed bytes or None)
VALUE_CASES: dict[str, tuple[bytes, tuple]] = {
    "value": (b"V: abc\r\n\r\n", ("V", P, 3, b"abc", None)),
    "name case": (b"v: abc\r\n\r\n", ("V", P, 3, b"abc", None)),
    "no space after colon": (b"V:abc\r\n\r\n", ("V", P, 3, b"abc", None)),
    "OWS trimmed": (b"V: \t a b \t \r\n\r\n", ("V", P, 3, b"a b", None)),
    "colon in value": (b"V: a:b\r\n\r\n", ("V", P, 3, b"a:b", None)),
    "empty": (b"V:\r\n\r\n", ("V", P, 0, b"", None)),
    "only whitespace": (b"V: \t \r\n\r\n", ("V", P, 0, b"", None)),
    "one CR dropped, the next kept": (b"V: abc\r\r\n\r\n", ("V", P, 4, b"abc\r", None)),
    "CR then space": (b"V: abc\r \r\n\r\n", ("V", P, 4, b"abc\r", None)),
    "inner CR, NUL, high bytes": (b"V: a\rb\x00c\xff\r\n\r\n", ("V", P, 6, b"a\rb\x00c\xff", None)),
    "exactly max": (b"V: " + b"v" * 16 + b"\r\n\r\n", ("V", P, 16, b"v" * 16, None)),
    "over max": (b"V: " + b"v" * 17 + b"  \r\n\r\n", ("V", P | T, 17, b"v" * 16, None)),
    "cut": (b"V: ab", ("V", P | C, 2, b"ab", None)),
    "cut after colon": (b"V:", ("V", P | C, 0, b"", None)),
    "cut trims trailing OWS": (b"V: ab  ", ("V", P | C, 2, b"ab", None)),
    "cut drops final CR": (b"V: ab\r", ("V", P | C, 2, b"ab", None)),
    "cut and over max": (b"V: " + b"v" * 20, ("V", P | T | C, 20, b"v" * 16, None)),
    "repeated": (b"V: 1\r\nv: 2\r\nV: 3\r\n\r\n", ("V", P | R, 1, b"1", None)),
    "repeat of empty": (b"V:\r\nV: 2\r\n\r\n", ("V", P | R, 0, b"", None)),
    "repeated occurrence cut": (b"V: 1\r\nV: 2", ("V", P | R, 1, b"1", None)),
    "bad line is not an occurrence": (b"V : 1\r\nV: 2\r\n\r\n", ("V", P, 1, b"2", None)),
    "hash": (b"H:  s3cret \r\n\r\n", ("H", P, 6, b"", b"s3cret")),
    "hash of long value, no TRUNCATED": (b"H: " + b"h" * 40 + b"\r\n\r\n", ("H", P, 40, b"", b"h" * 40)),
    "hash of empty": (b"H:\r\n\r\n", ("H", P, 0, b"", b"")),
    "hash cut": (b"H: sec", ("H", P | C, 3, b"", b"sec")),
    "hash repeated keeps first": (b"H: a\r\nH: b\r\n\r\n", ("H", P | R, 1, b"", b"a")),
    "auth bearer": (b"A: Bearer tok\r\n\r\n", ("A", P, 10, b"Bearer", b"Bearer tok")),
    "auth two spaces": (b"A:  Basic  x  \r\n\r\n", ("A", P, 8, b"Basic", b"Basic  x")),
    "auth no space": (b"A: Basic\r\n\r\n", ("A", P, 5, b"", b"Basic")),
    "auth tab": (b"A: Basic\tx\r\n\r\n", ("A", P, 7, b"", b"Basic\tx")),
    "auth 16 char scheme": (b"A: " + b"s" * 16 + b" x\r\n\r\n", ("A", P, 18, b"s" * 16, b"s" * 16 + b" x")),
    "auth 17 char scheme": (b"A: " + b"s" * 17 + b" x\r\n\r\n", ("A", P, 19, b"", b"s" * 17 + b" x")),
    "auth non-tchar scheme": (b"A: a/b x\r\n\r\n", ("A", P, 5, b"", b"a/b x")),
    "auth scheme cut": (b"A: Bearer ", ("A", P | C, 6, b"", b"Bearer")),
    "auth scheme then cut token": (b"A: Bearer t", ("A", P | C, 8, b"Bearer", b"Bearer t")),
    "presence": (b"P: anything at all\r\n\r\n", ("P", P, 15, b"", None)),
    "presence cut repeated": (b"P: x\r\nP: yy", ("P", P | R, 1, b"", None)),
}


@pytest.mark.parametrize(("headers", "slot"), VALUE_CASES.values(), ids=VALUE_CASES.keys())
def test_values(headers: bytes, slot: tuple) -> None:
    name, flags, length, value, hashed = slot
    event = only_event(HTTP + headers, MODES)
    got = event.header(name)
    assert (got.flags, got.length, got.value) == (flags, length, value)
    assert got.hash == (0 if hashed is None else siphash24(KEY, hashed))
    assert all(not other.flags for other in event.headers if other.name != name)


def test_slots_follow_config_order_and_names() -> None:
    """Slot order is the configuration's, names as configured, whatever the order and case on the wire."""
    event = only_event(HTTP + b"p: 1\r\nv: 2\r\n\r\n", MODES)
    assert [(slot.name, slot.mode) for slot in event.headers] == [(r.name, r.mode) for r in MODES.headers]
    assert [slot.present for slot in event.headers] == [True, False, False, True]


@pytest.mark.parametrize(
    ("value", "scheme"),
    [
        (b"Bearer x", b"Bearer"),
        (b"Bearer", b""),
        (b"", b""),
        (b" x", b""),
        (b"a b", b"a"),
        (b"Ba:sic x", b""),
    ],
)
def test_auth_scheme(value: bytes, scheme: bytes) -> None:
    assert auth_scheme(value) == scheme


def test_hash_uses_the_key() -> None:
    payload = HTTP + b"H: v\r\n\r\n"
    frame = build(FrameSpec(payload))
    hashes = {extract(frame, MODES, key).events[0].header("H").hash for key in (bytes(16), KEY)}
    assert hashes == {siphash24(bytes(16), b"v"), siphash24(KEY, b"v")}


# --- R7, R14: view and several requests ---------------------------------------------------------------------

SMALL_VIEW = ExtractorConfig(max_scan_bytes=64)
ONE = b"GET /1 HTTP/1.1\r\n\r\n"  # 19 bytes
# payload -> (config, [(target, flags)] of the events, whether the flow is lost after the frame)
PIPELINE_CASES: dict[str, tuple[bytes, ExtractorConfig, list[tuple[bytes, EventFlag]], bool]] = {
    "view exactly the payload": (ONE + b"X: " + b"x" * 40 + b"\r\n", SMALL_VIEW, [(b"/1", F(0))], True),
    "one byte over the view": (ONE + b"X: " + b"x" * 41 + b"\r\n", SMALL_VIEW, [(b"/1", F.SCAN_LIMIT)], True),
    "view ends in headers": (
        HTTP + b"X: " + b"x" * 60 + b"\r\n\r\n",
        SMALL_VIEW,
        [(b"/", F.HEADERS_CUT | F.SCAN_LIMIT)],
        True,
    ),
    "two requests": (ONE + ONE, ExtractorConfig(), [(b"/1", F(0)), (b"/1", F(0))], False),
    "scan limit marks every event": (
        ONE * 3 + b"GET /4 HTTP/1.1\r\n",
        SMALL_VIEW,
        [(b"/1", F.SCAN_LIMIT)] * 3 + [(b"/4", F.SCAN_LIMIT | F.LINE_CUT)],  # R10 holds for a later request
        True,
    ),
    "second line cut by the view": (
        ONE + b"GET /" + b"a" * 50 + b" HTTP/1.1\r\n\r\n",
        SMALL_VIEW,
        [(b"/1", F.SCAN_LIMIT), (b"/" + b"a" * 40, F.SCAN_LIMIT | F.LINE_CUT)],
        True,
    ),
    "max requests": (
        ONE * 3,
        ExtractorConfig(max_requests_per_packet=2),
        [(b"/1", F(0)), (b"/1", F(0))],
        True,
    ),
    "max requests at the payload's end": (
        ONE * 2,
        ExtractorConfig(max_requests_per_packet=2),
        [(b"/1", F(0)), (b"/1", F(0))],
        False,
    ),
    "second line complete, headers cut": (
        ONE + b"GET /2 HTTP/1.1\r\nX",
        ONE_SEGMENT,
        [(b"/1", F(0)), (b"/2", F.HEADERS_CUT)],
        True,
    ),
    "second request's headers go on in the next segment (R18)": (
        ONE + b"GET /2 HTTP/1.1\r\nX",
        ExtractorConfig(),
        [(b"/1", F(0))],
        False,
    ),
    "second line cut": (
        ONE + b"GET /2 HTTP/1.1\r",
        ExtractorConfig(),
        [(b"/1", F(0)), (b"/2", F.LINE_CUT)],
        True,
    ),
    "second line invalid": (ONE + b"GET /2 HTTP/1.1 \r\n\r\n", ExtractorConfig(), [(b"/1", F(0))], True),
    "blank line between requests": (ONE + b"\r\n" + ONE, ExtractorConfig(), [(b"/1", F(0))], True),
    "body without Content-Length": (
        b"POST /1 HTTP/1.1\r\n\r\nk=v&x=y",
        ExtractorConfig(),
        [(b"/1", F(0))],
        True,
    ),
    "no Content-Length: no body, the next request is read": (
        b"POST /1 HTTP/1.1\r\n\r\nGET /b HTTP/1.0\n\n",
        ExtractorConfig(),
        [(b"/1", F(0)), (b"/b", F.BARE_LF)],
        False,
    ),
    "Content-Length body is skipped": (
        b"POST /1 HTTP/1.1\r\nContent-Length: 17\r\n\r\nGET /b HTTP/1.0\n\n" + ONE,
        ExtractorConfig(),
        [(b"/1", F(0)), (b"/1", F(0))],
        False,
    ),
    "Content-Length body goes on past the payload": (
        b"POST /1 HTTP/1.1\r\nContent-Length: 18\r\n\r\nGET /b HTTP/1.0\n\n",
        ExtractorConfig(),
        [(b"/1", F(0))],
        False,
    ),
    "lf-only requests": (
        b"GET /a HTTP/1.1\n\nGET /b HTTP/1.0\nHost: b\n\n",
        ExtractorConfig(),
        [(b"/a", F.BARE_LF), (b"/b", F.BARE_LF)],
        False,
    ),
}


@pytest.mark.parametrize(
    ("payload", "config", "events", "lost"), PIPELINE_CASES.values(), ids=PIPELINE_CASES.keys()
)
def test_view_and_pipelining(payload: bytes, config: ExtractorConfig, events: list, lost: bool) -> None:
    result = run(payload, config)
    assert [(event.target, event.flags) for event in result.events] == events
    assert [event.request_index for event in result.events] == list(range(len(events)))
    assert result.counters[Counter.HTTP_REQUEST] == result.counters[Counter.EVENTS] == len(events)
    assert result.counters[Counter.FLOWS_LOST] == int(lost)


def test_padding_is_not_payload() -> None:
    """R4: without the cap at the IP total length, the zero padding would be read as a bad header line."""
    (event,) = run(HTTP, ONE_SEGMENT, pad=40).events
    assert (event.flags, event.header_lines) == (F.HEADERS_CUT, 0)
    # R18: the payload's end (not the padding's) cuts the header section at a line start, so it may go on
    assert run(HTTP, pad=40).outcome is Counter.CONTINUED


# --- R17, R18: a body field cut before its LF ---------------------------------------------------------------

CUT_BY_VIEW = ExtractorConfig(max_scan_bytes=64)
# header lines after "GET / HTTP/1.1\r\n", where the view or the payload's end cuts -> flags of the event
CUT_BODY_FIELD_CASES: dict[str, tuple[bytes, EventFlag]] = {
    "content-length cut in its digits": (b"Content-Length: 1", F.BAD_CONTENT_LENGTH),
    "content-length cut before its CR": (b"Content-Length: 10", F.BAD_CONTENT_LENGTH),
    "content-length cut before its LF": (b"Content-Length: 10\r", F.BAD_CONTENT_LENGTH),
    "content-length cut right after its colon": (b"Content-Length:", F.BAD_CONTENT_LENGTH),
    "content-length cut in its name": (b"Content-Len", F(0)),
    "content-length name cut before the colon": (b"Content-Length", F(0)),
    "transfer-encoding cut right after its colon": (b"Transfer-Encoding:", F.TRANSFER_ENCODING),
    "transfer-encoding cut in its value": (b"Transfer-Encoding: chun", F.TRANSFER_ENCODING),
    "transfer-encoding cut before the colon": (b"Transfer-Encoding", F(0)),
    "second content-length cut": (b"Content-Length: 1\r\nContent-Length: 1", F.BAD_CONTENT_LENGTH),
}


@pytest.mark.parametrize(("fields", "flags"), CUT_BODY_FIELD_CASES.values(), ids=CUT_BODY_FIELD_CASES.keys())
def test_cut_body_field(fields: bytes, flags: EventFlag) -> None:
    """R17: a Content-Length value cut before its LF is bad; a Transfer-Encoding line counts from its colon.

    The same whether the view cuts the line (SCAN_LIMIT) or the payload's end does (one segment, R18).
    """
    by_payload = only_event(HTTP + fields, ONE_SEGMENT)
    assert by_payload.flags == flags | F.HEADERS_CUT
    line = b"GET /" + b"t" * (64 - len(HTTP + fields)) + b" HTTP/1.1\r\n"  # the view ends with ``fields``
    by_view = only_event(line + fields + b"0\r\n\r\n", CUT_BY_VIEW)
    assert by_view.flags == flags | F.HEADERS_CUT | F.SCAN_LIMIT
    assert by_payload.header_lines == by_view.header_lines == fields.count(b"\n") + 1


# --- the corpus: hand-written expectations next to each input -----------------------------------------------

CORPUS = load_corpus()


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 40
    assert [case.name for case in CORPUS] == sorted(case.name for case in CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_corpus_case(case: CorpusCase) -> None:
    """A case's frames are one flow after its opening SYN (R15): the reference is fed them in order."""
    for index, (result, expectation) in enumerate(zip(case.expected(), case.expect, strict=True)):
        problems = expectation.mismatches(result)
        assert not problems, f"{case.name} frame {index}: {case.description}\n" + "\n".join(problems)
        assert sum(result.counters[counter] > 0 for counter in OUTCOMES) == 1
        assert result.counters[Counter.EVENTS_LOST] == 0


# --- frames: the builder the corpus and the tables stand on -------------------------------------------------


def test_split_continues_the_sequence() -> None:
    first, second = split(FrameSpec(b"abcdef", seq=100), 2)
    assert (first.payload, first.seq, second.payload, second.seq) == (b"ab", 100, b"cdef", 102)


def test_build_pads_and_truncates() -> None:
    plain = build(FrameSpec(b"x"))
    assert build(FrameSpec(b"x", pad=5)) == plain + bytes(5)
    assert build(FrameSpec(b"x", truncate_to=20)) == plain[:20]


def test_describe_difference_names_fields() -> None:
    a = build(FrameSpec(REQUEST))
    assert describe_difference(a, a) == ""
    text = describe_difference(a, build(dataclasses.replace(FrameSpec(REQUEST), dport=8080, vlan_ids=(5,))))
    assert "TCP.dport" in text
    assert "Dot1Q: only in the second frame" in text
    assert "GET" not in text  # equal payloads are not shown


def test_frame_spec_rejects_impossible_combinations() -> None:
    with pytest.raises(ValueError, match="IPv4 only"):
        FrameSpec(family=6, fragment="later")
    with pytest.raises(ValueError, match="one TPID per"):
        FrameSpec(vlan_ids=(1,), vlan_tpids=())


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_corpus_frames_fit_a_1500_byte_mtu(case: CorpusCase) -> None:
    """The lab sends corpus frames over veth, which drops frames larger than the MTU (1514 + VLAN tags)."""
    assert all(len(frame) <= 1514 + 8 for frame in case.frames)
