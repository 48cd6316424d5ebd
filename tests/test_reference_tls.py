"""The reference's TLS rules (docs/EXTRACTION.md R21, R22), one branch at a time, with hellos built by
``harness.oracle.tls``; and the builder itself, held to scapy's TLS dissector, which shares no code with it.

R21 cases are segments of one flow fed to a ``FlowTracker`` (payload byte ``i`` at sequence number ``FIRST +
i``, its SYN one before); R22 cases are one hello read from a payload's start, often with a view
(``max_scan_bytes``) chosen to end at a given byte.
"""

from __future__ import annotations

import dataclasses
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from scapy.layers.tls.extensions import TLS_Ext_ALPN, TLS_Ext_ServerName, TLS_Ext_SupportedVersion_CH
from scapy.layers.tls.handshake import TLSClientHello
from scapy.layers.tls.record import TLS

from fuzz.differential import FUZZ_CONFIG
from fuzz.strategies import client_hellos
from harness.core.config import ExtractorConfig
from harness.core.counters import Counter
from harness.core.event import TlsFlag, TlsHello
from harness.oracle import tls
from harness.oracle.corpus import CorpusError, FrameExpectation, client_hello, load_case
from harness.oracle.frames import FrameSpec, build
from harness.oracle.reference import (
    TLS_MAX_EXTENSIONS,
    Expected,
    FlowTracker,
    Mode,
    extract,
    is_grease,
)
from harness.oracle.tls import ClientHello, alpn, server_name, supported_versions, with_extensions

T = TlsFlag
CONFIG = ExtractorConfig()
SMALL = ExtractorConfig(max_target_len=8, max_value_len=16)  # the smallest limits a configuration takes
FIRST = 1000
NONE = TlsFlag(0)
CUT = T.HELLO_CUT | T.SCAN_LIMIT  # a hello cut by the view (R7, R22)

SNI = (tls.SERVER_NAME, server_name(b"example.com"))
ALPN = (tls.ALPN, alpn(b"h2", b"http/1.1"))
VERSIONS = (tls.SUPPORTED_VERSIONS, supported_versions(0x0A0A, tls.TLS_1_3, tls.TLS_1_2))
TYPICAL = with_extensions([SNI, ALPN, VERSIONS])
# headers, legacy_version, random, session id (empty), 5 cipher suites, one compression method: where the
# extensions block of a default hello starts
FIXED_LEN = 9 + 2 + 32 + 1 + 2 + 10 + 2


def seg(payload: bytes = b"", at: int = 0, flags: str = "PA", dport: int = 443, **fields: object) -> bytes:
    """A client segment of the flow whose payload starts at byte ``at`` (a SYN's own number is one before)."""
    return build(FrameSpec(payload, dport=dport, flags=flags, seq=FIRST + at - ("S" in flags), **fields))


def fed(*frames: bytes, config: ExtractorConfig = CONFIG) -> list[Expected]:
    tracker = FlowTracker(config)
    return [tracker.feed(frame) for frame in frames]


def outcomes(results: list[Expected]) -> list[str]:
    return [result.outcome.label for result in results]


def read(hello: ClientHello | bytes, config: ExtractorConfig = CONFIG, **fields: object) -> Expected:
    """One frame to a TLS port carrying ``hello``, right after the SYN that opened its flow."""
    payload = hello if isinstance(hello, bytes) else hello.to_bytes()
    return extract(seg(payload, **fields), config)


def event(hello: ClientHello | bytes, config: ExtractorConfig = CONFIG, **fields: object) -> TlsHello:
    """The TLS event of a hello (R22), checking the counters of R21 on the way."""
    result = read(hello, config, **fields)
    assert result.outcome is Counter.TLS_HELLO
    assert (result.counters[Counter.EVENTS], result.counters[Counter.FLOWS_LOST]) == (1, 0)
    (logged,) = result.events
    assert isinstance(logged, TlsHello)
    return logged


def viewed(hello: ClientHello | bytes, view: int, config: ExtractorConfig = CONFIG) -> TlsHello:
    """The event when the view ends ``view`` bytes into the payload (R7, R22)."""
    return event(hello, dataclasses.replace(config, max_scan_bytes=view))


