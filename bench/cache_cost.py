"""Benchmark 7: what the standard request costs the extractor when its code and maps are not in the CPU's caches.

Why: the kernel_cost suite runs one frame thousands of times in a row, so every line of the programs and
maps the extractor touches stays in the caches of its core. On a gateway the core runs the stack, the
server and the logger between two requests, and the programs meet their code and maps in a farther cache:
under nginx and in the lab the program takes 1.7-1.9 us per request by bpf_stats where the test run says
1.3-1.5 us. This suite measures that difference directly. Before every run it writes a buffer of twice
the size of one of the core's caches (from sysfs), from the same core (the process is pinned to it, and
BPF_PROG_TEST_RUN runs on the caller's core), so the run starts with:

- ``warm``: nothing written (the kernel_cost figure, but timed one run at a time);
- ``l2_evicted``: the core's L2 (and L1) filled with other data: what the core doing other work between
  two requests leaves;
- ``llc_evicted``: the last-level cache too: the worst a request can meet.

Each run is its own test run, so each figure carries the kernel's two clock reads around it (the empty
program's warm figure shows their size), after one untimed run of the same program (harness/core/rounds.py,
``timed_runs``: whatever ran before, the timed runs find the program where the write left it, in the farther
caches). The empty program is measured the same way, interleaved round by round (``interleaved_round``), and
its own extra time when cold (the test run's machinery missing too) is taken off: ``cache_penalty_ns`` is
what cold caches add to the extractor's own work. A footprint change (code or maps a request touches) shows
here when the warm figure does not move.
"""

from __future__ import annotations

import contextlib
import ctypes
import statistics
from collections.abc import Callable, Iterator
from pathlib import Path

from bench import kernel_cost
from bench.any_program import any_program
from bench.results import RESULTS_DIR, Row, measured_program, write_results
from harness.core.config import ExtractorConfig
from harness.core.dispatcher import held_by_dispatcher
from harness.core.program import Program
from harness.core.rounds import interleaved_round
from harness.core.testrun import on_one_cpu

SUITE = "cache_cost"
WARM = "warm"
STATES = (WARM, "l2_evicted", "llc_evicted")
CACHE_DIR = "/sys/devices/system/cpu/cpu{cpu}/cache"
# When sysfs does not say (a container without it): sizes at least those of most server cores' caches.
ASSUMED_BYTES = {"l2_evicted": 4 << 20, "llc_evicted": 64 << 20}
# A cache is taken as at most this large: twice it is written before every run, and a few server parts carry
# over a gigabyte of last-level cache, which would make the suite's quick profile take minutes.
LARGEST_CACHE_BYTES = 256 << 20
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def cache_bytes(cpu: int) -> dict[str, int]:
    """The size of the core's L2 and of its last-level cache, from sysfs (or ASSUMED_BYTES), at most
    LARGEST_CACHE_BYTES."""
    sizes: dict[int, int] = {}
    with contextlib.suppress(OSError):
        for index in Path(CACHE_DIR.format(cpu=cpu)).glob("index*"):
            if (index / "type").read_text().strip() == "Instruction":
                continue
            size = (index / "size").read_text().strip()
            sizes[int((index / "level").read_text())] = int(size.rstrip("KMG")) * UNITS.get(size[-1], 1)
    if 2 not in sizes:
        return dict(ASSUMED_BYTES)
    return {
        "l2_evicted": min(sizes[2], LARGEST_CACHE_BYTES),
        "llc_evicted": min(sizes[max(sizes)], LARGEST_CACHE_BYTES),
    }


@contextlib.contextmanager
def before_each_run(caches: str) -> Iterator[Callable[[], None] | None]:
    """What runs before each test run so that it starts with the caches in state ``caches``: nothing when
    warm (None); otherwise the process is held on one CPU for the block (a test run runs on the caller's CPU)
    and the function writes over that CPU's cache."""
    if caches == WARM:
        yield None
        return
    with on_one_cpu() as cpu:
        yield evictor(cache_bytes(cpu)[caches])


def evictor(size: int) -> Callable[[], None]:
    """Writes twice ``size`` bytes, every cache line of them, each time it is called."""
    buffer = ctypes.create_string_buffer(2 * size)

    def evict() -> None:
        ctypes.memset(buffer, 0, len(buffer))

    return evict


