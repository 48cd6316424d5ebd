"""How every kernel figure of xhdr is taken: rounds of short test runs of several programs, interleaved.

The same procedure serves the kernel-cost suite, the A/B gate, the cache suite (bench/) and the figure of
``harness/core/cost.py`` (the demo, the ``xhdr_cost`` fixture, the baselines suite), so a figure means the
same wherever xhdr prints it. The programs must be held by the XDP dispatcher meanwhile
(harness/core/dispatcher.py): a test run of more than one repetition would otherwise rewrite the dispatcher
and wait for RCU around its timed runs.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence

from harness.core.testrun import test_run


@dataclasses.dataclass
class Subject:
    """One loaded program under measurement; ``drain`` empties its ring buffer and says how many events."""

    name: str
    fd: int
    drain: Callable[[], int] | None = None


PRIMING_RUNS = 1  # untimed runs before each stretch of timed ones (see timed_runs)
WARM_PASSES = 5  # ABBA passes of a warm round (see interleaved_round)


def timed_repeat(wanted: int, cap: int) -> int:
    """Timed runs a stretch may make when the ring holds ``cap`` runs' events between drains: the priming
    runs before them fill it too."""
    return max(1, min(wanted, cap - PRIMING_RUNS))


class RingFull(RuntimeError):
    """A round lost events: the figure would be too cheap to be honest."""


def timed_runs(fd: int, frame: bytes, repeat: int, before_run: Callable[[], None] | None = None) -> float:
    """Kernel ns per run of ``repeat`` runs after PRIMING_RUNS untimed ones: one test run of them all, or with
    ``before_run`` (which leaves the caches cold, bench/cache_cost.py) a test run of one after each call of it.

    The untimed run first, because what a program finds in the caches would otherwise depend on what ran
    before it. Warm, the other subject of a round ran just before, and a stretch of 20 runs would carry the
    first one's misses. Cold, before_run writes over one cache, and what lies beyond it depends on how long
    ago the program last ran. Measured: in the A/B gate's rotation, where one side's build changes every round
    and the other's every few, identical builds came out 1.07-1.15x apart with the L2 written over, the side
    just switched to paying a first run from memory; primed, every timed run meets exactly the state
    before_run leaves."""
    for _ in range(PRIMING_RUNS):
        test_run(fd, frame, 1)
    if before_run is None:
        return test_run(fd, frame, repeat).duration_ns
    total = 0
    for _ in range(repeat):
        before_run()
        total += test_run(fd, frame, 1).duration_ns
    return total / repeat


def interleaved_round(
    subjects: Sequence[Subject],
    frame: bytes,
    repeat: int,
    events: int | None,
    before_run: Callable[[], None] | None = None,
) -> list[float]:
    """Kernel ns per run of each subject in one round of ``2 * repeat`` runs each: the median of its visits.

    Warm, the subjects are visited in ABBA order WARM_PASSES times, each visit one test run of
    ``repeat // WARM_PASSES`` runs: a burst of interference then slows a few short visits, which the
    median leaves out, instead of one of two long ones. Measured on an A/A pair (the same program loaded
    twice, held by the dispatcher, the standard frame, 60 rounds, one run): the interquartile range of the
    rounds' ratios was 8.1% of their median with one ABBA pass of 100-run visits, 5.8% with ten 20-run
    visits a side and their medians. Cold (``before_run``, see :func:`timed_runs`), a round stays one ABBA
    pass, two visits of ``repeat`` single runs whose median is their mean: more visits would only add
    priming runs.

    ``events`` is how many events one run of an extractor emits (None: not checked); each drain must
    find exactly that many for every run made (the priming ones included), or the ring filled and the round
    would understate the cost.
    """
    passes = 1 if before_run is not None else max(1, min(WARM_PASSES, repeat))
    runs = repeat // passes
    made = runs + PRIMING_RUNS
    visits: list[list[float]] = [[] for _ in subjects]
    order = list(range(len(subjects)))
    for sequence in (order, order[::-1]) * passes:
        for index in sequence:
            subject = subjects[index]
            visits[index].append(timed_runs(subject.fd, frame, runs, before_run))
            if subject.drain is not None:
                found = subject.drain()
                if events is not None and found != made * events:
                    raise RingFull(
                        f"{subject.name}: {found} events after {made} runs, expected {made * events}; "
                        "lower the repeat count or enlarge the ring buffer"
                    )
    return [statistics.median(taken) for taken in visits]