def at_of(hello: ClientHello, extension_index: int) -> int:
    """The payload offset where extension ``extension_index`` of ``hello`` starts (its header)."""
    before = hello.extensions[:extension_index]
    return len(dataclasses.replace(hello, extensions=before, extensions_length=None).to_bytes())


# --- R21: TLS ports and the encrypted mode ------------------------------------------------------------------


def test_a_tls_port_is_watched_and_its_hello_logged_once() -> None:
    result = read(TYPICAL)
    assert result.counters[Counter.TCP_WATCHED] == 1
    assert result.counters[Counter.TLS_HELLO] == result.counters[Counter.EVENTS] == 1
    assert result.counters[Counter.PORT_NOT_WATCHED] == result.counters[Counter.HTTP_REQUEST] == 0
    (logged,) = result.events
    assert (logged.sni, logged.alpn, logged.tls_version, logged.flags) == (
        b"example.com",
        (b"h2", b"http/1.1"),
        tls.TLS_1_3,
        NONE,
    )
    assert (logged.dport, logged.family, logged.request_index) == (443, 4, 0)


def test_ports_follow_the_configuration() -> None:
    """R6, R21: ``tls_ports`` is the configured list; a port in neither list is not watched."""
    custom = ExtractorConfig(tls_ports=(9443,))
    assert read(TYPICAL, custom, dport=9443).outcome is Counter.TLS_HELLO
    assert read(TYPICAL, custom, dport=443).outcome is Counter.PORT_NOT_WATCHED
    assert read(TYPICAL, ExtractorConfig(tls_ports=()), dport=443).outcome is Counter.PORT_NOT_WATCHED
    assert read(TYPICAL, dport=444).outcome is Counter.PORT_NOT_WATCHED
    assert read(TYPICAL, dport=8443).outcome is Counter.TLS_HELLO


def test_a_hello_to_an_http_port_is_not_http_and_loses_the_flow() -> None:
    """The contrast with R21: on an HTTP port the same bytes are R8's not_http."""
    result = read(TYPICAL, dport=80)
    assert (result.outcome, result.counters[Counter.FLOWS_LOST]) == (Counter.NOT_HTTP, 1)


@pytest.mark.parametrize(
    "payload",
    [b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"SSH-2.0-OpenSSH_9.6\r\n", b"\x16\x03\x01", bytes(200)],
    ids=["http", "ssh", "short", "zeros"],
)
def test_not_a_hello_is_not_tls_and_the_flow_is_encrypted_not_lost(payload: bytes) -> None:
    results = fed(seg(flags="S"), seg(payload), seg(TYPICAL.to_bytes(), at=len(payload)))
    assert outcomes(results) == ["no_payload", "not_tls", "encrypted"]
    assert [result.counters[Counter.FLOWS_LOST] for result in results] == [0, 0, 0]
    assert not any(result.events for result in results)


def test_encrypted_comes_before_the_sequence_checks() -> None:
    """R21: once read, a TLS flow's segments are encrypted whatever their sequence numbers: a retransmitted
    hello, a gap, bytes before the flow's start; a FIN still closes it (R15) and a new SYN reads a hello again."""
    hello = TYPICAL.to_bytes()
    n = len(hello)
    results = fed(
        seg(flags="S"),
        seg(hello),
        seg(hello),  # every byte seen before: would be retransmitted
        seg(b"x" * 10, at=n + 100),  # past a gap: would be out_of_order
        seg(b"x" * 10, at=-50),  # long before the flow's start
        seg(b"x" * 10, at=n, flags="FA"),
        seg(b"x" * 10, at=n + 10),
        seg(flags="S", at=n + 20),
        seg(hello, at=n + 20),
    )
    assert outcomes(results) == [
        "no_payload",
        "tls_hello",
        "encrypted",
        "encrypted",
        "encrypted",
        "encrypted",
        "mid_stream",
        "no_payload",
        "tls_hello",
    ]
    assert results[5].counters[Counter.FLOWS_CLOSED] == 1
    assert results[7].counters[Counter.FLOWS_OPENED] == 1


