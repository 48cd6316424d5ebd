"""R19's flags against llhttp (Node.js's HTTP parser, as httptools.HttpRequestParser), strict by default.

R19 flags bytes that other parsers read differently. Strict llhttp refuses every request that has one of the
five flags: each corpus request whose event has one is held to that, and small inputs pin the llhttp error per
flag. The last table pins where the flags and llhttp disagree, as docs/EXTRACTION.md lists it under R19.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import httptools
import pytest

from harness.core.config import ExtractorConfig
from harness.core.event import EventFlag, HeaderEvent
from harness.oracle.corpus import CorpusCase, flow_expectations, load_corpus
from harness.oracle.frames import FrameSpec, build
from harness.oracle.reference import DEFAULT_CONFIG, tcp_segment

F = EventFlag
R19_FLAGS = F.BARE_LF | F.OBS_FOLD | F.WS_BEFORE_COLON | F.CL_AND_TE | F.TE_NOT_CHUNKED | F.CONTROL_BYTE
H = b"GET / HTTP/1.1\r\n"
POST = b"POST / HTTP/1.1\r\nHost: a\r\n"
TE = b"Transfer-Encoding: chunked\r\n"


@dataclasses.dataclass(frozen=True)
class Reading:
    """What llhttp made of a flow's bytes: the requests it completed, then its error (None: no error)."""

    completed: int
    error: str | None

    def rejects(self, index: int) -> bool:
        """Whether llhttp refused request ``index`` of the flow (the ones before it complete)."""
        return self.error is not None and self.error != "upgrade" and self.completed == index


class _Counter:
    def __init__(self) -> None:
        self.completed = 0

    def on_message_complete(self) -> None:
        self.completed += 1


def llhttp(segments: Sequence[bytes], **leniencies: bool) -> Reading:
    """llhttp's reading of a flow's payloads fed in order; ``leniencies`` are llhttp's lenient flags."""
    counter = _Counter()
    parser = httptools.HttpRequestParser(counter)
    if leniencies:
        parser.set_dangerous_leniencies(**leniencies)
    try:
        for segment in segments:
            parser.feed_data(segment)
    except httptools.HttpParserUpgrade:
        return Reading(counter.completed, "upgrade")  # the bytes after an upgrade or CONNECT are not HTTP
    except httptools.HttpParserError as error:
        return Reading(counter.completed, str(error))
    return Reading(counter.completed, None)


def stream(frames: Sequence[bytes]) -> list[bytes]:
    """The new bytes each frame adds to its flow's byte stream, in order (a retransmission adds none)."""
    pieces: list[bytes] = []
    expect = None
    for frame in frames:
        segment = tcp_segment(frame)
        if segment is None or not segment.payload:
            continue
        if expect is None:
            expect = segment.start
        assert segment.start <= expect, "a gap in the flow: llhttp would see other bytes than the extractor"
        new = segment.payload[expect - segment.start :]
        pieces.append(new)
        expect += len(new)
    return pieces


def events(parts: Sequence[bytes], config: ExtractorConfig = DEFAULT_CONFIG) -> list[HeaderEvent]:
    """The reference's events for ``parts`` sent as consecutive segments of one flow after its SYN."""
    offsets = [sum(map(len, parts[:index])) for index in range(len(parts))]
    frames = [build(FrameSpec(part, seq=1000 + at)) for part, at in zip(parts, offsets, strict=True)]
    return [event for result in flow_expectations([frames], config) for event in result.events]


# --- the corpus ---------------------------------------------------------------------------------------------

CORPUS = load_corpus()
# (case, index of the request in the flow, its event's R19 flags), for every corpus request flagged by R19
FLAGGED = [
    (case, index, event.flags & R19_FLAGS)
    for case in CORPUS
    for index, event in enumerate(event for result in case.expected() for event in result.events)
    if event.flags & R19_FLAGS
]


def test_corpus_has_every_r19_flag() -> None:
    """Every R19 flag is set by some corpus request, so every driver checks the kernel on it."""
    seen = F(0)
    for _, _, flags in FLAGGED:
        seen |= flags
    assert seen == R19_FLAGS


