"""The differential property and the campaign that runs it: every frame's kernel outcome equals the reference's.

For each frame Hypothesis draws, the kernel program (through BPF_PROG_TEST_RUN) must write exactly the events
and move exactly the counters ``harness.reference.extract`` predicts, and the verdict must be XDP_PASS (so never
XDP_ABORTED). A mismatch raises ``Disagreement``, which Hypothesis shrinks to a minimal frame; the campaign
hands the shrunk ones back so ``fuzz.repro`` can save them.

``FUZZ_CONFIG`` has small limits on purpose: with a 16-byte value limit and a 320-byte view, random requests
cross every truncation and cut rule (R7, R9, R11, R13) all the time, where the default limits would need long
inputs that Hypothesis rarely draws. A part of a line reads at most 64 bytes per scan step and one scan
invocation runs 16 steps (bpf/xhdr.c), so requests also cross step boundaries and the tail call between two
scan invocations.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import hypothesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis.database import ExampleDatabase

from fuzz.runner import BatchTestRunDriver, Clock
from fuzz.strategies import batches
from harness import reference
from harness.compare import outcome_differences
from harness.config import ExtractorConfig
from harness.driver import Outcome
from harness.event import EventFlag, SlotFlag
from harness.program import Program
from harness.reference import Expected

FUZZ_CONFIG = ExtractorConfig(
    max_header_lines=6, max_value_len=16, max_target_len=24, max_scan_bytes=320, max_requests_per_packet=3
)
FUZZ_KEY = bytes(range(0x40, 0x50))  # fixed, so a repro's hashes are reproducible


class Disagreement(AssertionError):
    """The kernel and the reference disagree on one frame; carries both outcomes for the repro file."""

    def __init__(self, frame: bytes, outcome: Outcome, expected: Expected, differences: list[str]) -> None:
        super().__init__(f"{len(frame)}-byte frame {frame.hex()}: " + "; ".join(differences))
        self.frame = frame
        self.outcome = outcome
        self.expected = expected
        self.differences = differences


def outcome_class(expected: Expected) -> str:
    """A coarse name for what a frame exercised: its outcome counter, and the event and slot flags it set.

    The campaign counts distinct classes to show whether a run still reaches new behaviour.
    """
    event_flags = EventFlag(0)
    slot_flags = SlotFlag(0)
    for event in expected.events:
        event_flags |= event.flags
        for slot in event.headers:
            slot_flags |= slot.flags
    return f"{expected.outcome.label}/{event_flags.value}/{slot_flags.value}/{len(expected.events)}"


@dataclasses.dataclass
class Progress:
    """What the live progress line shows."""

    examples: int = 0
    frames: int = 0
    failing_examples: int = 0
    classes: set[str] = dataclasses.field(default_factory=set)
    first_failure: tuple[int, float] | None = None  # (examples run, seconds) when the first failure was seen
    started: float = dataclasses.field(default_factory=time.perf_counter)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def line(self, failures: int) -> str:
        rate = self.examples / self.elapsed if self.elapsed > 0 else 0.0
        return (
            f"examples {self.examples} | {rate:.0f}/s | frames {self.frames} | "
            f"outcome classes {len(self.classes)} | failures {failures}"
        )


class Campaign:
    """Runs the differential property on one loaded Program; keeps progress and the time split across runs."""

    def __init__(
        self,
        program: Program,
        *,
        target: str = "all",
        on_example: Callable[[Progress], None] | None = None,
        on_frames: Callable[[list[bytes]], None] | None = None,
    ) -> None:
        self.program = program
        self.on_frames = on_frames  # sees every example's frames, e.g. to keep a sample for the lab
        self.driver = BatchTestRunDriver(program)
        self.strategy = batches(program.config, target)
        self.target = target
        self.clock = Clock()
        self.progress = Progress()
        self.on_example = on_example

    def check(self, frames: list[bytes]) -> None:
        """The property: every frame's kernel outcome equals the reference's; raises Disagreement if not."""
        progress = self.progress
        progress.examples += 1
        progress.frames += len(frames)
        if self.on_frames is not None:
            self.on_frames(frames)
        try:
            with self.clock.timing("test_run"):
                outcomes = self.driver.feed(frames)
            for frame, outcome in zip(frames, outcomes, strict=True):
                with self.clock.timing("reference"):
                    expected = reference.extract(frame, self.program.config, self.program.key)
                with self.clock.timing("compare"):
                    differences = outcome_differences(outcome, expected)
                progress.classes.add(outcome_class(expected))
                if differences:
                    progress.failing_examples += 1
                    if progress.first_failure is None:
                        progress.first_failure = (progress.examples, progress.elapsed)
                    raise Disagreement(frame, outcome, expected, differences)
        finally:
            if self.on_example is not None:
                self.on_example(progress)

    def run(
        self,
        max_examples: int,
        *,
        seed: int | None = None,
        database: ExampleDatabase | None = None,
        derandomize: bool = False,
        quiet: bool = True,
    ) -> list[Disagreement]:
        """One Hypothesis run of up to ``max_examples`` examples; the shrunk disagreements it ends with."""
        check = self.check

        @settings(
            max_examples=max_examples,
            database=database,
            derandomize=derandomize and seed is None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet if quiet else Verbosity.normal,
            print_blob=False,
            report_multiple_bugs=True,
            # No explain phase: it reruns the shrunk example many times to annotate it, and the repro file
            # (kernel output, reference output, the diff) already says what went wrong.
            phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink),
        )
        @given(self.strategy)
        def differential(frames: list[bytes]) -> None:
            check(frames)

        if seed is not None:
            differential = hypothesis.seed(seed)(differential)
        try:
            differential()
        except Disagreement as found:
            return [found]
        except BaseExceptionGroup as group:
            matched, rest = group.split(Disagreement)
            if rest is not None:
                raise rest from group
            return _leaves(matched)
        return []


def _leaves(group: BaseExceptionGroup | None) -> list[Disagreement]:
    """The Disagreements inside a (nested) exception group, in order."""
    if group is None:
        return []
    found: list[Disagreement] = []
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            found.extend(_leaves(error))
        elif isinstance(error, Disagreement):
            found.append(error)
    return found