def test_the_mode_is_encrypted_after_the_first_bytes() -> None:
    tracker = FlowTracker(CONFIG)
    tracker.feed(seg(flags="S"))
    tracker.feed(seg(TYPICAL.to_bytes()))
    ((flow, state),) = tracker.states.items()
    assert (state.mode, state.expect, flow.dport) == (Mode.ENCRYPTED, FIRST + len(TYPICAL.to_bytes()), 443)


def test_r16_still_decides_which_segment_is_read_first() -> None:
    """R21 applies R16 before a TLS flow's first read: no state, out of order and retransmitted segments are
    not read (and change nothing), and a segment that overlaps bytes already expected is read from its start
    offset."""
    hello = TYPICAL.to_bytes()
    results = fed(
        seg(hello),  # before any SYN
        seg(flags="S"),
        seg(hello, at=5),  # a gap of 5 bytes
        seg(b"abc", at=-3),  # ends right before the flow's first byte
        seg(b"\x17\x03\x03" + hello, at=-3),  # 3 old bytes, then the hello at the start offset
    )
    assert outcomes(results) == ["mid_stream", "no_payload", "out_of_order", "retransmitted", "tls_hello"]
    assert results[-1].events[0].sni == b"example.com"


def test_a_start_offset_past_the_view_loses_a_tls_flow() -> None:
    """R16 as for HTTP: the first byte to read lies past the view, so the flow is lost, not encrypted."""
    small = ExtractorConfig(max_scan_bytes=64)
    hello = TYPICAL.to_bytes()
    results = fed(seg(flags="S"), seg(bytes(70) + hello, at=-70), seg(hello), config=small)
    assert outcomes(results) == ["no_payload", "out_of_sync", "out_of_sync"]
    assert [result.counters[Counter.FLOWS_LOST] for result in results] == [0, 1, 0]


def test_a_hello_on_the_syn_and_one_with_rst() -> None:
    """R15: data on a SYN (TCP Fast Open) is the flow's first bytes; an RST removes the state first."""
    hello = TYPICAL.to_bytes()
    opened = fed(seg(hello, flags="S"), seg(b"x", at=len(hello)))
    assert outcomes(opened) == ["tls_hello", "encrypted"]
    assert opened[0].counters[Counter.FLOWS_OPENED] == 1
    assert outcomes(fed(seg(flags="S"), seg(hello, flags="RA"))) == ["no_payload", "mid_stream"]


def test_scan_limit_and_hello_cut() -> None:
    """R7, R22: a hello longer than the view is HELLO_CUT and SCAN_LIMIT; one cut by its frame (shorter than
    its IP length) or by its segment's end is HELLO_CUT alone; the next segment is not read either way."""
    padded = with_extensions([SNI, (tls.PADDING, bytes(200))])
    record = padded.to_bytes()
    assert viewed(padded, 100).flags == T.HELLO_CUT | T.SCAN_LIMIT
    truncated = build(FrameSpec(record, dport=443, seq=FIRST, truncate_to=54 + 100))
    assert extract(truncated, CONFIG).events[0].flags == T.HELLO_CUT
    results = fed(seg(flags="S"), seg(record[:100]), seg(record[100:], at=100))
    assert outcomes(results) == ["no_payload", "tls_hello", "encrypted"]
    assert results[1].events[0].flags == T.HELLO_CUT
    assert results[1].events[0].sni == b"example.com"
    assert event(padded).flags == NONE


def test_vlan_and_ipv6_flows_are_the_events() -> None:
    logged = event(TYPICAL, family=6, vlan_ids=(7, 9))
    assert (logged.family, logged.vlan_ids, logged.daddr) == (6, (7, 9), "2001:db8:1::2")


# --- R22: record, handshake header and fixed fields -----------------------------------------------------


