"""Drivers: one way to feed frames to a loaded Program and see what it did.

``TestRunDriver`` uses BPF_PROG_TEST_RUN (no network); the lab's driver (netns/driver.py) sends the same
frames over a veth pair. Both return ``Outcome`` objects, so one test parametrised over drivers proves
the live path and the test-run path agree.

The extractor keeps state per TCP flow (docs/EXTRACTION.md R15, R16): a segment is read only where its flow,
opened by a SYN, expects a request. A frame compared with ``reference.extract`` (what one frame does right
after the SYN that opened its flow) must therefore reach the kernel after that SYN: ``with_openings``,
``feed_flows`` and ``feed_opened`` put ``frames.opening(frame)`` before each flow, in one place for every
caller.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from harness.core.counters import Counter, Counts, counts_difference
from harness.core.event import Event
from harness.core.program import Program
from harness.core.testrun import test_run
from harness.oracle.frames import opening
from harness.oracle.reference import TCP_RST, tcp_segment


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one frame did: the verdict (None where the path cannot observe it), events, counter deltas."""

    verdict: int | None
    events: tuple[Event, ...]  # HeaderEvent, or TlsHello for a TLS ClientHello
    counters: Counts


class Driver(Protocol):
    name: str
    program: Program

    def feed(self, frames: Sequence[bytes]) -> list[Outcome]:
        """Feeds frames one at a time, in order; one Outcome per frame."""
        ...


def settled(before: Counts, after: Counts) -> bool:
    """True once the program has finished with every frame counted so far.

    Each frame ends in one outcome counter, and the emit stage counts all requests and ClientHellos before
    it writes any event, so the program is done when each is accounted for as an event or a lost event.
    """
    delta = counts_difference(after, before)
    logged = delta[Counter.HTTP_REQUEST] + delta[Counter.TLS_HELLO]
    return logged == delta[Counter.EVENTS] + delta[Counter.EVENTS_LOST]


class TestRunDriver:
    """Runs each frame through BPF_PROG_TEST_RUN on the loaded program."""

    __test__ = False  # a helper class, not a pytest test
    name = "test-run"

    def __init__(self, program: Program) -> None:
        self.program = program

    def feed(self, frames: Sequence[bytes]) -> list[Outcome]:
        outcomes = []
        for frame in frames:
            before = self.program.counters()
            result = test_run(self.program.fd, frame)
            events = tuple(self.program.take_events())
            outcomes.append(
                Outcome(result.verdict, events, counts_difference(self.program.counters(), before))
            )
        return outcomes


def with_openings(flows: Sequence[Sequence[bytes]]) -> tuple[list[bytes], list[int]]:
    """Each flow's frames after the SYN that opens the flow at its first frame's first payload byte.

    Returns the frames to send, in order, and the positions in it of the flows' own frames (the set-up
    frames are left out). Setting every flow up again makes the kernel's state before it the same whatever
    was sent earlier (``_set_up``).
    """
    sent: list[bytes] = []
    positions: list[int] = []
    for flow in flows:
        set_up = _set_up(flow[0]) if flow else None
        if set_up is not None:
            sent.append(set_up)
        positions.extend(range(len(sent), len(sent) + len(flow)))
        sent.extend(flow)
    return sent, positions


def _set_up(frame: bytes) -> bytes | None:
    """The frame that leaves ``frame``'s flow as ``reference.extract`` assumes it, or None if none is needed.

    Usually the SYN that opens the flow at ``frame``'s first payload byte. A SYN opens its flow itself from no
    state, so it needs nothing, nor does a frame that is not TCP; but a SYN with RST first removes whatever
    state earlier frames left (counted in flows_closed only if there was one), so a copy of the frame goes
    first and leaves the flow without state.
    """
    syn = opening(frame)
    if syn is not None:
        return syn
    segment = tcp_segment(frame)
    resets = segment is not None and segment.syn and bool(segment.tcp_flags & TCP_RST)
    return frame if resets else None


def feed_flows(driver: Driver, flows: Sequence[Sequence[bytes]]) -> list[Outcome]:
    """Feeds every flow after its opening SYN (``with_openings``), in one ``feed``; the flows' frames' outcomes.

    The set-up frames' own outcomes are not returned: ``reference.extract`` does not predict them.
    """
    sent, positions = with_openings(flows)
    outcomes = driver.feed(sent)
    return [outcomes[position] for position in positions]


def feed_opened(driver: Driver, frames: Sequence[bytes]) -> list[Outcome]:
    """Each frame as a flow of its own, right after its opening SYN: the outcomes ``reference.extract`` predicts."""
    return feed_flows(driver, [[frame] for frame in frames])
