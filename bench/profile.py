"""Where the extractor spends its time, line by line: ``xhdr bench --profile CASE``.

The paired benchmarks say how much a build costs; this says where. One benchmark case runs through
BPF_PROG_TEST_RUN over and over while ``perf`` samples this process on the CPU clock (a timer, so no hardware
counters are needed, which a VM often lacks); each sample that lands in a BPF program's JIT image is charged
to the C source line whose machine code it was in (``harness.verify.verifier.jited_lines``: the kernel's line info
and the program's BTF). The result is each stage's share of the program's samples and the lines that cost
most, which is where a change to bpf/xhdr.c pays.

Samples land a few instructions after the one that took the time (skid), and a line the compiler spread
over several places adds up; read the table as where, not as exact costs.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench import kernel_cost
from bench.cache_cost import WARM, before_each_run
from harness.cli.textui import table
from harness.core.dispatcher import held_by_dispatcher
from harness.core.errors import CommandError
from harness.core.ownership import scratch_directory
from harness.core.program import Program
from harness.core.testrun import test_run
from harness.core.wait import wait_until
from harness.log.command import running_consumer
from harness.log.consumer import LogFormat, consumer_argv
from harness.verify.verifier import JitedLine, jited_lines

SAMPLE_HZ = 20_000
RUNS_PER_CALL = 1_000  # test runs per syscall: few syscalls, so nearly every sample is in the programs
PERF_START_S = 10.0
JIT_SYMBOL = "bpf_prog_"  # kallsyms names a JIT image bpf_prog_<tag>_<function>


Stack = list[tuple[str, int]]  # (symbol, address) per frame, the innermost first


@dataclasses.dataclass(frozen=True)
class LineShare:
    program: str
    source: str
    calls: str  # the kernel function the line was running when sampled ("" when in the program's own code)
    share: float  # of the samples in the extractor's programs


@dataclasses.dataclass(frozen=True)
class Profile:
    case: str
    caches: str  # the state each run started with (bench/cache_cost.py STATES)
    samples: int  # in the extractor's programs
    programs: dict[str, float]  # each program's share
    lines: list[LineShare]  # most costly first


def run(
    case_name: str, seconds: float, top: int, caches: str = WARM, progress: Callable[[str], None] = print
) -> Profile:
    """Profiles one case of the kernel-cost suite (bench/kernel_cost.py) for ``seconds``, each run starting
    with the caches in state ``caches``: cold, what the samples show is where a request's misses go, which
    is what a footprint change (code or maps a request touches) moves."""
    cases = {case.name: case for case in kernel_cost.cases("full")}
    if case_name not in cases:
        raise CommandError(f"no benchmark case {case_name!r}; choose one of {', '.join(sorted(cases))}")
    case = cases[case_name]
    progress(f"profile: compiling the extractor for {case_name}")
    with (
        Program(case.config) as program,
        scratch_directory("profile") as scratch,
        draining(program),
        held_by_dispatcher([program.fd]),  # else each test run sleeps on the dispatcher's change
        before_each_run(caches) as before_run,
    ):
        lines = {name: jited_lines(function.fd) for name, function in program.functions.items()}
        progress(f"profile: sampling {case_name} for {seconds:g} s, caches {caches}")
        addresses = sample(program, case.frame, seconds, Path(scratch) / "perf.data", before_run)
    return attribute(case_name, caches, addresses, lines, top)


@contextlib.contextmanager
def draining(program: Program) -> Iterator[None]:
    """xhdr log's consumer empties the ring into /dev/null meanwhile, in its own process (not sampled), so
    every event is sent as on a live gateway: a full ring would make the emit stage cheaper than it is."""
    ring_fd = program.bpf[b"events"].map_fd
    argv = consumer_argv(program.config, ring_fd, fmt=LogFormat.JSON, output=Path(os.devnull))
    with running_consumer(argv, ring_fd):
        yield


def sample(
    program: Program, frame: bytes, seconds: float, data: Path, before_run: Callable[[], None] | None = None
) -> list[Stack]:
    """The call stack of every sample taken while the frame runs through the program for ``seconds``; with
    ``before_run``, one run at a time after each call of it (its own samples are not the programs')."""
    record = ["perf", "record", "-q", "-g", "-e", "cpu-clock", "-F", str(SAMPLE_HZ), "-p", str(os.getpid())]
    perf = subprocess.Popen([*record, "-o", str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: data.exists() or perf.poll() is not None, PERF_START_S, "perf to start recording")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and perf.poll() is None:
            if before_run is None:
                test_run(program.fd, frame, RUNS_PER_CALL)
            else:
                before_run()
                test_run(program.fd, frame, 1)
    finally:
        if perf.poll() is None:
            perf.send_signal(signal.SIGINT)  # perf writes its file out on SIGINT
        _, errors = perf.communicate(timeout=60)
    if perf.returncode not in (0, -signal.SIGINT):
        raise CommandError(f"perf record failed: {errors.decode(errors='replace').strip()[-200:]}")
    script = subprocess.run(
        ["perf", "script", "-i", str(data), "-F", "ip,sym"], capture_output=True, text=True, check=False
    )
    return [stack for text in script.stdout.split("\n\n") if (stack := parse_stack(text))]


def parse_stack(text: str) -> Stack:
    """One sample of ``perf script -F ip,sym``: a line per frame, ``ADDRESS SYMBOL``, the innermost first."""
    frames = []
    for row in text.strip().splitlines():
        address, _, symbol = row.strip().partition(" ")
        with contextlib.suppress(ValueError):
            frames.append((symbol.strip(), int(address, 16)))
    return frames


def attribute(
    case: str, caches: str, stacks: list[Stack], lines: dict[str, list[JitedLine]], top: int
) -> Profile:
    """Charges each sample to the innermost extractor program on its stack, and there to the last source line
    that starts at or before the address: the sample's own, or the return address of the kernel function
    (a helper, a map lookup) the program was calling, which is then named after the line."""
    starts = {name: [line.address for line in program_lines] for name, program_lines in lines.items()}
    by_program: collections.Counter[str] = collections.Counter()
    by_line: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for stack in stacks:
        found = next(
            (
                (depth, program, address)
                for depth, (symbol, address) in enumerate(stack)
                if symbol.startswith(JIT_SYMBOL)
                for program in lines
                if symbol.endswith("_" + program)
            ),
            None,
        )
        if found is None:
            continue  # not in the extractor: the test-run loop, Python, another BPF program
        depth, program, address = found
        by_program[program] += 1
        index = bisect.bisect_right(starts[program], address - (depth > 0)) - 1
        source = lines[program][index].source if index >= 0 else ""
        by_line[program, source or "(no source line)", stack[depth - 1][0] if depth else ""] += 1
    total = sum(by_program.values())
    if not total:
        raise CommandError(
            "perf took no sample inside the extractor; is perf allowed to sample (perf_event_paranoid)?"
        )
    return Profile(
        case=case,
        caches=caches,
        samples=total,
        programs={name: count / total for name, count in by_program.most_common()},
        lines=[LineShare(*key, count / total) for key, count in by_line.most_common(top)],
    )


def render(profile: Profile) -> str:
    """The table a person reads: each program's share, then the costliest lines (higher is costlier)."""
    programs = [[f"{share:.1%}", name] for name, share in profile.programs.items()]
    lines = [
        [f"{line.share:.1%}", line.program, line.source[:80] + (f"  [in {line.calls}]" if line.calls else "")]
        for line in profile.lines
    ]
    rows = [
        (
            f"profile of {profile.case}, caches {profile.caches}: "
            f"{profile.samples:,} samples in the extractor's programs"
        ),
        table(["share", "program"], programs, indent="  "),
        "costliest source lines (share of all samples; higher costs more):",
        table(["share", "program", "source line"], lines, indent="  "),
    ]
    return "\n".join(rows)