NOT_HELLOS = {
    "content type 23": dataclasses.replace(TYPICAL, record_type=23),
    "record version 2.1": dataclasses.replace(TYPICAL, record_version=0x0201),
    "record version 3.5": dataclasses.replace(TYPICAL, record_version=0x0305),
    "server hello": dataclasses.replace(TYPICAL, handshake_type=2),
    "L + 4 > R": dataclasses.replace(TYPICAL, record_length=len(TYPICAL.body()) + 3),
    "session id of 33": dataclasses.replace(TYPICAL, session_id=bytes(33)),
    "odd cipher suites": dataclasses.replace(TYPICAL, cipher_suites=()),
    "no compression method": dataclasses.replace(TYPICAL, compression=b""),
    "hello ends in the random": dataclasses.replace(TYPICAL, extensions=None, handshake_length=20),
    "hello ends in the compression": dataclasses.replace(TYPICAL, extensions=None, handshake_length=47),
}


@pytest.mark.parametrize("hello", NOT_HELLOS.values(), ids=NOT_HELLOS)
def test_bytes_r22_refuses_are_not_tls(hello: ClientHello) -> None:
    result = read(hello)
    assert (result.outcome, result.counters[Counter.FLOWS_LOST], result.events) == (Counter.NOT_TLS, 0, ())


def test_an_odd_cipher_suite_length_is_not_a_hello() -> None:
    record = bytearray(TYPICAL.to_bytes())
    suites = 9 + 2 + 32 + 1
    assert record[suites : suites + 2] == b"\x00\x0a"
    record[suites + 1] = 9  # 9 bytes of suites: odd
    assert read(bytes(record)).outcome is Counter.NOT_TLS


ACCEPTED = {
    "record version 3.4": dataclasses.replace(TYPICAL, record_version=0x0304),
    "record version 3.0": dataclasses.replace(TYPICAL, record_version=0x0300),
    "L + 4 < R": dataclasses.replace(TYPICAL, record_length=len(TYPICAL.body()) + 100),
    "session id of 32": dataclasses.replace(TYPICAL, session_id=bytes(32)),
    "one cipher suite": dataclasses.replace(TYPICAL, cipher_suites=(0x1301,)),
    "three compression methods": dataclasses.replace(TYPICAL, compression=b"\x00\x01\x40"),
}


@pytest.mark.parametrize("hello", ACCEPTED.values(), ids=ACCEPTED)
def test_the_edges_r22_accepts(hello: ClientHello) -> None:
    assert event(hello).sni == b"example.com"


def test_fixed_fields_must_lie_inside_the_view() -> None:
    """R22: the fixed fields past the view make the bytes no hello; the headers alone are not enough."""
    bare = ClientHello(session_id=bytes(32), extensions=None)  # 88 bytes: a view can end inside them
    fixed = FIXED_LEN + 32
    assert read(bare, ExtractorConfig(max_scan_bytes=fixed - 1)).outcome is Counter.NOT_TLS
    assert viewed(bare, fixed).flags == NONE  # exactly the fixed fields: the whole hello
    assert read(bare.to_bytes()[:8]).outcome is Counter.NOT_TLS


def test_the_hello_is_read_from_the_start_offset_only() -> None:
    """R21: the bytes are read at the start offset; a hello later in the payload is not looked for."""
    assert read(b"\x00" + TYPICAL.to_bytes()).outcome is Counter.NOT_TLS


# --- R22: extensions ------------------------------------------------------------------------------------


def test_no_extensions_block_and_an_empty_one() -> None:
    assert event(ClientHello(extensions=None)).flags == NONE
    assert event(ClientHello(extensions=())).flags == NONE


def test_one_byte_after_the_compression_methods_is_bad_extensions() -> None:
    assert event(ClientHello(extensions=None, trailing=b"\x00")).flags == T.BAD_EXTENSIONS


def test_the_view_ending_before_the_extensions_length_reads_none() -> None:
    hello = dataclasses.replace(TYPICAL, session_id=bytes(32))
    logged = viewed(hello, FIXED_LEN + 32 + 1)  # one byte of the extensions' length
    assert (logged.flags, logged.sni) == (CUT, b"")


def test_an_extension_header_past_the_extensions_end_is_bad() -> None:
    empty_last = with_extensions([SNI, (0xFF01, b"")])
    broken = dataclasses.replace(empty_last, extensions_length=len(SNI[1]) + 4 + 2)  # 2 bytes of its header
    logged = event(broken)
    assert (logged.flags, logged.sni) == (T.BAD_EXTENSIONS, b"example.com")


