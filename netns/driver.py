"""``LabDriver``: feeds frames to the extractor over a veth pair, as live traffic reaches it.

The program is attached on the gateway's end in the chosen XDP mode; frames leave the client's end.
The verdict is not observable on this path (the kernel acts on it), so outcomes carry None.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.core.counters import Counter, Counts, counts_difference
from harness.core.driver import Outcome, settled
from harness.core.program import Program
from harness.core.wait import wait_until
from harness.core.xdp import XdpMode
from netns.lab import Lab

FRAME_DEADLINE_S = 5.0


class LabDriver:
    """Attaches the program to the lab's gateway end until the lab is torn down."""

    def __init__(self, program: Program, lab: Lab, mode: XdpMode) -> None:
        self.program = program
        self.lab = lab
        self.mode = mode
        self.name = f"lab-{mode.value}"
        lab.attach(program.fd, mode)

    def feed(self, frames: Sequence[bytes]) -> list[Outcome]:
        return [self._feed_one(frame) for frame in frames]

    def _feed_one(self, frame: bytes) -> Outcome:
        before = self.program.counters()
        self.lab.send([frame])
        events = []

        def done() -> Counts | None:
            events.extend(self.program.take_events())
            after = self.program.counters()
            delta = counts_difference(after, before)
            finished = delta[Counter.PACKETS] >= 1 and settled(before, after)
            return delta if finished and len(events) == delta[Counter.EVENTS] else None

        delta = wait_until(
            done, FRAME_DEADLINE_S, f"the extractor to see a frame on {self.lab.gateway.ifname}"
        )
        return Outcome(None, tuple(events), delta)
