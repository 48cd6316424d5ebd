"""Drivers: one way to feed frames to a loaded Program and see what it did.

``TestRunDriver`` uses BPF_PROG_TEST_RUN (no network); the lab's driver (netns/driver.py) sends the same
frames over a veth pair. Both return ``Outcome`` objects, so one test parametrised over drivers proves
the live path and the test-run path agree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from harness.counters import Counter, Counts, counts_difference
from harness.event import HeaderEvent
from harness.program import Program
from harness.testrun import test_run


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one frame did: the verdict (None where the path cannot observe it), events, counter deltas."""

    verdict: int | None
    events: tuple[HeaderEvent, ...]
    counters: Counts


class Driver(Protocol):
    name: str
    program: Program

    def feed(self, frames: Sequence[bytes]) -> list[Outcome]:
        """Feeds frames one at a time, in order; one Outcome per frame."""
        ...


def settled(before: Counts, after: Counts) -> bool:
    """True once the program has finished with every frame counted so far.

    Each frame ends in one outcome counter, and the emit stage counts all requests before it writes any
    event, so the program is done when every request is accounted for as an event or a lost event.
    """
    delta = counts_difference(after, before)
    return delta[Counter.HTTP_REQUEST] == delta[Counter.EVENTS] + delta[Counter.EVENTS_LOST]


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