def test_extension_data_past_the_extensions_end_is_bad_and_not_read() -> None:
    """The block's length ends inside the ALPN's data: SNI read, ALPN not, versions not reached."""
    broken = dataclasses.replace(TYPICAL, extensions_length=4 + len(SNI[1]) + 4 + len(ALPN[1]) - 1)
    logged = event(broken)
    assert (logged.flags, logged.sni, logged.alpn, logged.tls_version) == (
        T.BAD_EXTENSIONS,
        b"example.com",
        (),
        tls.TLS_1_2,
    )


def test_extensions_end_at_the_hello_end_when_their_length_says_more() -> None:
    """R22: the extensions end at the smaller of their length's end and the hello's end."""
    longer = dataclasses.replace(TYPICAL, extensions_length=1000)
    assert event(longer).flags == NONE
    assert event(longer).alpn == (b"h2", b"http/1.1")


def test_a_shorter_extensions_length_ignores_the_rest_of_the_hello() -> None:
    """Bytes between the extensions' end and the hello's end are not read: no flag."""
    shorter = dataclasses.replace(TYPICAL, extensions_length=4 + len(SNI[1]))
    logged = event(shorter)
    assert (logged.flags, logged.sni, logged.alpn) == (NONE, b"example.com", ())


@pytest.mark.parametrize(("count", "flags"), [(TLS_MAX_EXTENSIONS, NONE), (33, T.TOO_MANY_EXTENSIONS)])
def test_at_most_32_extensions_are_read(count: int, flags: TlsFlag) -> None:
    """The 33rd extension is not read: an SNI there is not logged."""
    hello = with_extensions([*[(0xFF01, b"")] * (count - 1), SNI])
    logged = event(hello)
    assert logged.flags == flags
    assert logged.sni == (b"example.com" if count == TLS_MAX_EXTENSIONS else b"")


def test_too_many_extensions_only_when_the_33rd_starts_in_the_view() -> None:
    hello = with_extensions([(0xFF01, b"")] * 33)
    start = at_of(hello, 32)
    assert viewed(hello, start + 1).flags == T.TOO_MANY_EXTENSIONS | CUT
    assert viewed(hello, start).flags == CUT


def test_an_extension_header_cut_by_the_view_stops_the_reading() -> None:
    """R22's order: a header past the view stops before its data is judged, so a broken extension past the
    view is HELLO_CUT, not BAD_EXTENSIONS."""
    broken = dataclasses.replace(TYPICAL, extensions_length=4 + len(SNI[1]) + 4 + len(ALPN[1]) - 1)
    alpn_at = at_of(broken, 1)
    logged = viewed(broken, alpn_at + 3)
    assert (logged.flags, logged.sni) == (CUT, b"example.com")
    assert viewed(broken, alpn_at + 4).flags == CUT | T.BAD_EXTENSIONS


def test_the_first_extension_of_a_type_counts_even_when_it_gives_nothing() -> None:
    first_bad = with_extensions([(tls.SERVER_NAME, b"\x00"), SNI])
    assert event(first_bad).sni == b""
    two = with_extensions([(tls.SERVER_NAME, server_name(b"one.example")), SNI])
    assert event(two).sni == b"one.example"


# --- R22: server_name --------------------------------------------------------------------------------------


def test_only_the_first_entry_of_the_server_name_list_is_read() -> None:
    logged = event(with_extensions([(tls.SERVER_NAME, server_name(b"a.example", b"b.example"))]))
    assert (logged.sni, logged.sni_length) == (b"a.example", 9)


BAD_SERVER_NAMES = {
    "not a host_name": server_name(b"example.com", name_type=1),
    "list longer than the extension": struct.pack(">H", 30) + b"\x00" + struct.pack(">H", 3) + b"abc",
    "name longer than the list": struct.pack(">H", 6) + b"\x00" + struct.pack(">H", 4) + b"abc",
    "list shorter than an entry": struct.pack(">H", 2) + b"\x00\x00",
    "empty": b"",
}