# A user's program (``xhdr bench --object FILE``, with --program and --ring): what bench.any_program loads.
YourProgram = tuple[Path, str | None, str | None]


@contextlib.contextmanager
def loaded_program(yours: YourProgram | None) -> Iterator[kernel_cost.Measured]:
    """The extractor (its default configuration), or the user's program, loaded for the rounds."""
    if yours is None:
        with Program(ExtractorConfig()) as program:
            yield kernel_cost.ExtractorUnderTest(program)
    else:
        with any_program(*yours) as program:
            yield program


def run(
    quick: bool,
    progress: Callable[[str], None] = print,
    yours: YourProgram | None = None,
    directory: Path = RESULTS_DIR,
) -> Path:
    """Benchmark 7; writes ``directory``/cache_cost.json and returns its path.

    quick: 5 rounds of 40 runs per state and program (about 10 s, the compile included); full: 15 rounds of 200
    (under a minute). ``yours``: measure that program instead of the extractor, on the same frame.
    """
    rounds, runs = (5, 40) if quick else (15, 200)
    frame = kernel_cost.benchmark_frame()
    taken: dict[str, tuple[list[float], list[float]]] = {state: ([], []) for state in STATES}
    progress(f"loading {yours[0] if yours else 'the extractor'}")
    with (
        on_one_cpu() as cpu,
        loaded_program(yours) as program,
        kernel_cost.empty_program() as empty,
        held_by_dispatcher([program.fd, empty.fd]),
    ):
        sizes = cache_bytes(cpu)
        before = {WARM: None, **{state: evictor(size) for state, size in sizes.items()}}
        per_run = kernel_cost.events_per_run(program, frame)
        subjects = [kernel_cost.program_subject(program.name, program), empty]
        for number in range(rounds):
            progress(f"round {number + 1}/{rounds} on CPU {cpu}")
            for state in STATES:  # interleaved: drift on the machine hits every state alike
                measured, floor = interleaved_round(subjects, frame, runs, per_run, before[state])
                taken[state][0].append(measured)
                taken[state][1].append(floor)
    rows = summarise(taken, sizes, runs, len(frame), program.name)
    for line in headline(rows).splitlines():
        progress(line)
    return write_results(SUITE, rows, directory=directory)


def summarise(
    taken: dict[str, tuple[list[float], list[float]]],
    sizes: dict[str, int],
    runs: int,
    frame_bytes: int,
    method: str = "extractor",
) -> list[Row]:
    """Per state: each program's median ns per run over the rounds; per cold state, the measured program's
    (``method``) ``cache_penalty_ns``: per round, its extra time over warm less the empty program's, then the
    median."""
    warm_measured, warm_empty = taken[WARM]
    rows: list[Row] = []
    for state, (measured, empty) in taken.items():
        params = {
            "case": "standard",
            "caches": state,
            "written_bytes": 2 * sizes.get(state, 0),
            "rounds": len(measured),
            "runs": runs,
            "frame_bytes": frame_bytes,
        }
        rows += [
            Row(method, "ns_per_run", statistics.median(measured), "ns", params),
            Row("empty", "ns_per_run", statistics.median(empty), "ns", params),
        ]
        if state != WARM:
            penalties = [
                (x - xw) - (e - ew)
                for x, xw, e, ew in zip(measured, warm_measured, empty, warm_empty, strict=True)
            ]
            rows.append(Row(method, "cache_penalty_ns", statistics.median(penalties), "ns", params))
    return rows


def headline(rows: list[Row]) -> str:
    """One line per state: the measured program's ns per run beside the empty program's, and the penalty."""
    method = measured_program(rows)
    figures = {(row.method, row.metric, row.params["caches"]): row.value for row in rows}
    lines = []
    for state in STATES:
        line = (
            f"{state.replace('_', ' ')}: {method} {figures[(method, 'ns_per_run', state)]:,.0f} ns per run, "
            f"empty program {figures[('empty', 'ns_per_run', state)]:,.0f} ns"
        )
        if (method, "cache_penalty_ns", state) in figures:
            line += f"; the caches add {figures[(method, 'cache_penalty_ns', state)]:,.0f} ns to its own work"
        lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":
    print(run(quick=True))
