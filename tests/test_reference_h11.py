"""The reference extractor against h11, an independent HTTP/1.1 parser, on well-formed requests.

The hand-written tables in test_reference.py pin the edge rules; this test covers the ordinary ground more
widely: Hypothesis writes requests with any methods, targets, name case, whitespace around values and a mix of
configured and unrelated fields, and wherever h11 accepts one, both parsers must read the same method, target,
version and first value of every configured header (h11 also trims the whitespace around values).
"""

from __future__ import annotations

import re

import h11
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from harness.core.config import TCHARS, ExtractorConfig, HeaderMode
from harness.core.event import EventFlag, HeaderEvent, SlotFlag
from harness.oracle.frames import FrameSpec, build
from harness.oracle.reference import auth_scheme, extract, siphash24

CONFIG = ExtractorConfig(max_scan_bytes=1536, max_target_len=64, max_value_len=32)
KEY = bytes(range(16, 32))
TOKEN = "".join(sorted(chr(byte) for byte in TCHARS))
VISIBLE = "".join(chr(byte) for byte in range(0x21, 0x7F))
FIELD_BYTES = VISIBLE + "".join(chr(byte) for byte in range(0x80, 0x100))
CONFIGURED = [rule.name for rule in CONFIG.headers]
AVOIDED = {"content-length", "transfer-encoding"}  # h11 checks their values, which is beside the point here

methods = st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"]) | st.text(
    TOKEN, min_size=1, max_size=16
)
targets = st.just("*") | st.builds(lambda rest: "/" + rest, st.text(VISIBLE, max_size=100))
whitespace = st.text(" \t", max_size=3)


@st.composite
def case_variant(draw: st.DrawFn, name: str) -> str:
    """The name with each letter's case chosen by Hypothesis."""
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(char.swapcase() if flip else char for char, flip in zip(name, flips, strict=True))


@st.composite
def field_values(draw: st.DrawFn) -> str:
    """A field value as RFC 9110 allows it: visible or obs-text bytes, inner SP/HT, OWS around it."""
    words = draw(st.lists(st.text(FIELD_BYTES, min_size=1, max_size=12), max_size=4))
    inner = "".join(word + draw(st.sampled_from([" ", "\t", "  "])) for word in words[:-1]) + "".join(
        words[-1:]
    )
    return draw(whitespace) + inner + draw(whitespace)


names = st.sampled_from(CONFIGURED).flatmap(case_variant) | st.text(TOKEN, min_size=1, max_size=20).filter(
    lambda name: name.lower() not in AVOIDED
)
fields = st.lists(st.tuples(names, field_values()), max_size=10)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """One complete request; HTTP/1.1 gets a Host field somewhere, as h11 requires."""
    version = draw(st.sampled_from(["1.0", "1.1"]))
    header_fields = draw(fields)
    if version == "1.1" and not any(name.lower() == "host" for name, _ in header_fields):
        at = draw(st.integers(0, len(header_fields)))
        header_fields.insert(at, (draw(case_variant("Host")), draw(field_values())))
    ending = draw(st.sampled_from(["\r\n", "\n"]))
    lines = [f"{draw(methods)} {draw(targets)} HTTP/{version}"] + [
        f"{name}:{value}" for name, value in header_fields
    ]
    return (ending.join(lines) + ending + ending).encode("latin-1")


def parse_with_h11(payload: bytes) -> h11.Request | None:
    """h11's reading of the request, or None where h11 refuses it."""
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(payload)
    try:
        event = connection.next_event()
    except h11.RemoteProtocolError:
        return None
    return event if isinstance(event, h11.Request) else None


@settings(max_examples=300, deadline=None, derandomize=True)
@given(requests())
def test_reference_agrees_with_h11(payload: bytes) -> None:
    request = parse_with_h11(payload)
    assume(request is not None)
    (event,) = extract(build(FrameSpec(payload)), CONFIG, KEY).events
    # R19: BARE_LF is the only flag these requests can give: their lines end in LF alone or in CR LF
    bare_lf = EventFlag.BARE_LF if re.search(rb"(?<!\r)\n", payload) else EventFlag(0)
    assert event.flags & ~EventFlag.TARGET_TRUNCATED == bare_lf
    assert event.method == request.method
    assert (event.target, event.target_length) == (
        request.target[: CONFIG.max_target_len],
        len(request.target),
    )
    assert event.version == {b"1.0": 10, b"1.1": 11}[request.http_version]
    assert event.header_lines == len(request.headers)
    check_headers(event, [(name, value) for name, value in request.headers])


def check_headers(event: HeaderEvent, h11_fields: list[tuple[bytes, bytes]]) -> None:
    """Each configured slot holds what h11 read for the first occurrence of that name."""
    for slot in event.headers:
        values = [value for name, value in h11_fields if name == slot.name.lower().encode()]
        if not values:
            assert slot.flags == SlotFlag(0)
            continue
        first = values[0]
        repeated = SlotFlag.REPEATED if len(values) > 1 else SlotFlag(0)
        truncated = SlotFlag(0)
        if slot.mode is HeaderMode.VALUE and len(first) > CONFIG.max_value_len:
            truncated = SlotFlag.TRUNCATED
        assert slot.flags == SlotFlag.PRESENT | repeated | truncated
        assert slot.length == len(first)
        assert (slot.value, slot.hash) == expected_value(slot.mode, first)


def expected_value(mode: HeaderMode, value: bytes) -> tuple[bytes, int]:
    """(value, hash) as the slot should hold them for a value h11 read."""
    if mode is HeaderMode.VALUE:
        return value[: CONFIG.max_value_len], 0
    if mode is HeaderMode.HASH:
        return b"", siphash24(KEY, value)
    if mode is HeaderMode.AUTH:
        return auth_scheme(value), siphash24(KEY, value)
    return b"", 0


def test_h11_accepts_most_generated_requests() -> None:
    """Guards the property above against quietly testing nothing because h11 refuses what we generate."""
    accepted = []

    @settings(max_examples=100, deadline=None, derandomize=True)
    @given(requests())
    def sample(payload: bytes) -> None:
        accepted.append(parse_with_h11(payload) is not None)

    sample()
    assert sum(accepted) >= 0.8 * len(accepted)
