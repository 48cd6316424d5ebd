"""A sample of a campaign's frames sent over the lab's veth pair, native and generic.

The campaign itself runs through BPF_PROG_TEST_RUN; this proves, for a sample of the same frames, that the
live path sees exactly what the test-run path saw (events and counters) and what the reference predicts.
As in the campaign, each frame follows the SYN that opens its flow (``feed_opened``).
"""

from __future__ import annotations

import random

from fuzz.runner import BatchTestRunDriver
from harness.core.driver import feed_opened
from harness.core.program import Program
from harness.core.xdp import XdpMode
from harness.oracle import reference
from harness.oracle.differences import outcome_differences
from netns.driver import LabDriver
from netns.lab import Lab

LAB_MAX_FRAME = 1514  # the veth MTU plus the Ethernet header: larger frames cannot cross the lab


class Reservoir:
    """A uniform sample of at most ``size`` frames from a stream of unknown length (reservoir sampling)."""

    def __init__(self, size: int, seed: int | None) -> None:
        self.size = size
        self.frames: list[bytes] = []
        self.seen = 0
        self._rng = random.Random(seed)

    def offer(self, frames: list[bytes]) -> None:
        for frame in frames:
            if len(frame) > LAB_MAX_FRAME:
                continue
            self.seen += 1
            if len(self.frames) < self.size:
                self.frames.append(frame)
            else:
                slot = self._rng.randrange(self.seen)
                if slot < self.size:
                    self.frames[slot] = frame


def lab_differences(program: Program, frames: list[bytes]) -> list[str]:
    """One line per frame and mode where the lab disagrees with the test run or with the reference."""
    test_run = feed_opened(BatchTestRunDriver(program), frames)
    lines = []
    for mode in XdpMode:
        with Lab() as lab:
            live = feed_opened(LabDriver(program, lab, mode), frames)
        for index, (frame, via_lab, via_test_run) in enumerate(zip(frames, live, test_run, strict=True)):
            where = f"{mode.value} frame {index} ({frame.hex()})"
            if via_lab.events != via_test_run.events or via_lab.counters != via_test_run.counters:
                lines.append(f"{where}: the lab and the test run differ")
            expected = reference.extract(frame, program.config, program.key)
            lines.extend(f"{where}: {line}" for line in outcome_differences(via_lab, expected))
    return lines