@pytest.mark.parametrize("data", BAD_SERVER_NAMES.values(), ids=BAD_SERVER_NAMES)
def test_server_names_of_any_other_shape_give_no_sni(data: bytes) -> None:
    logged = event(with_extensions([(tls.SERVER_NAME, data), ALPN]))
    assert (logged.sni, logged.sni_length, logged.flags) == (b"", 0, NONE)
    assert logged.alpn == (b"h2", b"http/1.1")  # the next extension is read all the same


@pytest.mark.parametrize(("length", "flags"), [(8, NONE), (9, T.SNI_TRUNCATED)])
def test_sni_truncated_past_max_target_len(length: int, flags: TlsFlag) -> None:
    name = b"abcdefghijklmnop"[:length]
    logged = event(with_extensions([(tls.SERVER_NAME, server_name(name))]), SMALL)
    assert (logged.sni, logged.sni_length, logged.flags) == (name[:8], length, flags)


def test_sni_fields_must_lie_inside_the_view() -> None:
    """The name past the view gives nothing; the list may run past it (the reading of the list's extent)."""
    hello = with_extensions([(tls.SERVER_NAME, server_name(b"example.com", b"second.example"))])
    name_end = at_of(hello, 0) + 4 + 5 + len(b"example.com")
    assert viewed(hello, name_end - 1).sni == b""
    logged = viewed(hello, name_end)
    assert (logged.sni, logged.flags) == (b"example.com", CUT)


# --- R22: ALPN ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocols", "names", "length", "flags"),
    [
        ((b"h2", b"http/1.1", b"xyz"), (b"h2", b"http/1.1", b"xyz"), 16, NONE),  # exactly max_value_len
        ((b"h2", b"http/1.1", b"wxyz"), (b"h2", b"http/1.1"), 17, T.ALPN_TRUNCATED),  # the last does not fit
        ((b"h2", b"", b"x"), (b"h2",), 6, NONE),  # a zero length ends the names
        ((), (), 0, NONE),
    ],
)
def test_alpn_names_come_from_the_bytes_kept(
    protocols: tuple[bytes, ...], names: tuple[bytes, ...], length: int, flags: TlsFlag
) -> None:
    logged = event(with_extensions([(tls.ALPN, alpn(*protocols))]), SMALL)
    assert (logged.alpn, logged.alpn_length, logged.flags) == (names, length, flags)


@pytest.mark.parametrize(
    "data", [struct.pack(">H", 10) + b"\x02h2", b"\x00"], ids=["list past the extension", "one byte"]
)
def test_an_alpn_list_outside_its_extension_gives_nothing(data: bytes) -> None:
    logged = event(with_extensions([(tls.ALPN, data), SNI]))
    assert (logged.alpn, logged.alpn_length, logged.sni) == ((), 0, b"example.com")


def test_an_alpn_list_must_lie_inside_the_view() -> None:
    hello = with_extensions([ALPN, (tls.PADDING, bytes(10))])
    list_end = at_of(hello, 0) + 4 + len(ALPN[1])
    assert viewed(hello, list_end - 1).alpn_length == 0
    assert viewed(hello, list_end).alpn == (b"h2", b"http/1.1")


# --- R22: supported_versions and tls_version ----------------------------------------------------------------


def test_grease_is_rfc_8701s_sixteen_values() -> None:
    assert [value for value in range(0x10000) if is_grease(value)] == list(tls.GREASE)


@pytest.mark.parametrize(
    ("extensions", "legacy", "version"),
    [
        ([VERSIONS], tls.TLS_1_2, tls.TLS_1_3),
        (
            [(tls.SUPPORTED_VERSIONS, supported_versions(tls.TLS_1_1))],
            tls.TLS_1_2,
            tls.TLS_1_1,
        ),  # lower than legacy
        (
            [(tls.SUPPORTED_VERSIONS, supported_versions(0x0A0A, 0xFAFA))],
            tls.TLS_1_2,
            tls.TLS_1_2,
        ),  # only GREASE
        ([(tls.SUPPORTED_VERSIONS, supported_versions(0))], tls.TLS_1_1, tls.TLS_1_1),  # highest is 0
        ([(tls.SUPPORTED_VERSIONS, supported_versions())], tls.TLS_1_0, tls.TLS_1_0),
        ([(tls.SUPPORTED_VERSIONS, b"\x03\x03\x04\x03")], tls.TLS_1_2, tls.TLS_1_2),  # odd length
        ([(tls.SUPPORTED_VERSIONS, b"\x04\x03\x04")], tls.TLS_1_2, tls.TLS_1_2),  # list past the extension
        ([], 0x7F1C, 0x7F1C),  # no extension: any legacy_version
        (
            [(tls.SUPPORTED_VERSIONS, supported_versions(*[tls.TLS_1_0] * 8, tls.TLS_1_3))],
            tls.TLS_1_2,
            tls.TLS_1_0,
        ),  # only the first 8 are read
    ],
)
def test_tls_version(extensions: list[tls.Extension], legacy: int, version: int) -> None:
    assert event(with_extensions(extensions, legacy_version=legacy)).tls_version == version