@pytest.mark.parametrize(
    ("case", "index", "flags"), FLAGGED, ids=[f"{case.name}-{index}" for case, index, _ in FLAGGED]
)
def test_llhttp_rejects_flagged_corpus_requests(case: CorpusCase, index: int, flags: EventFlag) -> None:
    """Strict llhttp refuses every corpus request that R19 flags, whatever the flag, and only that request."""
    reading = llhttp(stream(case.frames))
    assert reading.rejects(index), f"{case.name} request {index} ({flags!r}): llhttp read it as {reading}"


# --- each flag: the bytes that set it, and the llhttp error for them ----------------------------------------

# segments of a flow -> (the R19 flags of its one event, llhttp's error)
FLAG_CASES: dict[str, tuple[tuple[bytes, ...], EventFlag, str | None]] = {
    "BARE_LF request line": ((b"GET / HTTP/1.1\nHost: a\r\n\r\n",), F.BARE_LF, "Expected CRLF after version"),
    "BARE_LF header line": (
        (H + b"Host: a\nX: b\r\n\r\n",),
        F.BARE_LF,
        "Missing expected CR after header value",
    ),
    "BARE_LF empty line": ((H + b"Host: a\r\n\n",), F.BARE_LF, "Invalid header field char"),
    "BARE_LF first in a segment": (
        (H + b"Host: a", b"\nX: b\r\n\r\n"),
        F.BARE_LF,
        "Missing expected CR after header value",
    ),
    "CR LF across two segments": ((H + b"Host: a\r", b"\nX: b\r\n\r\n"), F(0), None),
    "OBS_FOLD after a field": (
        (H + b"Host: a\r\n folded\r\n\r\n",),
        F.OBS_FOLD,
        "Unexpected whitespace after header value",
    ),
    "OBS_FOLD HT after a field": (
        (H + b"Host: a\r\n\tfolded\r\n\r\n",),
        F.OBS_FOLD,
        "Unexpected whitespace after header value",
    ),
    "OBS_FOLD first line": (
        (H + b" folded\r\nHost: a\r\n\r\n",),
        F.OBS_FOLD,
        "Unexpected space after start line",
    ),
    "WS_BEFORE_COLON SP": ((H + b"Host : a\r\n\r\n",), F.WS_BEFORE_COLON, "Invalid header token"),
    "WS_BEFORE_COLON HT": ((H + b"Host\t: a\r\n\r\n",), F.WS_BEFORE_COLON, "Invalid header token"),
    "WS_BEFORE_COLON split name": ((H + b"Host", b" : a\r\n\r\n"), F.WS_BEFORE_COLON, "Invalid header token"),
    "WS_BEFORE_COLON colon-less line": (
        (H + b"Bad Line\r\n\r\n",),
        F.WS_BEFORE_COLON,
        "Invalid header token",
    ),
    "CL_AND_TE CL first": (
        (POST + b"Content-Length: 5\r\n" + TE + b"\r\n0\r\n\r\n",),
        F.CL_AND_TE,
        "Transfer-Encoding can't be present with Content-Length",
    ),
    "CL_AND_TE TE first": (
        (POST + TE + b"Content-Length: 5\r\n\r\n0\r\n\r\n",),
        F.CL_AND_TE,
        "Content-Length can't be present with Transfer-Encoding",
    ),
    "TE alone": ((POST + TE + b"\r\n0\r\n\r\n",), F(0), None),
    "TE_NOT_CHUNKED gzip": (
        (POST + b"Transfer-Encoding: gzip\r\n\r\n",),
        F.TE_NOT_CHUNKED,
        "Request has invalid `Transfer-Encoding`",
    ),
    "TE_NOT_CHUNKED chunked then gzip": (
        (POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n",),
        F.TE_NOT_CHUNKED,
        "Invalid `Transfer-Encoding` header value",
    ),
    "TE_NOT_CHUNKED a coding that ends in chunked": (
        (POST + b"Transfer-Encoding: xchunked\r\n\r\n",),
        F.TE_NOT_CHUNKED,
        "Request has invalid `Transfer-Encoding`",
    ),
    "CONTROL_BYTE bare CR in a value": (
        (H + b"Host: a\rb\r\n\r\n",),
        F.CONTROL_BYTE,
        "Missing expected LF after header value",
    ),
    "CONTROL_BYTE NUL in a value": (
        (H + b"Host: a\x00b\r\n\r\n",),
        F.CONTROL_BYTE,
        "Invalid header value char",
    ),
    "TE gzip then chunked": ((POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",), F(0), None),
}


@pytest.mark.parametrize(("parts", "flags", "error"), FLAG_CASES.values(), ids=FLAG_CASES.keys())
def test_flag_and_llhttp_error(parts: tuple[bytes, ...], flags: EventFlag, error: str | None) -> None:
    (event,) = events(parts)
    assert event.flags & R19_FLAGS == flags
    assert llhttp(parts) == Reading(0 if error else 1, error)


# --- where the flags and llhttp disagree (docs/EXTRACTION.md R19) -------------------------------------------

# segments -> (config, the R19 flags of the flow's last event, llhttp's reading)
DISAGREEMENTS: dict[str, tuple[tuple[bytes, ...], ExtractorConfig, EventFlag, Reading]] = {
    "a non-tchar, then SP before the colon": (
        (H + b"Ho@st : a\r\n\r\n",),
        DEFAULT_CONFIG,
        F(0),
        Reading(0, "Invalid header token"),
    ),
    "obs-fold past MAX_HEADER_LINES": (
        (H + b"Host: a\r\n folded\r\n\r\n",),
        DEFAULT_CONFIG.with_changes(max_header_lines=1),
        F(0),
        Reading(0, "Unexpected whitespace after header value"),
    ),
    "bare LF in the request after a CONNECT": (
        (b"CONNECT a:80 HTTP/1.1\r\n\r\nGET / HTTP/1.1\nHost: a\n\n",),
        DEFAULT_CONFIG,
        F.BARE_LF,
        Reading(1, "upgrade"),
    ),
    "bare LF in the request after an Upgrade": (
        (H + b"Connection: upgrade\r\nUpgrade: x\r\n\r\nGET / HTTP/1.1\nHost: a\n\n",),
        DEFAULT_CONFIG,
        F.BARE_LF,
        Reading(1, "upgrade"),
    ),
}


@pytest.mark.parametrize(
    ("parts", "config", "flags", "reading"), DISAGREEMENTS.values(), ids=DISAGREEMENTS.keys()
)
def test_where_flags_and_llhttp_disagree(
    parts: tuple[bytes, ...], config: ExtractorConfig, flags: EventFlag, reading: Reading
) -> None:
    """Not flagged but refused by llhttp, or flagged in bytes llhttp hands on unparsed after an upgrade."""
    assert events(parts, config)[-1].flags & R19_FLAGS == flags
    assert llhttp(parts) == reading


# llhttp's lenient flags -> what each lets through of the flagged requests above
LENIENT_CASES: dict[str, tuple[tuple[bytes, ...], dict[str, bool], str | None]] = {
    "optional CR before LF: a header line": (
        (H + b"Host: a\nX: b\r\n\r\n",),
        {"lenient_optional_cr_before_lf": True},
        None,
    ),
    "optional CR before LF: the empty line": (
        (H + b"Host: a\r\n\n",),
        {"lenient_optional_cr_before_lf": True},
        None,
    ),
    "optional CR before LF: not the request line": (
        (b"GET / HTTP/1.1\nHost: a\r\n\r\n",),
        {"lenient_optional_cr_before_lf": True, "lenient_version": True},
        "Expected CRLF after version",
    ),
    "lenient headers: obs-fold": ((H + b"Host: a\r\n folded\r\n\r\n",), {"lenient_headers": True}, None),
    "lenient headers: not SP before the colon": (
        (H + b"Host : a\r\n\r\n",),
        {"lenient_headers": True},
        "Invalid header token",
    ),
    "lenient chunked length: CL and TE": (
        (POST + b"Content-Length: 5\r\n" + TE + b"\r\n0\r\n\r\n",),
        {"lenient_chunked_length": True},
        None,
    ),
}


@pytest.mark.parametrize(("parts", "leniencies", "error"), LENIENT_CASES.values(), ids=LENIENT_CASES.keys())
def test_llhttp_leniencies(parts: tuple[bytes, ...], leniencies: dict[str, bool], error: str | None) -> None:
    """A server that turns these on reads the flagged bytes; R19 flags the request all the same."""
    assert events(parts)[-1].flags & R19_FLAGS
    assert llhttp(parts, **leniencies) == Reading(0 if error else 1, error)
