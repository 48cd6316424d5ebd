"""A ClientHello cut into two segments at every offset of its extensions (docs/EXTRACTION.md R23): the kernel
agrees with the reference, and a cut before or inside an extension's header gives the whole hello's event with
the second segment.

The three offsets inside each extension's 4-byte header are what this adds: the flow keeps the header's first
bytes and the next segment finishes it. Before, such a cut ended the hello in its first segment with
HELLO_CUT and lost every field after it. Browsers that send a post-quantum key share cut their hello somewhere
in its extensions, in a random order, so such cuts happen: a few in a hundred.
"""

from __future__ import annotations

import pytest

from harness.core.counters import Counter
from harness.core.driver import TestRunDriver
from harness.core.event import TlsFlag, TlsHello
from harness.oracle import tls
from harness.oracle.differences import outcome_differences
from harness.oracle.frames import FrameSpec, build, opening, split
from harness.oracle.reference import FlowTracker

pytestmark = pytest.mark.kernel

# SNI last, after a padding extension, as a permuted browser hello may have it.
EXTENSIONS = (
    (tls.ALPN, tls.alpn(b"h2", b"http/1.1")),
    (tls.PADDING, bytes(40)),
    (tls.SUPPORTED_VERSIONS, tls.supported_versions(0x1A1A, tls.TLS_1_3, tls.TLS_1_2)),
    (tls.SERVER_NAME, tls.server_name(b"last.example.com")),
)
HELLO = tls.with_extensions(EXTENSIONS)
PAYLOAD = HELLO.to_bytes()
FIRST_EXTENSION = len(PAYLOAD) - len(HELLO.extensions_block()) + 2  # after the extensions' length


def header_offsets() -> list[int]:
    """Where each extension's header starts, in PAYLOAD's offsets."""
    found, at = [], FIRST_EXTENSION
    for _, data in EXTENSIONS:
        found.append(at)
        at += 4 + len(data)
    return found


def at_or_in_a_header(cut: int) -> bool:
    """Whether ``cut`` falls at an extension's header or inside it."""
    return any(header <= cut < header + 4 for header in header_offsets())


def hello_in_two(cut: int) -> list[bytes]:
    """The flow's SYN, the hello's first ``cut`` bytes, then the rest."""
    first, second = (build(spec) for spec in split(FrameSpec(payload=PAYLOAD, dport=443), cut))
    syn = opening(first)
    assert syn is not None
    return [syn, first, second]


@pytest.mark.parametrize("cut", range(FIRST_EXTENSION, len(PAYLOAD)))
def test_a_hello_cut_anywhere_in_its_extensions_is_read_as_the_reference_says(program, cut: int) -> None:
    frames = hello_in_two(cut)
    outcomes = TestRunDriver(program).feed(frames)
    tracker = FlowTracker(program.config, program.key)
    for frame, outcome in zip(frames, outcomes, strict=True):
        differences = outcome_differences(outcome, tracker.feed(frame))
        assert not differences, f"cut at {cut}:\n  " + "\n  ".join(differences)
    if at_or_in_a_header(cut):
        assert outcomes[1].events == () and outcomes[1].counters[Counter.CONTINUED] == 1
        [event] = outcomes[2].events
        assert isinstance(event, TlsHello)
        assert (event.sni, event.alpn, event.tls_version, event.flags) == (
            b"last.example.com",
            (b"h2", b"http/1.1"),
            tls.TLS_1_3,
            TlsFlag(0),
        )