def test_versions_must_lie_inside_the_view() -> None:
    hello = with_extensions([VERSIONS, (tls.PADDING, bytes(10))])
    list_end = at_of(hello, 0) + 4 + len(VERSIONS[1])
    assert viewed(hello, list_end - 1).tls_version == tls.TLS_1_2
    assert viewed(hello, list_end).tls_version == tls.TLS_1_3


# --- the builder against scapy's TLS dissector --------------------------------------------------------------


def test_builder_lengths_and_overrides() -> None:
    record = TYPICAL.to_bytes()
    assert record[:3] == b"\x16\x03\x01" and struct.unpack(">H", record[3:5])[0] == len(record) - 5
    assert record[5] == 1 and int.from_bytes(record[6:9], "big") == len(record) - 9
    assert struct.unpack(">H", record[FIXED_LEN : FIXED_LEN + 2])[0] == len(record) - FIXED_LEN - 2
    overridden = dataclasses.replace(
        TYPICAL, record_length=7, handshake_length=5, extensions_length=3
    ).to_bytes()
    assert overridden[3:9] == b"\x00\x07\x01\x00\x00\x05"
    assert overridden[FIXED_LEN : FIXED_LEN + 2] == b"\x00\x03" and len(overridden) == len(record)
    assert len(ClientHello(extensions=None).to_bytes()) == FIXED_LEN


def test_curl_like_dissected_by_scapy() -> None:
    packet = TLS(tls.curl_like().to_bytes())
    hello = packet.msg[0]
    assert isinstance(hello, TLSClientHello) and hello.sid == bytes(range(32))
    assert hello[TLS_Ext_ServerName].servernames[0].servername == b"example.com"
    assert hello[TLS_Ext_ALPN].protocols[0].protocol == b"h2"
    assert hello[TLS_Ext_SupportedVersion_CH].versions == [tls.TLS_1_3, tls.TLS_1_2]
    assert len(hello.ext) == 11


BIG = ExtractorConfig(max_target_len=512, max_value_len=256)
READ_TYPES = (tls.SERVER_NAME, tls.ALPN, tls.SUPPORTED_VERSIONS)
OPAQUE = 0xFE00  # an extension type nobody assigned


def _first_extensions(record: bytes) -> dict[int, object]:
    """scapy's dissection of a ClientHello record: the first extension of each type."""
    (hello,) = TLS(record).msg
    assert isinstance(hello, TLSClientHello)
    first: dict[int, object] = {}
    for extension in hello.ext or []:
        first.setdefault(extension.type, extension)
    return first


def _kept_names(names: list[bytes], limit: int) -> tuple[bytes, ...]:
    """The names R22 logs of an ALPN list, from the list's names: up to an empty one or the first that does
    not fit in the list's first ``limit`` bytes."""
    kept, used = [], 0
    for name in names:
        used += 1 + len(name)
        if not name or used > limit:
            break
        kept.append(name)
    return tuple(kept)


