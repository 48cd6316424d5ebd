"""Benchmark 1 under pytest-benchmark: the extractor's in-kernel cost per packet against the empty program.

pytest-benchmark's own timer measures one round from user space: twenty test-run syscalls per subject (ten
visits, each after an untimed run, bench/kernel_cost.py) plus draining and decoding the events, which is
mostly Python and syscall overhead. The figure that matters is the one the kernel reports (``duration`` of
BPF_PROG_TEST_RUN, excluding time scheduled out), so each benchmark stores it in ``extra_info`` (the history
pytest-benchmark keeps), and the module writes xhdr's summary rows (bench/results.py) to
``$XHDR_BENCH_OUT/kernel_cost.json`` when it finishes.

Environment: ``XHDR_BENCH_PROFILE`` = quick (default; under a minute) or full; ``XHDR_BENCH_OUT`` = the
results directory (default reports/out/bench). ``XHDR_BENCH_OBJECT`` (with ``XHDR_BENCH_PROGRAM`` and
``XHDR_BENCH_RING`` when needed) measures a user's program instead of the extractor, on the cases that differ by
their frame (``xhdr bench --object``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.any_program import any_program, frame_cases
from bench.kernel_cost import (
    PROFILES,
    Case,
    CaseMeasurement,
    CaseResult,
    ExtractorUnderTest,
    Measured,
    cases,
    empty_program,
)
from bench.results import RESULTS_DIR, write_results
from harness.core.config import ExtractorConfig
from harness.core.dispatcher import held_by_dispatcher
from harness.core.program import Program
from harness.core.rounds import Subject

pytestmark = pytest.mark.kernel

PROFILE = os.environ.get("XHDR_BENCH_PROFILE", "quick")
if PROFILE not in PROFILES:
    raise pytest.UsageError(f"XHDR_BENCH_PROFILE={PROFILE!r}; use one of {', '.join(PROFILES)}")
SETTINGS = PROFILES[PROFILE]
OBJECT = os.environ.get("XHDR_BENCH_OBJECT")
CASES = cases(PROFILE) if OBJECT is None else frame_cases(cases(PROFILE))  # type: ignore[arg-type]
SUITE = "kernel_cost"


@contextlib.contextmanager
def measured() -> Iterator[Measured]:
    """The extractor, or the user's program that ``XHDR_BENCH_OBJECT`` names."""
    if OBJECT is None:
        with Program() as program:
            yield ExtractorUnderTest(program)
    else:
        program_name, ring = os.environ.get("XHDR_BENCH_PROGRAM"), os.environ.get("XHDR_BENCH_RING")
        with any_program(Path(OBJECT), program_name or None, ring or None) as program:
            yield program


@pytest.fixture(scope="module")
def subjects() -> Iterator[tuple[Measured, Subject, list[CaseResult]]]:
    """One measured program and one empty program for the module, both held by the XDP dispatcher
    (harness/core/dispatcher.py); their results are written when it ends."""
    results: list[CaseResult] = []
    with measured() as program, empty_program() as empty, held_by_dispatcher([program.fd, empty.fd]):
        yield program, empty, results
    if results:
        out = Path(os.environ.get("XHDR_BENCH_OUT", RESULTS_DIR))
        rows = [row for result in results for row in result.rows()]
        write_results(SUITE, rows, config=ExtractorConfig(), directory=out)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_kernel_cost(
    benchmark, record_property, subjects: tuple[Measured, Subject, list[CaseResult]], case: Case
) -> None:
    program, empty, results = subjects
    benchmark.group = f"kernel_cost:{case.group}"
    measurement = CaseMeasurement(program, empty, case, SETTINGS.repeat)
    benchmark.pedantic(measurement.round, rounds=SETTINGS.rounds, warmup_rounds=SETTINGS.warmup, iterations=1)
    result = measurement.result(min(SETTINGS.rounds, len(measurement.measured)))
    results.append(result)
    benchmark.extra_info.update(
        {
            "suite": SUITE,
            "program": result.method,
            "profile": PROFILE,
            "case": case.name,
            "group": case.group,
            "frame_bytes": len(case.frame),
            "payload_bytes": case.payload_bytes,
            "kernel_ns_per_packet": round(result.measured_ns, 2),
            "empty_ns_per_packet": round(result.empty_ns, 2),
            "ratio_to_empty": round(result.ratio, 2),
            "spread_pct": round(result.spread_pct, 1),
            "repeat": result.repeat,
            "kernel_ns_rounds": [round(value, 1) for value in result.measured],
            "empty_ns_rounds": [round(value, 1) for value in result.empty],
        }
    )
    record_property(
        "xhdr_summary",
        f"{result.measured_ns:7.0f} ns  empty {result.empty_ns:5.1f} ns  {result.ratio:6.1f}x",
    )
    if OBJECT is not None:
        return  # what a user's program logs, and how cheaply, is its own affair
    # Every case is an HTTP request on a watched port: it must emit its event each run, and doing so
    # must cost more than doing nothing.
    assert result.events_per_run >= 1, f"{case.name} emitted no event; the frame is not what it claims"
    assert result.ratio > 1.0, f"{case.name}: the extractor measured cheaper than the empty program"
