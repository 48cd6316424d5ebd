"""The reference's flows (docs/EXTRACTION.md R14-R18) against small conversations written by hand.

Each case is a few client segments of one TCP flow, built with ``harness.oracle.frames``, fed in order to one
``FlowTracker``; every frame's outcome, logged targets and R15 tallies are written next to it. Payload byte
``i`` of a flow has sequence number ``first + i`` (its SYN has ``first - 1``), so a segment is placed by the
payload offset it starts at, and retransmissions, gaps and wrap-around read as offsets.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import pytest

from harness.core.config import ExtractorConfig, HeaderMode, HeaderRule
from harness.core.counters import OUTCOMES, Counter
from harness.core.event import EventFlag, HeaderEvent, SlotFlag
from harness.oracle.frames import FrameSpec, arp_frame, build, opening
from harness.oracle.reference import (
    CHUNK_STEPS,
    GOES_ON,
    Chunking,
    ChunkPhase,
    Cut,
    Expected,
    FlowTracker,
    Mode,
    extract,
    siphash24,
)

F = EventFlag
KEY = bytes(range(16))
CONFIG = ExtractorConfig()
SMALL_VIEW = ExtractorConfig(max_scan_bytes=64)
FIRST = 1000  # sequence number of the flow's first payload byte
SEQ_SPACE = 1 << 32

ONE = b"GET /1 HTTP/1.1\r\n\r\n"  # 19 bytes
TWO = b"GET /2 HTTP/1.1\r\n\r\n"
NOT_HTTP = b"SSH-2.0-OpenSSH_9.6\r\n"
POST = b"POST /p HTTP/1.1\r\nContent-Length: 10\r\n\r\n"  # headers of a 10-byte body
BODY = b"k=v&x=yyyy"
L = len(POST)


def seg(payload: bytes = b"", at: int = 0, flags: str = "PA", first: int = FIRST, **fields: object) -> bytes:
    """A client segment whose payload starts at byte ``at`` of the flow (a SYN's own number is one before)."""
    seq = (first + at - ("S" in flags)) % SEQ_SPACE
    return build(FrameSpec(payload, flags=flags, seq=seq, **fields))


def syn(first: int = FIRST, **fields: object) -> bytes:
    return seg(flags="S", first=first, **fields)


def post(length: bytes) -> bytes:
    return b"POST /p HTTP/1.1\r\nContent-Length: " + length + b"\r\n\r\n"


OPEN = syn()
R64 = b"GET /" + b"a" * 46 + b" HTTP/1.1\r\n\r\n"  # a complete request that fills a 64-byte view
assert len(R64) == 64


class Step(NamedTuple):
    """What one frame did: its outcome, the targets it logged, its R15 tallies."""

    outcome: str
    targets: tuple[str, ...] = ()
    opened: int = 0
    closed: int = 0
    lost: int = 0


def step(result: Expected) -> Step:
    counters = result.counters
    assert sum(counters[counter] > 0 for counter in OUTCOMES) == 1
    assert counters[Counter.EVENTS] == len(result.events)
    assert [event.request_index for event in result.events] == list(range(len(result.events)))
    return Step(
        result.outcome.label,
        tuple(event.target.decode("latin-1") for event in result.events),
        counters[Counter.FLOWS_OPENED],
        counters[Counter.FLOWS_CLOSED],
        counters[Counter.FLOWS_LOST],
    )


def run(frames: list[bytes], config: ExtractorConfig = CONFIG) -> list[Expected]:
    tracker = FlowTracker(config, KEY)
    return [tracker.feed(frame) for frame in frames]


OPENED = Step("no_payload", opened=1)
HTTP_1 = Step("http_request", ("/1",))
HTTP_2 = Step("http_request", ("/2",))
HTTP_P = Step("http_request", ("/p",))
FORGED = b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"
FORGER = post(str(len(FORGED)).encode())
TE_HEAD = b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
CHUNKS = b"5\r\nhello\r\n0\r\n\r\n"
CHUNKED = TE_HEAD + CHUNKS
WRAP = SEQ_SPACE - 5  # the first request crosses sequence number 0

FLOW_CASES: dict[str, tuple[list[bytes], ExtractorConfig, list[Step]]] = {
    # R15: opening, closing, flow keys
    "syn then request": ([OPEN, seg(ONE)], CONFIG, [OPENED, HTTP_1]),
    "no state is mid_stream": ([seg(ONE)], CONFIG, [Step("mid_stream")]),
    "mid-stream until a syn": (
        [seg(ONE), seg(TWO, len(ONE)), OPEN, seg(ONE)],
        CONFIG,
        [Step("mid_stream"), Step("mid_stream"), OPENED, HTTP_1],
    ),
    "rst removes the state": (
        [OPEN, seg(flags="R"), seg(ONE)],
        CONFIG,
        [OPENED, Step("no_payload", closed=1), Step("mid_stream")],
    ),
    "rst with payload is mid_stream": (
        [OPEN, seg(ONE, flags="RA")],
        CONFIG,
        [OPENED, Step("mid_stream", closed=1)],
    ),
    "rst of a flow without state counts nothing": ([seg(flags="R")], CONFIG, [Step("no_payload")]),
    "syn with rst does not open": (
        [OPEN, seg(ONE, flags="SR")],
        CONFIG,
        [OPENED, Step("mid_stream", closed=1)],
    ),
    "fin closes after its payload": (
        [OPEN, seg(ONE, flags="FPA"), seg(TWO, len(ONE))],
        CONFIG,
        [OPENED, Step("http_request", ("/1",), closed=1), Step("mid_stream")],
    ),
    "bare fin": (
        [OPEN, seg(ONE), seg(at=len(ONE), flags="FA")],
        CONFIG,
        [OPENED, HTTP_1, Step("no_payload", closed=1)],
    ),
    "fin of a lost flow": (
        [OPEN, seg(NOT_HTTP), seg(at=len(NOT_HTTP), flags="FA")],
        CONFIG,
        [OPENED, Step("not_http", lost=1), Step("no_payload", closed=1)],
    ),
    "fin without state counts nothing": ([seg(flags="FA")], CONFIG, [Step("no_payload")]),
    "syn and fin together": ([seg(flags="SF")], CONFIG, [Step("no_payload", opened=1, closed=1)]),
    "tcp fast open": (
        [seg(ONE, flags="S"), seg(TWO, len(ONE))],
        CONFIG,
        [Step("http_request", ("/1",), opened=1), HTTP_2],
    ),
    "lost once, then out_of_sync": (
        [OPEN, seg(NOT_HTTP), seg(ONE, len(NOT_HTTP))],
        CONFIG,
        [OPENED, Step("not_http", lost=1), Step("out_of_sync")],
    ),
    "a new syn reads a lost flow again": (
        [OPEN, seg(NOT_HTTP), seg(ONE, len(NOT_HTTP)), syn(5000), seg(ONE, first=5000)],
        CONFIG,
        [OPENED, Step("not_http", lost=1), Step("out_of_sync"), OPENED, HTTP_1],
    ),
    "known limit: a syn inside a live flow starts it again": (
        [OPEN, seg(ONE), OPEN, seg(ONE)],
        CONFIG,
        [OPENED, HTTP_1, OPENED, HTTP_1],
    ),
    "unwatched port: no flow": (
        [syn(dport=81), seg(ONE, dport=81), seg(ONE)],
        CONFIG,
        [Step("port_not_watched"), Step("port_not_watched"), Step("mid_stream")],
    ),
    "the whole tuple keys a flow": (
        [
            OPEN,
            seg(ONE, sport=40001),
            seg(ONE, family=6),
            seg(ONE, vlan_ids=(5,)),
            seg(ONE, dport=8080),
            seg(ONE),
        ],
        CONFIG,
        [OPENED, *[Step("mid_stream")] * 4, HTTP_1],
    ),
    "flows are apart": (
        [OPEN, syn(family=6), seg(NOT_HTTP, family=6), seg(ONE)],
        CONFIG,
        [OPENED, OPENED, Step("not_http", lost=1), HTTP_1],
    ),
    # R16: which bytes are read
    "retransmission": ([OPEN, seg(ONE), seg(ONE)], CONFIG, [OPENED, HTTP_1, Step("retransmitted")]),
    "retransmission of a first part": (
        [OPEN, seg(ONE + TWO), seg(ONE)],
        CONFIG,
        [OPENED, Step("http_request", ("/1", "/2")), Step("retransmitted")],
    ),
    "overlap: the new bytes are read": ([OPEN, seg(ONE), seg(ONE + TWO)], CONFIG, [OPENED, HTTP_1, HTTP_2]),
    "out of order, then the missing segment": (
        [OPEN, seg(TWO, len(ONE)), seg(ONE), seg(TWO, len(ONE))],
        CONFIG,
        [OPENED, Step("out_of_order"), HTTP_1, HTTP_2],
    ),
    "start offset at the view's end": (
        [OPEN, seg(R64), seg(R64 + ONE)],
        SMALL_VIEW,
        [OPENED, Step("http_request", ("/" + "a" * 46,)), Step("out_of_sync", lost=1)],
    ),
    "start offset inside the view": (
        [OPEN, seg(ONE), seg(ONE + R64)],
        SMALL_VIEW,
        [OPENED, HTTP_1, Step("http_request", ("/" + "a" * 40,), lost=1)],  # the view cuts R64's line
    ),
    "n is the ip length: next request in the missing bytes": (
        [OPEN, seg(ONE + TWO, truncate_to=len(seg(ONE))), seg(TWO, len(ONE))],
        CONFIG,
        [OPENED, Step("http_request", ("/1",), lost=1), Step("out_of_sync")],
    ),
    "n is the ip length: a body in the missing bytes": (
        [OPEN, seg(POST + BODY, truncate_to=len(seg(POST))), seg(ONE, L + len(BODY))],
        CONFIG,
        [OPENED, HTTP_P, HTTP_1],
    ),
    "n is the ip length: a cut retransmission": (
        [OPEN, seg(ONE + TWO), seg(ONE + TWO, truncate_to=len(seg(ONE)))],
        CONFIG,
        [OPENED, Step("http_request", ("/1", "/2")), Step("retransmitted")],
    ),
    "padding is not payload for n": (
        [OPEN, seg(ONE, pad=30), seg(TWO, len(ONE))],
        CONFIG,
        [OPENED, HTTP_1, HTTP_2],
    ),
    # R14, R16, R17: bodies
    "body across two segments, then the next request": (
        [OPEN, seg(POST + BODY[:4]), seg(BODY[4:] + ONE, L + 4)],
        CONFIG,
        [OPENED, HTTP_P, HTTP_1],
    ),
    "body fills a whole segment": (
        [OPEN, seg(POST), seg(BODY[:5], L), seg(BODY[5:] + ONE, L + 5)],
        CONFIG,
        [OPENED, HTTP_P, Step("body"), HTTP_1],
    ),
    "body ends with its segment": (
        [OPEN, seg(POST), seg(BODY, L), seg(ONE, L + len(BODY))],
        CONFIG,
        [OPENED, HTTP_P, Step("body"), HTTP_1],
    ),
    "retransmitted body": (
        [OPEN, seg(POST), seg(BODY, L), seg(BODY, L)],
        CONFIG,
        [OPENED, HTTP_P, Step("body"), Step("retransmitted")],
    ),
    "body out of order": (
        [OPEN, seg(POST), seg(BODY[5:] + ONE, L + 5), seg(BODY[:5], L), seg(BODY[5:] + ONE, L + 5)],
        CONFIG,
        [OPENED, HTTP_P, Step("out_of_order"), Step("body"), HTTP_1],
    ),
    "overlap into a body": (
        [OPEN, seg(POST + BODY[:4]), seg(BODY[:8], L), seg(BODY[8:] + ONE, L + 8)],
        CONFIG,
        [OPENED, HTTP_P, Step("body"), HTTP_1],
    ),
    "pipelined requests after a body in one segment": (
        [OPEN, seg(POST + BODY + ONE + TWO), seg(ONE, L + len(BODY) + 2 * len(ONE))],
        CONFIG,
        [OPENED, Step("http_request", ("/p", "/1", "/2")), HTTP_1],
    ),
    "forgery: a body that looks like a request, same segment": (
        [OPEN, seg(FORGER + FORGED), seg(ONE, len(FORGER + FORGED))],
        CONFIG,
        [OPENED, HTTP_P, HTTP_1],
    ),
    "forgery: a body that looks like a request, own segment": (
        [OPEN, seg(FORGER), seg(FORGED, len(FORGER)), seg(ONE, len(FORGER + FORGED))],
        CONFIG,
        [OPENED, HTTP_P, Step("body"), HTTP_1],
    ),
    "next request past the view": (
        [OPEN, seg(post(b"30") + b"b" * 30 + ONE)],
        SMALL_VIEW,
        [OPENED, Step("http_request", ("/p",), lost=1)],
    ),
    "body reaches the payload's end past the view": (
        [OPEN, seg(post(b"49") + b"b" * 49), seg(ONE, L + 49)],
        SMALL_VIEW,
        [OPENED, HTTP_P, HTTP_1],
    ),
    "body ends past the view of a later segment": (
        [OPEN, seg(post(b"80")), seg(b"b" * 100, L)],
        SMALL_VIEW,
        [OPENED, HTTP_P, Step("out_of_sync", lost=1)],
    ),
    "body ends inside the view of a later segment": (
        [OPEN, seg(post(b"20")), seg(b"b" * 20 + TWO, L)],
        SMALL_VIEW,
        [OPENED, HTTP_P, HTTP_2],
    ),
    "16-digit content-length": (
        [OPEN, seg(post(b"9" * 16)), seg(b"b" * 1400, L)],
        CONFIG,
        [OPENED, HTTP_P, Step("body")],
    ),
    # R10, R14: requests whose end is unknown lose the flow
    "request line cut by its segment": (
        [OPEN, seg(ONE[:6]), seg(ONE[6:], 6)],
        CONFIG,
        [OPENED, Step("http_request", ("/1",), lost=1), Step("out_of_sync")],
    ),
    "headers cut by their segment go on (R18)": (
        [OPEN, seg(ONE[:-2]), seg(ONE[-2:], len(ONE) - 2)],
        CONFIG,
        [OPENED, Step("continued"), HTTP_1],
    ),
    "headers cut by their only allowed segment": (
        [OPEN, seg(ONE[:-2]), seg(ONE[-2:], len(ONE) - 2)],
        ExtractorConfig(max_request_segments=1),
        [OPENED, Step("http_request", ("/1",), lost=1), Step("out_of_sync")],
    ),
    "later request line cut": (
        [OPEN, seg(ONE + TWO[:6])],
        CONFIG,
        [OPENED, Step("http_request", ("/1", "/2"), lost=1)],
    ),
    "later request is not a request": (
        [OPEN, seg(ONE + NOT_HTTP)],
        CONFIG,
        [OPENED, Step("http_request", ("/1",), lost=1)],
    ),
    "max requests with bytes left": (
        [OPEN, seg(ONE * 3)],
        ExtractorConfig(max_requests_per_packet=2),
        [OPENED, Step("http_request", ("/1", "/1"), lost=1)],
    ),
    "max requests ending with the payload": (
        [OPEN, seg(ONE * 2), seg(TWO, 2 * len(ONE))],
        ExtractorConfig(max_requests_per_packet=2),
        [OPENED, Step("http_request", ("/1", "/1")), HTTP_2],
    ),
    # R20: chunked bodies
    "chunked body, then a request in the next segment": (
        [OPEN, seg(CHUNKED), seg(ONE, len(CHUNKED))],
        CONFIG,
        [OPENED, HTTP_P, HTTP_1],
    ),
    "chunked body, then a request in the same segment": (
        [OPEN, seg(CHUNKED + ONE)],
        CONFIG,
        [OPENED, Step("http_request", ("/p", "/1"))],
    ),
    "chunked body across segments, a request after it": (
        [
            OPEN,
            seg(TE_HEAD + CHUNKS[:6]),
            seg(CHUNKS[6:-3], len(TE_HEAD) + 6),
            seg(CHUNKS[-3:] + ONE, len(CHUNKED) - 3),
        ],
        CONFIG,
        [OPENED, HTTP_P, Step("body"), HTTP_1],
    ),
    "chunk data that looks like a request is skipped": (
        [OPEN, seg(TE_HEAD + b"%x\r\n" % len(FORGED) + FORGED + b"\r\n0\r\n\r\n" + ONE)],
        CONFIG,
        [OPENED, Step("http_request", ("/p", "/1"))],
    ),
    "chunk data in a segment of its own": (
        [
            OPEN,
            seg(TE_HEAD + b"8\r\n"),
            seg(FORGED[:8], len(TE_HEAD) + 3),
            seg(b"\r\n0\r\n\r\n", len(TE_HEAD) + 11),
        ],
        CONFIG,
        [OPENED, HTTP_P, Step("body"), Step("body")],
    ),
    "chunk extensions, upper-case hex, leading zeros and trailers": (
        [OPEN, seg(TE_HEAD + b"0A;a=b;c\r\n0123456789\r\n000;x\r\nX-T: 1\r\nY: 2\r\n\r\n" + ONE)],
        CONFIG,
        [OPENED, Step("http_request", ("/p", "/1"))],
    ),
    "16 hex digits": (
        [OPEN, seg(TE_HEAD + b"0000000000000001\r\nx\r\n0\r\n\r\n" + ONE)],
        CONFIG,
        [OPENED, Step("http_request", ("/p", "/1"))],
    ),
    "17 hex digits lose the flow": (
        [OPEN, seg(TE_HEAD + b"00000000000000001\r\nx\r\n0\r\n\r\n" + ONE)],
        CONFIG,
        [OPENED, Step("http_request", ("/p",), lost=1)],
    ),
    "a chunk of 2^64 - 1 bytes is skipped to the payload's end": (
        [OPEN, seg(TE_HEAD + b"ffffffffffffffff\r\nxyz"), seg(ONE, len(TE_HEAD) + 21)],
        CONFIG,
        [OPENED, HTTP_P, Step("body")],
    ),
    "no size loses the flow": (
        [OPEN, seg(TE_HEAD + b"\r\n" + ONE), seg(ONE, len(TE_HEAD) + 2 + len(ONE))],
        CONFIG,
        [OPENED, Step("http_request", ("/p",), lost=1), Step("out_of_sync")],
    ),
    "whitespace after the size loses the flow": (
        [OPEN, seg(TE_HEAD + b"5 \r\nhello\r\n0\r\n\r\n" + ONE)],
        CONFIG,
        [OPENED, Step("http_request", ("/p",), lost=1)],
    ),
    "a bare LF in the framing loses the flow": (
        [OPEN, seg(TE_HEAD + b"5\nhello\r\n0\r\n\r\n" + ONE)],
        CONFIG,
        [OPENED, Step("http_request", ("/p",), lost=1)],
    ),
    "data longer than its size loses the flow": (
        [OPEN, seg(TE_HEAD + b"5\r\nhello!\r\n0\r\n\r\n" + ONE)],
        CONFIG,
        [OPENED, Step("http_request", ("/p",), lost=1)],
    ),
    "a bare LF ending the trailers loses the flow": (
        [OPEN, seg(TE_HEAD + b"0\r\nX: 1\r\n\n" + ONE)],
        CONFIG,
        [OPENED, Step("http_request", ("/p",), lost=1)],
    ),
    "a bad chunk in a later segment": (
        [OPEN, seg(TE_HEAD + b"5\r\nhello\r\n"), seg(b"zz\r\n", len(TE_HEAD) + 10)],
        CONFIG,
        [OPENED, HTTP_P, Step("out_of_sync", lost=1)],
    ),
    "a retransmitted chunk segment changes nothing": (
        [
            OPEN,
            seg(TE_HEAD + CHUNKS[:6]),
            seg(CHUNKS[:6], len(TE_HEAD)),
            seg(CHUNKS[6:] + ONE, len(TE_HEAD) + 6),
        ],
        CONFIG,
        [OPENED, HTTP_P, Step("retransmitted"), HTTP_1],
    ),
    "chunked body ending with its segment": (
        [OPEN, seg(TE_HEAD), seg(CHUNKS, len(TE_HEAD)), seg(ONE, len(CHUNKED))],
        CONFIG,
        [OPENED, HTTP_P, Step("body"), HTTP_1],
    ),
    "framing past the view loses the flow": (
        [OPEN, seg(TE_HEAD + b"5\r\nhello\r\n" + b"1\r\nx\r\n" * 5 + b"0\r\n\r\n")],
        SMALL_VIEW,  # the body's first 16 bytes
        [OPENED, Step("http_request", ("/p",), lost=1)],
    ),
    "data may run past the view": (
        [OPEN, seg(TE_HEAD + b"30\r\n" + b"d" * 48), seg(b"\r\n0\r\n\r\n" + ONE, len(TE_HEAD) + 52)],
        SMALL_VIEW,
        [OPENED, HTTP_P, HTTP_1],
    ),
    f"more than {CHUNK_STEPS} steps in one segment lose the flow": (
        [OPEN, seg(TE_HEAD + b"1\r\nx\r\n" * 43 + b"0\r\n\r\n" + ONE)],
        CONFIG,
        [OPENED, Step("http_request", ("/p",), lost=1)],
    ),
    f"{CHUNK_STEPS} steps in each of two segments": (
        [
            OPEN,
            seg(TE_HEAD + b"1\r\nx\r\n" * 42),
            seg(b"1\r\nx\r\n" * 41 + b"0\r\n\r\n" + ONE, len(TE_HEAD) + 252),
        ],
        CONFIG,
        [OPENED, HTTP_P, HTTP_1],
    ),
    # R15, R16: sequence numbers modulo 2^32
    "requests across the wrap": (
        [syn(WRAP), seg(ONE, first=WRAP), seg(TWO, len(ONE), first=WRAP)],
        CONFIG,
        [OPENED, HTTP_1, HTTP_2],
    ),
    "syn at the last sequence number": ([syn(0), seg(ONE, first=0)], CONFIG, [OPENED, HTTP_1]),
    "retransmission across the wrap": (
        [syn(WRAP), seg(ONE, first=WRAP), seg(ONE, first=WRAP)],
        CONFIG,
        [OPENED, HTTP_1, Step("retransmitted")],
    ),
    "out of order across the wrap": (
        [syn(WRAP), seg(TWO, len(ONE), first=WRAP), seg(ONE, first=WRAP), seg(TWO, len(ONE), first=WRAP)],
        CONFIG,
        [OPENED, Step("out_of_order"), HTTP_1, HTTP_2],
    ),
    "farthest out of order: its end 2^31 - 1 ahead": (
        [OPEN, seg(ONE, (1 << 31) - len(ONE) - 1)],
        CONFIG,
        [OPENED, Step("out_of_order")],
    ),
    "reading: an end exactly 2^31 ahead counts as before": (
        [OPEN, seg(ONE, (1 << 31) - len(ONE))],
        CONFIG,
        [OPENED, Step("retransmitted")],
    ),
}


@pytest.mark.parametrize(("frames", "config", "steps"), FLOW_CASES.values(), ids=FLOW_CASES.keys())
def test_flow(frames: list[bytes], config: ExtractorConfig, steps: list[Step]) -> None:
    assert [step(result) for result in run(frames, config)] == steps


CHUNKED_STREAM = TE_HEAD + b"3;e=1\r\nabc\r\n%x\r\n%s\r\n0\r\nT: v\r\n\r\n" % (len(FORGED), FORGED) + ONE


@pytest.mark.parametrize("at", range(len(TE_HEAD) + 1, len(CHUNKED_STREAM) - len(ONE) + 1))
def test_split_at_every_offset_of_a_chunked_body(at: int) -> None:
    """R20: wherever a segment's end falls in a chunked body, the request after it is logged, and the request
    in its data never is."""
    results = run([OPEN, *pieces(CHUNKED_STREAM[:at], CHUNKED_STREAM[at:])])
    logged = [event.target for result in results for event in result.events]
    assert logged == [b"/p", b"/1"]
    assert sum(result.counters[Counter.FLOWS_LOST] for result in results) == 0


def test_tracker_state_inside_a_chunked_body() -> None:
    """R20: the flow keeps the phase and the data bytes left between segments."""
    tracker = FlowTracker(CONFIG, KEY)
    tracker.feed(OPEN)
    tracker.feed(seg(TE_HEAD + b"1a;x\r\n" + b"d" * 10))
    ((_, state),) = tracker.states.items()
    assert (state.mode, state.chunking) == (Mode.CHUNKED, Chunking(ChunkPhase.DATA, 16))
    tracker.feed(seg(b"d" * 16 + b"\r", len(TE_HEAD) + 16))
    ((_, state),) = tracker.states.items()
    assert (state.mode, state.chunking, state.expect) == (
        Mode.CHUNKED,
        Chunking(ChunkPhase.DATA_LF),
        FIRST + len(TE_HEAD) + 33,
    )


def test_lost_flow_stays_lost_without_counting() -> None:
    """R15: a lost flow is never read and never counted lost again, whatever comes."""
    frames = [OPEN, seg(NOT_HTTP), seg(ONE, len(NOT_HTTP)), seg(NOT_HTTP), seg(R64, 500)]
    results = run(frames)
    assert [result.counters[Counter.FLOWS_LOST] for result in results] == [0, 1, 0, 0, 0]
    assert [result.outcome for result in results[2:]] == [Counter.OUT_OF_SYNC] * 3


def test_tracker_state_after_a_body_segment() -> None:
    """R14, R16: the mode, expect and body_left the segments leave behind."""
    tracker = FlowTracker(CONFIG, KEY)
    tracker.feed(OPEN)
    tracker.feed(seg(POST + BODY[:4]))
    ((_, state),) = tracker.states.items()
    assert (state.mode.value, state.expect, state.body_left) == ("body", FIRST + L + 4, 6)
    tracker.feed(seg(BODY[4:7], L + 4))
    ((_, state),) = tracker.states.items()
    assert (state.mode.value, state.expect, state.body_left) == ("body", FIRST + L + 7, 3)
    tracker.feed(seg(BODY[7:], L + 7))
    ((_, state),) = tracker.states.items()
    assert (state.mode.value, state.expect, state.body_left) == ("request", FIRST + L + 10, 0)


# --- R17: body length -----------------------------------------------------------------------------------------

HEAD = b"POST /p HTTP/1.1\r\n"
# header lines -> (event flags, body length, a chunked body (R20), or None when its end is unknown)
BODY_LENGTH_CASES: dict[str, tuple[bytes, EventFlag, int | bytes | None]] = {
    "neither: no body": (b"Host: a\r\n", F(0), 0),
    "content-length": (b"Content-Length: 5\r\n", F(0), 5),
    "name in any case": (b"cOnTeNt-LeNgTh: 5\r\n", F(0), 5),
    "zero": (b"Content-Length: 0\r\n", F(0), 0),
    "OWS and final CR trimmed": (b"Content-Length: \t 7 \t\r\n", F(0), 7),
    "bare LF line": (b"Content-Length: 5\n", F.BARE_LF, 5),
    "16 digits": (b"Content-Length: 0000000000000005\r\n", F(0), 5),
    "17 digits": (b"Content-Length: 00000000000000005\r\n", F.BAD_CONTENT_LENGTH, None),
    "empty value": (b"Content-Length:\r\n", F.BAD_CONTENT_LENGTH, None),
    "only whitespace": (b"Content-Length:  \r\n", F.BAD_CONTENT_LENGTH, None),
    "plus sign": (b"Content-Length: +5\r\n", F.BAD_CONTENT_LENGTH, None),
    "minus sign": (b"Content-Length: -5\r\n", F.BAD_CONTENT_LENGTH, None),
    "inner space": (b"Content-Length: 5 5\r\n", F.BAD_CONTENT_LENGTH, None),
    "list of lengths": (b"Content-Length: 5, 5\r\n", F.BAD_CONTENT_LENGTH, None),
    "hex": (b"Content-Length: 0x5\r\n", F.BAD_CONTENT_LENGTH, None),
    "trailing letter": (b"Content-Length: 5a\r\n", F.BAD_CONTENT_LENGTH, None),
    "second CR kept": (b"Content-Length: 5\r\r\n", F.BAD_CONTENT_LENGTH | F.CONTROL_BYTE, None),
    "duplicate, same value": (b"Content-Length: 5\r\nContent-Length: 5\r\n", F.BAD_CONTENT_LENGTH, None),
    "duplicate, first bad": (b"Content-Length: x\r\ncontent-length: 5\r\n", F.BAD_CONTENT_LENGTH, None),
    "space before colon is not the field": (b"Content-Length : 5\r\n", F.BAD_LINE | F.WS_BEFORE_COLON, 0),
    "obs-fold is not the field": (b"Host: a\r\n Content-Length: 5\r\n", F.BAD_LINE | F.OBS_FOLD, 0),
    "bad duplicate is not a duplicate": (
        b"Content-Length: 5\r\nContent-Length : 6\r\n",
        F.BAD_LINE | F.WS_BEFORE_COLON,
        5,
    ),
    "longer names are other fields": (b"Content-Lengths: 5\r\nX-Content-Length: 5\r\n", F(0), 0),
    "transfer-encoding": (b"Transfer-Encoding: chunked\r\n", F.TRANSFER_ENCODING, CHUNKS),
    "chunked last of two codings": (b"Transfer-Encoding: gzip,chunked\r\n", F.TRANSFER_ENCODING, CHUNKS),
    "chunked in any case": (b"Transfer-Encoding:  ChunKed \r\n", F.TRANSFER_ENCODING, CHUNKS),
    "two transfer-encoding lines": (
        b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        F.TRANSFER_ENCODING | F.TE_NOT_CHUNKED,
        None,
    ),
    "chunked twice": (
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        F.TRANSFER_ENCODING,  # R20: a second Transfer-Encoding line makes the end unknown
        None,
    ),
    "transfer-encoding any case, empty": (
        b"transfer-ENCODING:\r\n",
        F.TRANSFER_ENCODING | F.TE_NOT_CHUNKED,  # R19: an empty value does not end in chunked
        None,
    ),
    "transfer-encoding identity": (
        b"Transfer-Encoding: identity\r\n",
        F.TRANSFER_ENCODING | F.TE_NOT_CHUNKED,
        None,
    ),
    "both": (
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        F.TRANSFER_ENCODING | F.CL_AND_TE,  # R19
        None,
    ),
    "both bad": (
        b"Transfer-Encoding: chunked\r\nContent-Length: x\r\n",
        F.TRANSFER_ENCODING | F.BAD_CONTENT_LENGTH | F.CL_AND_TE,  # R19: a bad Content-Length line counts too
        None,
    ),
    "transfer-encoding with space before colon": (
        b"Transfer-Encoding : chunked\r\n",
        F.BAD_LINE | F.WS_BEFORE_COLON,  # not a Transfer-Encoding line (R17), so not TRANSFER_ENCODING
        0,
    ),
}


@pytest.mark.parametrize(
    ("fields", "flags", "length"), BODY_LENGTH_CASES.values(), ids=BODY_LENGTH_CASES.keys()
)
def test_body_length(fields: bytes, flags: EventFlag, length: int | bytes | None) -> None:
    """R17, R20: with a known length B, the B bytes after the headers are skipped and the next request read
    there; so is a chunked body."""
    body = length if isinstance(length, bytes) else b"b" * (length or 0)
    payload = HEAD + fields + b"\r\n" + body + ONE
    (opened, result) = run([OPEN, seg(payload)])
    assert step(opened) == OPENED
    assert result.events[0].flags == flags
    if length is None:
        assert step(result) == Step("http_request", ("/p",), lost=1)
    else:
        assert step(result) == Step("http_request", ("/p", "/1"))


def test_content_length_fills_its_slot_when_configured() -> None:
    """R17: a configured Content-Length also fills its slot (R13); the body is skipped all the same."""
    config = ExtractorConfig(headers=(HeaderRule("Host"), HeaderRule("Content-Length")))
    (_, result) = run([OPEN, seg(HEAD + b"Content-Length: 5\r\n\r\nbbbbb" + ONE)], config)
    assert step(result) == Step("http_request", ("/p", "/1"))
    slot = result.events[0].header("Content-Length")
    assert (slot.flags, slot.value) == (SlotFlag.PRESENT, b"5")


def test_lines_past_max_header_lines_are_not_read() -> None:
    """R11, R17: TOO_MANY_HEADERS stops reading, so a later bad Content-Length sets nothing."""
    config = ExtractorConfig(max_header_lines=1)
    (_, result) = run(
        [OPEN, seg(HEAD + b"A: 1\r\nContent-Length: x\r\nTransfer-Encoding: y\r\n\r\n" + ONE)], config
    )
    assert step(result) == Step("http_request", ("/p",), lost=1)
    assert result.events[0].flags == F.TOO_MANY_HEADERS


CUT_BODY_FIELDS: dict[str, tuple[bytes, EventFlag]] = {
    "content-length value": (b"Content-Length: 5", F.BAD_CONTENT_LENGTH),
    "bad content-length value": (b"Content-Length: x", F.BAD_CONTENT_LENGTH),
    "transfer-encoding after its colon": (b"Transfer-Encoding: chunked", F.TRANSFER_ENCODING),
    "transfer-encoding name": (b"Transfer-Encoding", F(0)),
}


@pytest.mark.parametrize(("line", "flags"), CUT_BODY_FIELDS.values(), ids=CUT_BODY_FIELDS.keys())
def test_cut_body_field(line: bytes, flags: EventFlag) -> None:
    """R17: a Content-Length value cut before its LF is bad, a Transfer-Encoding line counts from its colon.

    One segment per request (R18), so the payload's end cuts the line and the request is HEADERS_CUT.
    """
    (_, result) = run([OPEN, seg(HEAD + b"Host: a\r\n" + line)], ExtractorConfig(max_request_segments=1))
    assert step(result) == Step("http_request", ("/p",), lost=1)
    assert result.events[0].flags == flags | F.HEADERS_CUT


def test_bare_lf_hides_no_content_length() -> None:
    """R11, R17: a bare LF ends a line, so the Content-Length after it counts and its 23 bytes are skipped.

    The body's own ``GET / HTTP/1.1`` is never logged; the request after the body is.
    """
    payload = bytes.fromhex(
        "474554202f20485454502f312e310d0a486f73743a206c6f63616c686f73740d0a44756d6d793a20780a436f6e74656e74"
        "2d4c656e6774683a2032330d0a0d0a474554202f20485454502f312e310d0a44756d6d793a20474554202f61646d696e20"
        "485454502f312e310d0a486f73743a206c6f63616c686f73740d0a0d0a"
    )
    (_, result) = run([OPEN, seg(payload)])
    assert [(event.method, event.target, event.header_lines) for event in result.events] == [
        (b"GET", b"/", 3),
        (b"GET", b"/admin", 1),
    ]
    assert result.events[0].header("Host").value == b"localhost"
    assert step(result) == Step("http_request", ("/", "/admin"))
    skipped = payload.index(b"\r\n\r\n") + 4 + 23
    assert payload[skipped:].startswith(b"GET /admin ")


# --- R18: header sections across segments -----------------------------------------------------------------------

H = b"GET /h HTTP/1.1\r\n"  # a request line; its header sections below are split by hand
HTTP_H = Step("http_request", ("/h",))
CONT = Step("continued")
LINES_2 = ExtractorConfig(max_header_lines=2)
SEGMENTS_2 = ExtractorConfig(max_request_segments=2)


def pieces(*parts: bytes, flags: str = "PA", **fields: object) -> list[bytes]:
    """Consecutive segments of one flow carrying ``parts`` in order, the first at payload offset 0."""
    offsets = [sum(map(len, parts[:index])) for index in range(len(parts))]
    return [seg(part, at, flags, **fields) for part, at in zip(parts, offsets, strict=True)]


A64 = H + b"X: " + b"x" * 42 + b"\r\n"  # a first part that fills a 64-byte view exactly
assert len(A64) == 64
CL_POST = b"POST /p HTTP/1.1\r\nContent-Length: 10\r\n"
TE_POST = b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
# frames -> (config, steps, (event flags, header_lines) of every event logged, in order)
R18_CASES: dict[str, tuple[list[bytes], ExtractorConfig, list[Step], list[tuple[EventFlag, int]]]] = {
    # where the cut falls
    "at a line start": (
        [OPEN, *pieces(H + b"Host: a\r\n", b"X-A: 1\r\n\r\n")],
        CONFIG,
        [OPENED, CONT, HTTP_H],
        [(F(0), 2)],
    ),
    "right after the request line": (
        [OPEN, *pieces(H, b"Host: a\r\n\r\n")],
        CONFIG,
        [OPENED, CONT, HTTP_H],
        [(F(0), 1)],
    ),
    "lone CR, then LF: the empty line": (
        [OPEN, *pieces(H + b"Host: a\r\n\r", b"\n" + ONE)],
        CONFIG,
        [OPENED, CONT, Step("http_request", ("/h", "/1"))],
        [(F(0), 1), (F(0), 0)],
    ),
    "lone CR, then a byte: a bad line": (
        [OPEN, *pieces(H + b"\r", b"X: 1\r\n\r\n")],
        CONFIG,
        [OPENED, CONT, HTTP_H],
        [(F.BAD_LINE | F.CONTROL_BYTE, 1)],
    ),
    "lone CR, then CR LF: a bad line": (
        [OPEN, *pieces(H + b"\r", b"\r\n\r\n")],
        CONFIG,
        [OPENED, CONT, HTTP_H],
        [(F.BAD_LINE | F.CONTROL_BYTE, 1)],
    ),
    "lone CR, then a byte past max header lines": (
        [OPEN, *pieces(H + b"A: 1\r\nB: 2\r\n\r", b"C: 3\r\n\r\n")],
        LINES_2,
        [OPENED, CONT, Step("http_request", ("/h",), lost=1)],
        [(F.TOO_MANY_HEADERS, 2)],
    ),
    "lone CR, then LF at max header lines": (
        [OPEN, *pieces(H + b"A: 1\r\nB: 2\r\n\r", b"\n")],
        LINES_2,
        [OPENED, CONT, HTTP_H],
        [(F(0), 2)],
    ),
    "in a name": (
        [OPEN, *pieces(H + b"Ho", b"st: a\r\n\r\n")],
        CONFIG,
        [OPENED, CONT, HTTP_H],
        [(F.NAME_SPLIT, 1)],
    ),
    "in a name, right before the colon": (
        [OPEN, *pieces(H + b"Host", b": a\r\n\r\n")],
        CONFIG,
        [OPENED, CONT, HTTP_H],
        [(F.NAME_SPLIT, 1)],
    ),
    "in a name, the rest has a space before the colon": (
        [OPEN, *pieces(H + b"Ho", b"st : a\r\n\r\n")],
        CONFIG,
        [OPENED, CONT, HTTP_H],
        [(F.NAME_SPLIT | F.BAD_LINE | F.WS_BEFORE_COLON, 1)],
    ),
    "in a name, the rest reaches CR LF": (
        [OPEN, *pieces(H + b"Ho", b"st\r\n\r\n")],
        CONFIG,
        [OPENED, CONT, HTTP_H],
        [(F.NAME_SPLIT | F.BAD_LINE, 1)],
    ),
    "in a name, the rest is a bare LF": (
        [OPEN, *pieces(H + b"Host", b"\n\n")],
        CONFIG,
        [OPENED, CONT, HTTP_H],
        [(F.NAME_SPLIT | F.BAD_LINE | F.BARE_LF, 1)],  # R19: no CR ends the first segment
    ),
    "in a name already bad: skipped, not split": (
        [OPEN, *pieces(H + b"Ho st", b": a\r\n\r\n")],
        CONFIG,
        [OPENED, CONT, HTTP_H],
        [(F.BAD_LINE | F.WS_BEFORE_COLON, 1)],
    ),
    "in a name after a CR: bad at the cut": (
        [OPEN, *pieces(H + b"Host\r", b"\n\r\n")],
        CONFIG,
        [OPENED, CONT, HTTP_H],
        [(F.BAD_LINE, 1)],
    ),
    "in an obs-fold line": (
        [OPEN, *pieces(H + b"Host: a\r\n fo", b"ld\r\n\r\n")],
        CONFIG,
        [OPENED, CONT, HTTP_H],
        [(F.BAD_LINE | F.OBS_FOLD, 2)],
    ),
    "in a value": (
        [OPEN, *pieces(H + b"Host: exa", b"mple\r\n\r\n")],
        CONFIG,
        [OPENED, CONT, HTTP_H],
        [(F(0), 1)],
    ),
    "in a value, the rest looks like a line": (
        [OPEN, *pieces(H + b"Host: a", b" b: c\r\n\r\n")],
        CONFIG,
        [OPENED, CONT, HTTP_H],
        [(F(0), 1)],
    ),
    # more than two segments, and their limit
    "three segments": (
        [OPEN, *pieces(H + b"Ho", b"st: a\r\nX-", b"A: 1\r\n\r\n")],
        CONFIG,
        [OPENED, CONT, CONT, HTTP_H],
        [(F.NAME_SPLIT, 2)],
    ),
    "a name across three segments": (
        [OPEN, *pieces(H + b"Ho", b"s", b"t: a\r\n\r\n")],
        CONFIG,
        [OPENED, CONT, CONT, HTTP_H],
        [(F.NAME_SPLIT, 1)],
    ),
    "a name across three segments, bad in the third": (
        [OPEN, *pieces(H + b"Ho", b"s", b"t\t: a\r\n\r\n")],
        CONFIG,
        [OPENED, CONT, CONT, HTTP_H],
        [(F.NAME_SPLIT | F.BAD_LINE | F.WS_BEFORE_COLON, 1)],
    ),
    "a skipped line across three segments": (
        [OPEN, *pieces(H + b"Accept: a", b"bc", b"d\r\n\r\n")],
        CONFIG,
        [OPENED, CONT, CONT, HTTP_H],
        [(F(0), 1)],
    ),
    "max request segments reached": (
        [OPEN, *pieces(H + b"A", b": 1\r\nB", b": 2\r\n\r\n")],
        SEGMENTS_2,
        [OPENED, CONT, Step("http_request", ("/h",), lost=1), Step("out_of_sync")],
        [(F.NAME_SPLIT | F.HEADERS_CUT, 2)],
    ),
    "max request segments ending the request": (
        [OPEN, *pieces(H + b"A", b": 1\r\n\r\n")],
        SEGMENTS_2,
        [OPENED, CONT, HTTP_H],
        [(F.NAME_SPLIT, 1)],
    ),
    "max request segments 1: nothing continues": (
        [OPEN, *pieces(H + b"A", b": 1\r\n\r\n")],
        ExtractorConfig(max_request_segments=1),
        [OPENED, Step("http_request", ("/h",), lost=1), Step("out_of_sync")],
        [(F.HEADERS_CUT, 1)],
    ),
    "too many header lines over the segments": (
        [OPEN, *pieces(H + b"A: 1\r\n", b"B: 2\r\n", b"C: 3\r\n\r\n" + ONE)],
        LINES_2,
        [OPENED, CONT, CONT, Step("http_request", ("/h",), lost=1)],
        [(F.TOO_MANY_HEADERS, 2)],
    ),
    # what is not a cut by the payload's end
    "request line cut by the payload's end": (
        [OPEN, *pieces(H[:9], H[9:] + b"\r\n")],
        CONFIG,
        [OPENED, Step("http_request", ("/h",), lost=1), Step("out_of_sync")],
        [(F.LINE_CUT, 0)],
    ),
    "request line cut after its CR": (
        [OPEN, *pieces(H[:-1], b"\n\r\n")],
        CONFIG,
        [OPENED, Step("http_request", ("/h",), lost=1), Step("out_of_sync")],
        [(F.LINE_CUT, 0)],
    ),
    "the view cuts a header: SCAN_LIMIT, no continuation": (
        [OPEN, *pieces(H + b"X: " + b"x" * 60, b"\r\n\r\n")],
        SMALL_VIEW,
        [OPENED, Step("http_request", ("/h",), lost=1), Step("out_of_sync")],
        [(F.HEADERS_CUT | F.SCAN_LIMIT, 1)],
    ),
    "a frame shorter than its IP length: no continuation": (
        [
            OPEN,
            seg(H + b"Host: a\r\n\r\n", truncate_to=len(seg(H + b"Host: a"))),
            seg(b"\r\n\r\n", len(H + b"Host: a")),
        ],
        CONFIG,
        [OPENED, Step("http_request", ("/h",), lost=1), Step("out_of_sync")],
        [(F.HEADERS_CUT, 1)],
    ),
    "the view cuts the continuation": (
        [OPEN, *pieces(H + b"Host: a\r\n", b"X: " + b"x" * 70 + b"\r\n\r\n")],
        SMALL_VIEW,
        [OPENED, CONT, Step("http_request", ("/h",), lost=1)],
        [(F.HEADERS_CUT | F.SCAN_LIMIT, 2)],
    ),
    "the frame where it ends gives SCAN_LIMIT": (
        [OPEN, *pieces(b"POST /h HTTP/1.1\r\nContent-Length: 70\r\n", b"\r\n" + b"b" * 70, ONE)],
        SMALL_VIEW,
        [OPENED, CONT, HTTP_H, HTTP_1],  # the body ends exactly with the second payload
        [(F.SCAN_LIMIT, 1), (F(0), 0)],
    ),
    # several requests
    "pipelining: a later request continues": (
        [OPEN, *pieces(ONE + H + b"Ho", b"st: a\r\n\r\n" + TWO)],
        CONFIG,
        [OPENED, HTTP_1, Step("http_request", ("/h", "/2"))],
        [(F(0), 0), (F.NAME_SPLIT, 1), (F(0), 0)],
    ),
    "pipelining: the continued request then one that continues": (
        [OPEN, *pieces(H + b"A: 1\r\n", b"\r\n" + ONE + H, b"\r\n")],
        CONFIG,
        [OPENED, CONT, Step("http_request", ("/h", "/1")), HTTP_H],
        [(F(0), 1), (F(0), 0), (F(0), 0)],
    ),
    "the continued request counts toward max requests": (
        [OPEN, *pieces(H + b"A: 1\r\n", b"\r\n" + ONE + TWO)],
        ExtractorConfig(max_requests_per_packet=2),
        [OPENED, CONT, Step("http_request", ("/h", "/1"), lost=1)],
        [(F(0), 1), (F(0), 0)],
    ),
    # R17 across the cut
    "content-length before the cut carries over": (
        [OPEN, *pieces(CL_POST, b"\r\n" + BODY + ONE)],
        CONFIG,
        [OPENED, CONT, Step("http_request", ("/p", "/1"))],
        [(F(0), 1), (F(0), 0)],
    ),
    "content-length before the cut, body over more segments": (
        [OPEN, *pieces(CL_POST, b"\r\n" + BODY[:4], BODY[4:], ONE)],
        CONFIG,
        [OPENED, CONT, HTTP_P, Step("body"), HTTP_1],
        [(F(0), 1), (F(0), 0)],
    ),
    "content-length split in its value": (
        [OPEN, *pieces(CL_POST[:-3], b"0\r\n\r\n" + BODY + ONE)],
        CONFIG,
        [OPENED, CONT, Step("http_request", ("/p",), lost=1)],
        [(F.BAD_CONTENT_LENGTH, 1)],
    ),
    "content-length split right after its colon": (
        [OPEN, *pieces(CL_POST[:-5], b" 10\r\n\r\n" + BODY + ONE)],
        CONFIG,
        [OPENED, CONT, Step("http_request", ("/p",), lost=1)],
        [(F.BAD_CONTENT_LENGTH, 1)],
    ),
    "content-length split before its LF": (
        [OPEN, *pieces(CL_POST[:-1], b"\n\r\n" + BODY + ONE)],
        CONFIG,
        [OPENED, CONT, Step("http_request", ("/p",), lost=1)],
        [(F.BAD_CONTENT_LENGTH, 1)],
    ),
    "content-length split in its name: no length": (
        [OPEN, *pieces(CL_POST[:-10], CL_POST[-10:] + b"\r\n" + BODY + ONE)],
        CONFIG,
        [OPENED, CONT, Step("http_request", ("/p",), lost=1)],  # the body is read as a request: not one
        [(F.NAME_SPLIT, 1)],
    ),
    "transfer-encoding cut after its colon": (
        [OPEN, *pieces(TE_POST[:-10], TE_POST[-10:] + b"\r\n0\r\n\r\n" + ONE)],
        CONFIG,
        [OPENED, CONT, Step("http_request", ("/p",), lost=1)],
        [(F.TRANSFER_ENCODING, 1)],
    ),
    "transfer-encoding cut before its colon: not counted": (
        [OPEN, *pieces(TE_POST[:-11], TE_POST[-11:] + b"\r\n" + ONE)],
        CONFIG,
        [OPENED, CONT, Step("http_request", ("/p", "/1"))],
        [(F.NAME_SPLIT, 1), (F(0), 0)],
    ),
    "transfer-encoding before the cut carries over": (
        [OPEN, *pieces(TE_POST, b"\r\n0\r\n\r\n" + ONE)],
        CONFIG,
        [OPENED, CONT, Step("http_request", ("/p", "/1"))],  # R20: its chunked body is followed
        [(F.TRANSFER_ENCODING, 1), (F(0), 0)],
    ),
    # R16 in headers mode
    "retransmission of the first segment": (
        [OPEN, seg(H + b"Host: a\r\n"), seg(H + b"Host: a\r\n"), seg(b"\r\n", len(H) + 9)],
        CONFIG,
        [OPENED, CONT, Step("retransmitted"), HTTP_H],
        [(F(0), 1)],
    ),
    "retransmission of part of the first segment": (
        [OPEN, seg(H + b"Host: a\r\n"), seg(b"Host: a\r\n", len(H)), seg(b"\r\n", len(H) + 9)],
        CONFIG,
        [OPENED, CONT, Step("retransmitted"), HTTP_H],
        [(F(0), 1)],
    ),
    "overlap: the new bytes go on": (
        [OPEN, seg(H + b"Ho"), seg(b"Host: a\r\n\r\n", len(H))],
        CONFIG,
        [OPENED, CONT, HTTP_H],
        [(F.NAME_SPLIT, 1)],
    ),
    "out of order, then the missing segment": (
        [OPEN, seg(H + b"A: 1\r\n"), seg(b"\r\n", len(H) + 12), seg(b"B: 2\r\n", len(H) + 6)]
        + [seg(b"\r\n", len(H) + 12)],
        CONFIG,
        [OPENED, CONT, Step("out_of_order"), CONT, HTTP_H],
        [(F(0), 2)],
    ),
    "start offset at the view's end": (
        [OPEN, seg(A64), seg(A64 + b"\r\n"), seg(b"\r\n", 64)],
        SMALL_VIEW,
        [OPENED, CONT, Step("out_of_sync", lost=1), Step("out_of_sync")],
        [],
    ),
    # R15 in headers mode
    "fin drops the kept request": (
        [OPEN, seg(H + b"Host: a\r\n", flags="FPA"), seg(b"\r\n", len(H) + 9)],
        CONFIG,
        [OPENED, Step("continued", closed=1), Step("mid_stream")],
        [],
    ),
    "rst drops the kept request": (
        [OPEN, seg(H + b"Host: a\r\n"), seg(at=len(H) + 9, flags="R"), seg(b"\r\n", len(H) + 9)],
        CONFIG,
        [OPENED, CONT, Step("no_payload", closed=1), Step("mid_stream")],
        [],
    ),
    "a syn drops the kept request": (
        [OPEN, seg(H + b"Host: a\r\n"), OPEN, seg(ONE)],
        CONFIG,
        [OPENED, CONT, OPENED, HTTP_1],
        [(F(0), 0)],
    ),
}


@pytest.mark.parametrize(("frames", "config", "steps", "logged"), R18_CASES.values(), ids=R18_CASES.keys())
def test_header_section_across_segments(
    frames: list[bytes], config: ExtractorConfig, steps: list[Step], logged: list[tuple[EventFlag, int]]
) -> None:
    results = run(frames, config)
    assert [step(result) for result in results] == steps
    events = [event for result in results for event in result.events]
    assert [(event.flags, event.header_lines) for event in events] == logged


def test_kept_request_in_the_flow_state() -> None:
    """R15, R18: headers mode after the payload, the request kept with where the cut fell, then request mode."""
    tracker = FlowTracker(CONFIG, KEY)
    tracker.feed(OPEN)
    tracker.feed(seg(H + b"Ho"))
    ((_, state),) = tracker.states.items()
    assert state.pending is not None
    assert (state.mode, state.expect, state.pending.cut, state.pending.segments) == (
        Mode.HEADERS,
        FIRST + len(H) + 2,
        Cut.NAME,
        1,
    )
    tracker.feed(seg(b"st: a\r\nX: ", len(H) + 2))
    ((_, state),) = tracker.states.items()
    assert state.pending is not None
    assert (state.mode, state.pending.cut, state.pending.segments) == (Mode.HEADERS, Cut.SKIPPED, 2)
    tracker.feed(seg(b"1\r\n\r\n", len(H) + 11))
    ((_, state),) = tracker.states.items()
    assert (state.mode, state.expect, state.pending) == (Mode.REQUEST, FIRST + len(H) + 16, None)


SLOTS = ExtractorConfig(
    max_value_len=16,
    headers=(
        HeaderRule("Host"),
        HeaderRule("Authorization", HeaderMode.AUTH),
        HeaderRule("X-Token", HeaderMode.HASH),
        HeaderRule("P", HeaderMode.PRESENCE),
        HeaderRule("Content-Length"),
    ),
)
P, C, R = SlotFlag.PRESENT, SlotFlag.CUT, SlotFlag.REPEATED
# parts of a request's header section -> (slot name, flags, length, value, hashed bytes or None) once complete
SPLIT_SLOT_CASES: dict[str, tuple[tuple[bytes, ...], tuple]] = {
    "value: it goes on in the next segment": (
        (b"Host: exa", b"mple\r\n\r\n"),
        ("Host", P, 7, b"example", None),
    ),
    "value cut right after the colon": ((b"Host:", b" a\r\n\r\n"), ("Host", P, 1, b"a", None)),
    "value cut before its CR": ((b"Host: a", b"\r\n\r\n"), ("Host", P, 1, b"a", None)),
    "value cut before its LF: the CR dropped": ((b"Host: a\r", b"\n\r\n"), ("Host", P, 1, b"a", None)),
    "value cut in whitespace that more value follows": (
        (b"Host: a \t", b" b\r\n\r\n"),
        ("Host", P, 5, b"a \t b", None),
    ),
    "value cut in trailing whitespace": ((b"Host: a  ", b"\r\n\r\n"), ("Host", P, 1, b"a", None)),
    "value cut after a CR that more value follows": (
        (b"Host: a\r", b"b\r\n\r\n"),
        ("Host", P, 3, b"a\rb", None),
    ),
    "value cut after a CR, then trailing SP": ((b"Host: a \r", b" \r\n\r\n"), ("Host", P, 3, b"a \r", None)),
    "value cut after a CR that starts it": ((b"Host: \r", b"b\r\n\r\n"), ("Host", P, 2, b"\rb", None)),
    "value in three segments": ((b"Host: a", b" ", b"b\r\n\r\n"), ("Host", P, 3, b"a b", None)),
    "value truncated across segments": (
        (b"Host: 0123456789", b"abcdefghij\r\n\r\n"),
        ("Host", P | SlotFlag.TRUNCATED, 20, b"0123456789abcdef", None),
    ),
    "value cut, then a repeat": ((b"Host: a", b"b\r\nHost: c\r\n\r\n"), ("Host", P | R, 2, b"ab", None)),
    "a repeat in a later segment": ((b"Host: a\r\n", b"host: b\r\n\r\n"), ("Host", P | R, 1, b"a", None)),
    "a repeat cut in its value": ((b"Host: a\r\nHost: b", b"c\r\n\r\n"), ("Host", P | R, 1, b"a", None)),
    "name split: not matched": ((b"Ho", b"st: a\r\n\r\n"), ("Host", SlotFlag(0), 0, b"", None)),
    "name split: a later occurrence is the first": (
        (b"Ho", b"st: a\r\nHost: b\r\n\r\n"),
        ("Host", P, 1, b"b", None),
    ),
    "hash of the part seen": ((b"X-Token: sec", b"ret\r\n\r\n"), ("X-Token", P | C, 3, b"", b"sec")),
    "auth scheme seen": (
        (b"Authorization: Bearer t", b"ok\r\n\r\n"),
        ("Authorization", P | C, 8, b"Bearer", b"Bearer t"),
    ),
    "auth scheme not seen whole": (
        (b"Authorization: Bea", b"rer t\r\n\r\n"),
        ("Authorization", P | C, 3, b"", b"Bea"),
    ),
    "presence: the length goes on": ((b"P: 12", b"34\r\n\r\n"), ("P", P, 4, b"", None)),
    "content-length: the slot goes on, the body length is bad (R17)": (
        (b"Content-Length: 1", b"0\r\n\r\n"),
        ("Content-Length", P, 2, b"10", None),
    ),
    "three segments, two values": ((b"Host: a", b"b\r\nP: 1", b"2\r\n\r\n"), ("Host", P, 2, b"ab", None)),
}


@pytest.mark.parametrize(("parts", "slot"), SPLIT_SLOT_CASES.values(), ids=SPLIT_SLOT_CASES.keys())
def test_slots_across_segments(parts: tuple[bytes, ...], slot: tuple) -> None:
    """R13, R18: the slots a request's segments fill, logged once it is complete."""
    name, flags, length, value, hashed = slot
    results = run([OPEN, *pieces(H + parts[0], *parts[1:])], SLOTS)
    assert [result.outcome for result in results[1:-1]] == [Counter.CONTINUED] * (len(parts) - 1)
    (event,) = results[-1].events
    got = event.header(name)
    assert (got.flags, got.length, got.value) == (flags, length, value)
    assert got.hash == (0 if hashed is None else siphash24(KEY, hashed))


# --- R18: every place a cut can fall in one header section ------------------------------------------------------

ONE_SEGMENT = SLOTS.with_changes(max_request_segments=1)
SPLIT_LINE = b"GET /split HTTP/1.1\r\n"
SPLIT_FIELDS = (
    b"Host: example.com\r\n",  # value mode
    b"Authorization: Bearer abc\r\n",  # auth mode
    b"Accept: */*\r\n",  # not configured: skipped
    b" folded\r\n",  # obs-fold: bad from its first byte
    b"X-Token:s3cret\n",  # hash mode, no OWS, bare LF
    b"P:  1 \r\n",  # presence mode
    b"host: again\r\n",  # a repeat
    b"\r\n",
)
SPLIT_REQUEST = SPLIT_LINE + b"".join(SPLIT_FIELDS)
LINE_STARTS = [
    len(SPLIT_LINE) + sum(map(len, SPLIT_FIELDS[:index])) for index in range(len(SPLIT_FIELDS) + 1)
]
HEADER_OFFSETS = range(len(SPLIT_LINE), len(SPLIT_REQUEST))  # a cut after byte ``at - 1``, before byte ``at``


def one_segment_event(payload: bytes) -> HeaderEvent:
    """The event of ``payload`` in one segment (R18 off: a cut by the payload's end is HEADERS_CUT, R13 CUT)."""
    (event,) = extract(build(FrameSpec(payload)), ONE_SEGMENT, KEY).events
    return event


def field_at(at: int) -> tuple[int, bytes]:
    """(line start, line) of the header line holding the cut before byte ``at`` (``at`` not a line start)."""
    index = max(index for index, start in enumerate(LINE_STARTS) if start < at)
    return LINE_STARTS[index], SPLIT_FIELDS[index]


def cut_place(at: int) -> Cut:
    """Where a cut before byte ``at`` of SPLIT_REQUEST falls (R18), read off the request's layout."""
    if at in LINE_STARTS:
        return Cut.LINE_START
    start, line = field_at(at)
    if line == b"\r\n":
        return Cut.LONE_CR
    if line.startswith(b" "):
        return Cut.SKIPPED  # bad from its first byte
    name = line[: line.index(b":")]
    if at - start <= len(name):
        return Cut.NAME
    modes = {rule.name.lower().encode(): rule.mode for rule in SLOTS.headers}
    earlier = {field.split(b":")[0].lower() for field in SPLIT_FIELDS[: SPLIT_FIELDS.index(line)]}
    if name.lower() in earlier or name.lower() not in modes:
        return Cut.SKIPPED
    return Cut.VALUE_GOES_ON if modes[name.lower()] in GOES_ON else Cut.VALUE


def after_cuts(cuts: list[int]) -> HeaderEvent:
    """What SPLIT_REQUEST logs once the segments ``cuts`` split it into are all read (R18).

    The event it gives in one segment, except where a line's first cut fell: in a name, the line is not matched
    (as if its name were an unconfigured one) and the event gets NAME_SPLIT; in a hash or auth value that
    fills a slot, the slot holds the bytes before the cut, with CUT (what one segment ending there gives it),
    and REPEATED if a later line repeats it. Every other cut changes nothing: a value or presence slot's
    value goes on.
    """
    payload, flags, value_cuts, lines_cut = bytearray(SPLIT_REQUEST), F(0), [], set()
    for at in sorted(cuts):
        if at in LINE_STARTS or field_at(at)[0] in lines_cut:
            continue
        start, _ = field_at(at)
        lines_cut.add(start)
        if cut_place(at) is Cut.NAME:
            colon = SPLIT_REQUEST.index(b":", start) - start
            payload[start : start + colon] = b"z" * colon
            flags |= F.NAME_SPLIT
        elif cut_place(at) is Cut.VALUE:
            value_cuts.append(at)
    event = one_segment_event(bytes(payload))
    slots = list(event.headers)
    for at in value_cuts:
        for index, slot in enumerate(one_segment_event(bytes(payload[:at])).headers):
            if slot.flags & SlotFlag.CUT:  # later occurrences still repeat it
                slots[index] = dataclasses.replace(slot, flags=slot.flags | slots[index].flags & R)
    return dataclasses.replace(event, flags=event.flags | flags, headers=tuple(slots))


@pytest.mark.parametrize("at", HEADER_OFFSETS)
def test_split_at_every_offset_of_the_header_section(at: int) -> None:
    """R18: split in two, the request logs what it logs in one segment, but for the documented differences."""
    tracker = FlowTracker(SLOTS, KEY)
    tracker.feed(OPEN)
    assert step(tracker.feed(seg(SPLIT_REQUEST[:at]))) == CONT
    ((_, state),) = tracker.states.items()
    assert state.pending is not None
    assert (state.mode, state.pending.cut) == (Mode.HEADERS, cut_place(at))
    result = tracker.feed(seg(SPLIT_REQUEST[at:], at))
    assert step(result) == Step("http_request", ("/split",))
    (event,) = result.events
    whole = one_segment_event(SPLIT_REQUEST)
    # the obs-fold line: BAD_LINE and OBS_FOLD (R12, R19); the X-Token line ends in a bare LF (R19)
    assert whole.flags == F.BAD_LINE | F.OBS_FOLD | F.BARE_LF and whole.header_lines == 7
    if cut_place(at) in (Cut.LINE_START, Cut.LONE_CR, Cut.SKIPPED, Cut.VALUE_GOES_ON):
        assert event == whole
    else:
        assert event == after_cuts([at]) != whole


THREE_WAY = [(at, at + gap) for gap in (1, 5) for at in HEADER_OFFSETS if at + gap < len(SPLIT_REQUEST)]


@pytest.mark.parametrize(("first", "second"), THREE_WAY)
def test_split_in_three(first: int, second: int) -> None:
    """R18: the same in three segments; where two cuts split one line, the first decides."""
    frames = [OPEN, seg(SPLIT_REQUEST[:first]), seg(SPLIT_REQUEST[first:second], first)]
    results = run([*frames, seg(SPLIT_REQUEST[second:], second)], SLOTS)
    assert [step(result) for result in results] == [OPENED, CONT, CONT, Step("http_request", ("/split",))]
    assert results[-1].events == (after_cuts([first, second]),)


@pytest.mark.parametrize("at", range(1, len(SPLIT_LINE)))
def test_request_line_cut_by_the_payload(at: int) -> None:
    """R10, R18: a request line cut by the payload's end is LINE_CUT (not http before the method's SP) and
    loses the flow: nothing goes on."""
    results = run([OPEN, seg(SPLIT_REQUEST[:at]), seg(SPLIT_REQUEST[at:], at)], SLOTS)
    target = SPLIT_LINE[4:at].split(b" ")[0].decode()
    first = Step("not_http", lost=1) if at < 4 else Step("http_request", (target,), lost=1)
    assert [step(result) for result in results] == [OPENED, first, Step("out_of_sync")]
    assert all(event.flags == F.LINE_CUT for event in results[1].events)


SMALL = b"GET / HTTP/1.1\r\nHost: ab\r\nX: 1\r\n\r\n"
SMALL_HEADERS = range(len(b"GET / HTTP/1.1\r\n"), len(SMALL))


@pytest.mark.parametrize("segments", [len(SMALL_HEADERS) + 1, len(SMALL_HEADERS)])
def test_one_byte_per_segment(segments: int) -> None:
    """R18: the request line, then every header byte its own segment; every name is split after its first
    byte. One segment short of the limit it needs, the request is logged HEADERS_CUT at the lone CR."""
    frames = [OPEN, seg(SMALL[: SMALL_HEADERS[0]])] + [seg(SMALL[at : at + 1], at) for at in SMALL_HEADERS]
    results = run(frames, SLOTS.with_changes(max_request_segments=segments))
    complete = segments > len(SMALL_HEADERS)
    final = Step("http_request", ("/",)) if complete else Step("http_request", ("/",), lost=1)
    tail = [] if complete else [Step("out_of_sync")]
    assert [step(result) for result in results] == [OPENED] + [CONT] * (segments - 1) + [final] + tail
    (event,) = results[segments].events
    cut = F(0) if complete else F.HEADERS_CUT
    assert (event.flags, event.header_lines) == (F.NAME_SPLIT | cut, 2)
    assert not any(slot.flags for slot in event.headers)


# --- R19: ambiguities -----------------------------------------------------------------------------------------

TE = b"Transfer-Encoding: chunked\r\n"
# a request's segments, in order -> the flags of its event, logged with the last one
R19_CASES: dict[str, tuple[tuple[bytes, ...], EventFlag]] = {
    # BARE_LF
    "CR LF everywhere": ((H + b"Host: a\r\n\r\n",), F(0)),
    "request line ends in LF alone": ((b"GET /h HTTP/1.1\nHost: a\r\n\r\n",), F.BARE_LF),
    "header line ends in LF alone": ((H + b"Host: a\n\r\n",), F.BARE_LF),
    "empty line is LF alone": ((H + b"Host: a\r\n\n",), F.BARE_LF),
    "colon-less line ends in LF alone": ((H + b"Host\n\r\n",), F.BAD_LINE | F.BARE_LF),
    "CR LF of a header line split across two segments": ((H + b"Host: a\r", b"\n\r\n"), F(0)),
    "CR LF of the empty line split across two segments": ((H + b"Host: a\r\n\r", b"\n"), F(0)),
    "LF first in a segment after one ending without CR": ((H + b"Host: a", b"\n\r\n"), F.BARE_LF),
    "LF first in a segment, the empty line": ((H + b"Host: a\r\n", b"\n"), F.BARE_LF),
    "LF first in a segment after a split name": (
        (H + b"Host", b"\n\r\n"),
        F.NAME_SPLIT | F.BAD_LINE | F.BARE_LF,
    ),
    # CONTROL_BYTE
    "bare CR inside a value": ((H + b"Host: a\rb\r\n\r\n",), F.CONTROL_BYTE),
    "NUL inside a value": ((H + b"Host: a\x00b\r\n\r\n",), F.CONTROL_BYTE),
    "DEL inside a skipped line": ((H + b"X-Other: a\x7f\r\n\r\n",), F.CONTROL_BYTE),
    "HT inside a value is not flagged": ((H + b"Host: a\tb\r\n\r\n",), F(0)),
    "CR CR LF ends a line with a bare CR": ((H + b"Host: a\r\r\n\r\n",), F.CONTROL_BYTE),
    "CR last in a segment, then a byte": ((H + b"X-Other: a\r", b"b\r\n\r\n"), F.CONTROL_BYTE),
    "control byte in a name": ((H + b"Ho\x01st: a\r\n\r\n",), F.BAD_LINE | F.CONTROL_BYTE),
    # OBS_FOLD
    "line starts with SP": ((H + b"Host: a\r\n b\r\n\r\n",), F.BAD_LINE | F.OBS_FOLD),
    "line starts with HT": ((H + b"Host: a\r\n\tb\r\n\r\n",), F.BAD_LINE | F.OBS_FOLD),
    "first header line starts with SP": ((H + b" Host: a\r\n\r\n",), F.BAD_LINE | F.OBS_FOLD),
    "line starts with SP at a segment's start": (
        (H + b"Host: a\r\n", b" b\r\n\r\n"),
        F.BAD_LINE | F.OBS_FOLD,
    ),
    "whitespace inside and around values is not flagged": ((H + b"Host:  a b \r\nX:\tc\r\n\r\n",), F(0)),
    # WS_BEFORE_COLON
    "SP before colon": ((H + b"Host : a\r\n\r\n",), F.BAD_LINE | F.WS_BEFORE_COLON),
    "tab before colon": ((H + b"Host\t: a\r\n\r\n",), F.BAD_LINE | F.WS_BEFORE_COLON),
    "SP after the name of a colon-less line": ((H + b"Bad Line\r\n\r\n",), F.BAD_LINE | F.WS_BEFORE_COLON),
    "SP after a non-tchar is not flagged": ((H + b"Ho@st : a\r\n\r\n",), F.BAD_LINE),
    "split name, the rest has SP before the colon": (
        (H + b"Ho", b"st : a\r\n\r\n"),
        F.NAME_SPLIT | F.BAD_LINE | F.WS_BEFORE_COLON,
    ),
    "split name, the rest starts with SP": (
        (H + b"Host", b" : a\r\n\r\n"),
        F.NAME_SPLIT | F.BAD_LINE | F.WS_BEFORE_COLON,
    ),
    "split name, the rest starts with HT": (
        (H + b"Host", b"\t: a\r\n\r\n"),
        F.NAME_SPLIT | F.BAD_LINE | F.WS_BEFORE_COLON,
    ),
    "split after the colon, the value starts with SP": ((H + b"Host:", b" a\r\n\r\n"), F(0)),
    # CL_AND_TE
    "CL then TE": ((HEAD + b"Content-Length: 5\r\n" + TE + b"\r\n",), F.TRANSFER_ENCODING | F.CL_AND_TE),
    "TE then CL": ((HEAD + TE + b"Content-Length: 5\r\n\r\n",), F.TRANSFER_ENCODING | F.CL_AND_TE),
    "TE then a bad CL": (
        (HEAD + TE + b"Content-Length: x\r\n\r\n",),
        F.TRANSFER_ENCODING | F.BAD_CONTENT_LENGTH | F.CL_AND_TE,
    ),
    "CL and TE in two segments": (
        (HEAD + b"Content-Length: 5\r\n", TE + b"\r\n"),
        F.TRANSFER_ENCODING | F.CL_AND_TE,
    ),
    "TE alone": ((HEAD + TE + b"\r\n",), F.TRANSFER_ENCODING),
    "two CL, no TE": ((HEAD + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\n",), F.BAD_CONTENT_LENGTH),
    "CL with SP before its colon is not a CL line": (
        (HEAD + b"Content-Length : 5\r\n" + TE + b"\r\n",),
        F.BAD_LINE | F.WS_BEFORE_COLON | F.TRANSFER_ENCODING,
    ),
    "a split CL name is not a CL line": (
        (HEAD + b"Content-Len", b"gth: 5\r\n" + TE + b"\r\n"),
        F.NAME_SPLIT | F.TRANSFER_ENCODING,
    ),
}


@pytest.mark.parametrize(("parts", "flags"), R19_CASES.values(), ids=R19_CASES.keys())
def test_ambiguity_flags(parts: tuple[bytes, ...], flags: EventFlag) -> None:
    """R19: the flags a request's bytes give its event, in one segment or split by the payload's end (R18)."""
    results = run([OPEN, *pieces(*parts)])
    assert [result.outcome for result in results[1:-1]] == [Counter.CONTINUED] * (len(parts) - 1)
    (event,) = results[-1].events
    assert event.flags == flags


# --- extract: one frame right after its SYN -------------------------------------------------------------------

EXTRACT_CASES: dict[str, tuple[bytes, Step]] = {
    "request": (seg(ONE), HTTP_1),
    "rst frame has no state": (seg(ONE, flags="RA"), Step("mid_stream", closed=1)),
    "fin frame closes": (seg(ONE, flags="FPA"), Step("http_request", ("/1",), closed=1)),
    "syn with data opens": (seg(ONE, flags="S"), Step("http_request", ("/1",), opened=1)),
    "not http is lost": (seg(NOT_HTTP), Step("not_http", lost=1)),
    "body length unknown is lost": (
        seg(HEAD + b"Transfer-Encoding: x\r\n\r\n"),
        Step("http_request", ("/p",), lost=1),
    ),
    "body beyond the payload is not lost": (seg(POST), HTTP_P),
    "header section cut by the payload's end goes on": (seg(HEAD + b"Host: a"), Step("continued")),
}


@pytest.mark.parametrize(("frame", "expected"), EXTRACT_CASES.values(), ids=EXTRACT_CASES.keys())
def test_extract_is_one_frame_after_its_syn(frame: bytes, expected: Step) -> None:
    assert step(extract(frame, CONFIG, KEY)) == expected


# --- opening: the SYN before a frame ----------------------------------------------------------------------------

OPENING_SPECS: dict[str, FrameSpec] = {
    "ipv4": FrameSpec(ONE),
    "ipv6": FrameSpec(ONE, family=6, seq=77),
    "vlan": FrameSpec(ONE, vlan_ids=(7,)),
    "qinq ipv6": FrameSpec(ONE, family=6, vlan_ids=(300, 4), vlan_tpids=(0x88A8, 0x8100)),
    "ip and tcp options": FrameSpec(
        ONE, ip_options=b"\x94\x04\x00\x00", tcp_options=bytes.fromhex("020405b4")
    ),
    "seq 0 wraps": FrameSpec(ONE, seq=0),
    "port 8080": FrameSpec(ONE, dport=8080),
    "first fragment": FrameSpec(ONE, fragment="first"),
    "fin": FrameSpec(ONE, flags="FPA"),
    "rst": FrameSpec(ONE, flags="RA"),
    "bare ack": FrameSpec(b"", flags="A"),
    "not http": FrameSpec(NOT_HTTP, family=6),
    "body": FrameSpec(POST + BODY[:3]),
    "padded": FrameSpec(ONE, pad=20),
    "cut short": FrameSpec(ONE + TWO, truncate_to=70),
}


@pytest.mark.parametrize("spec", OPENING_SPECS.values(), ids=OPENING_SPECS.keys())
def test_opening_round_trip(spec: FrameSpec) -> None:
    """extract(frame) is what a tracker says of the frame right after its opening SYN."""
    frame = build(spec)
    syn_frame = opening(frame)
    assert syn_frame is not None
    tracker = FlowTracker(CONFIG, KEY)
    assert step(tracker.feed(syn_frame)) == OPENED
    assert tracker.feed(frame) == extract(frame, CONFIG, KEY)


@pytest.mark.parametrize("spec", OPENING_SPECS.values(), ids=OPENING_SPECS.keys())
def test_opening_is_the_syn_scapy_builds(spec: FrameSpec) -> None:
    """Same addressing, flags exactly SYN, seq one before, no payload, correct lengths and checksums."""
    syn_spec = dataclasses.replace(
        spec, payload=b"", flags="S", seq=(spec.seq - 1) % SEQ_SPACE, fragment="none", pad=0, truncate_to=None
    )
    assert opening(build(spec)) == build(syn_spec)


def test_opening_of_unwatched_port_is_harmless() -> None:
    frame = build(FrameSpec(ONE, dport=81))
    syn_frame = opening(frame)
    assert syn_frame is not None
    assert [step(result) for result in run([syn_frame, frame])] == [Step("port_not_watched")] * 2


NO_OPENING: dict[str, bytes] = {
    "syn": build(FrameSpec(b"", flags="S")),
    "syn with data": build(FrameSpec(ONE, flags="S")),
    "syn ack": build(FrameSpec(b"", flags="SA")),
    "arp": arp_frame(),
    "udp": build(FrameSpec(ONE, protocol="udp")),
    "ipv6 extension header": build(FrameSpec(ONE, family=6, ipv6_ext=True)),
    "later fragment": build(FrameSpec(ONE, fragment="later")),
    "tcp header cut": build(FrameSpec(ONE))[:40],
    "third vlan tag": build(FrameSpec(ONE, vlan_ids=(1, 2, 3))),
}


@pytest.mark.parametrize("frame", NO_OPENING.values(), ids=NO_OPENING.keys())
def test_no_opening(frame: bytes) -> None:
    assert opening(frame) is None


@pytest.mark.parametrize("flags", ["S", "SA", "SF", "SR"])
def test_syn_frame_opens_itself(flags: str) -> None:
    frame = build(FrameSpec(ONE, flags=flags))
    assert FlowTracker(CONFIG, KEY).feed(frame) == extract(frame, CONFIG, KEY)