@settings(
    max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
@given(client_hellos(FUZZ_CONFIG))
def test_reference_reads_what_scapy_reads(hello: ClientHello) -> None:
    """On the fuzzer's well-formed hellos, whole in the view and with at most 32 extensions, the reference's
    SNI, ALPN and version equal what scapy's TLS dissector (an independent parser) finds in the record: the
    first server_name's first entry when it is a host_name, the names of the first ALPN list, the highest
    non-GREASE version of the first supported_versions' first 8."""
    # scapy dissects known extension types by their grammar and refuses a hello whose data for one does not
    # fit it: every type but R22's three becomes one scapy keeps opaque
    opaque = tuple((kind if kind in READ_TYPES else OPAQUE, data) for kind, data in hello.extensions or ())
    hello = dataclasses.replace(hello, extensions=opaque if hello.extensions is not None else None)
    record = hello.to_bytes()
    logged = event(record, BIG)
    if logged.flags & T.TOO_MANY_EXTENSIONS:
        return
    assert not logged.flags & (T.HELLO_CUT | T.BAD_EXTENSIONS)
    first = _first_extensions(record)
    entries = first[tls.SERVER_NAME].servernames if tls.SERVER_NAME in first else []
    sni = entries[0].servername if entries and entries[0].nametype == tls.HOST_NAME else b""
    assert logged.sni == sni
    names = [entry.protocol for entry in first[tls.ALPN].protocols] if tls.ALPN in first else []
    assert logged.alpn == _kept_names(names, BIG.max_value_len)
    assert logged.alpn_length == sum(1 + len(name) for name in names)
    versions = first[tls.SUPPORTED_VERSIONS].versions[:8] if tls.SUPPORTED_VERSIONS in first else []
    highest = max((version for version in versions if version not in tls.GREASE), default=0)  # RFC 8701's 16
    assert logged.tls_version == (highest or hello.legacy_version)


# --- the corpus keys for TLS ---------------------------------------------------------------------------------


def test_a_client_hello_table_builds_what_the_builder_does() -> None:
    table = {
        "legacy_version": 0x0301,
        "session_id_hex": "0102",
        "cipher_suites": [0x1301],
        "extensions": [
            {"server_name": "example.com"},
            {"alpn": ["h2", [["x", 3]]]},
            {"supported_versions": [0x0304]},
            {"padding": 2},
            {"type": 0xFF01, "data_hex": "00", "count": 2},
        ],
    }
    expected = ClientHello(
        legacy_version=0x0301,
        session_id=b"\x01\x02",
        cipher_suites=(0x1301,),
        extensions=(
            SNI,
            (tls.ALPN, alpn(b"h2", b"xxx")),
            (tls.SUPPORTED_VERSIONS, supported_versions(0x0304)),
            (tls.PADDING, b"\x00\x00"),
            (0xFF01, b"\x00"),
            (0xFF01, b"\x00"),
        ),
    )
    assert client_hello(table) == expected
    assert client_hello({}).extensions is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"sni": "x"}, "unknown keys"),
        ({"extensions": [{"alpn": ["h2"], "type": 16}]}, "exactly one of"),
        ({"extensions": [{"server_name": "x", "colour": 1}]}, "unknown keys"),
    ],
)
def test_bad_client_hello_tables_are_named(table: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        client_hello(table)


def test_a_bad_client_hello_file_names_the_file(tmp_path) -> None:
    path = tmp_path / "99_bad.toml"
    path.write_text(
        'description = "x"\n[frame]\ndport = 443\n[frame.client_hello]\nsni = "x"\n[expect]\n'
        'outcome = "tls_hello"\nevents = 1\n'
    )
    with pytest.raises(CorpusError, match="99_bad.toml"):
        load_case(path)


def test_tls_expectations_catch_each_field() -> None:
    result = read(TYPICAL)
    right = FrameExpectation(
        "tls_hello",
        1,
        sni="example.com",
        sni_length=11,
        alpn=("h2", "http/1.1"),
        alpn_length=12,
        tls_version="1.3",
        flags=(),
    )
    assert right.mismatches(result) == []
    assert FrameExpectation("tls_hello", 1, tls_version=tls.TLS_1_3).mismatches(result) == []
    wrong = {
        "sni": "example.org",
        "sni_length": 3,
        "alpn": ("h2",),
        "alpn_length": 3,
        "tls_version": "1.2",
        "flags": ("hello_cut",),
        "method": "GET",
    }
    for name, value in wrong.items():
        problems = FrameExpectation("tls_hello", 1, **{name: value}).mismatches(result)
        assert len(problems) == 1 and name in problems[0], (name, problems)
