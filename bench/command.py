"""``xhdr bench``: run the benchmark suites under pytest-benchmark, or the A/B regression gate.

``xhdr bench`` runs the kernel-cost suite (bench/test_kernel_cost.py) in this process through
``pytest.main`` with a progress display, then each module suite of part B (``run(quick, progress)``:
baselines, lab throughput, nginx/wrk, the event consumer), writes pytest-benchmark's JSON and each
suite's xhdr summary (bench/results.py) to ``--out``, and saves the pytest-benchmark run into its storage
(files by default, its Elasticsearch storage when ``--storage`` is an ``elasticsearch+http(s)://`` URL):
the history that ``xhdr report`` plots as a trend.

``xhdr bench --compare REF`` runs the gate instead (bench/ab_gate.py): exit 0 on pass or inconclusive
(too noisy, said so), 1 on a significant slowdown larger than ``--threshold``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import sys
import time
from pathlib import Path

from bench import profile, targets
from bench.cache_cost import STATES as CACHE_STATES
from bench.cache_cost import WARM
from bench.results import RESULTS_DIR
from harness.cli import options
from harness.cli.main import EXIT_ERROR, require_root
from harness.cli.textui import Progress
from harness.core.dispatcher import DISPATCHER_MAX
from harness.core.errors import CommandError

BENCH_DIR = Path(__file__).resolve().parent
KERNEL_SUITE = "kernel_cost"  # the pytest-benchmark suite, bench/test_kernel_cost.py
# Part B's suites: modules with run(quick, progress) -> Path that write their own result file.
MODULE_SUITES = {
    "baselines": "bench.baselines.suite",
    "lab_throughput": "bench.lab_throughput",
    "http_nginx": "bench.http_nginx",
    "consumer": "bench.consumer",
    "cache_cost": "bench.cache_cost",
    "fuzz": "bench.fuzz_throughput",
}
SUITES = (KERNEL_SUITE, *MODULE_SUITES)
# The suites that measure in rounds of interleaved legs; their run() also takes rounds (default: the profile's).
ROUND_SUITES = ("lab_throughput", "http_nginx")
# The suites that measure a user's program (--object) as they do the extractor; kernel_cost is its default.
YOUR_PROGRAM_SUITES = (KERNEL_SUITE, "cache_cost")
PROFILE_LINES = 30  # the costliest source lines --profile shows
PROFILE_SECONDS = 10.0
# Gate options and the value each takes when not given (rounds: chosen by the gate from --quick).
GATE_DEFAULTS: dict[str, object] = {
    "rounds": None,
    "loads": 3,
    "threshold": 10.0,
    "cflags": "",
    "caches": WARM,
}
# The runs that use each gate or profile option: given to any other run, it is refused, not ignored.
OPTION_USERS: dict[str, tuple[str, ...]] = {
    **{option: ("compare",) for option in GATE_DEFAULTS},
    "caches": ("compare", "profile"),
    "seconds": ("profile",),
}
DEFAULT_STORAGE = "file://./.benchmarks"  # pytest-benchmark's own default, relative to the working directory


def register(subcommands: argparse._SubParsersAction) -> None:
    """Adds ``bench`` to the ``xhdr`` command line (found through the xhdr.commands entry point)."""
    parser = subcommands.add_parser(
        "bench",
        help="run the benchmarks (kernel cost, baselines, lab, HTTP, consumer, caches) or the performance "
        "regression gate",
        description="Run the benchmark suites under pytest-benchmark and write JSON results, or with "
        "--compare REF run the paired A/B regression gate against another build of the extractor.",
    )
    parser.add_argument("--quick", action="store_true", help="the quick profile (under a minute; CI)")
    parser.add_argument(
        "--compare",
        metavar="REF",
        help="regression gate: a git ref (bpf/ at that commit) or a stored program (.c file or directory)",
    )
    options.add_threshold(parser, "a significant slowdown against REF", GATE_DEFAULTS["threshold"])
    parser.add_argument(
        "--rounds",
        type=int,
        help="gate: paired rounds per case (default 36, or 72 without --quick); with --suite lab_throughput or "
        "http_nginx: rounds of every leg (default 1, or 3 without --quick), more to tell a small difference "
        "from the machine's noise",
    )
    parser.add_argument("--loads", type=int, help="gate: loads of each build, paired in rotation (default 3)")
    parser.add_argument(
        "--cflags",
        help="gate: extra flags for the current build, e.g. -DXHDR_PLANTED_SLOWDOWN (the gate's self-test)",
    )
    parser.add_argument(
        "--caches",
        choices=CACHE_STATES,
        help="gate or --profile: the caches each run starts with: warm (default), or the core's L2 or "
        "last-level cache written over first, as on a gateway core that did other work between requests "
        "(--suite cache_cost)",
    )
    options.add_out(parser, RESULTS_DIR, "the result files")
    parser.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        metavar="URL",
        help="pytest-benchmark storage for the history: file://DIR (default ./.benchmarks) or "
        "elasticsearch+http://HOST:PORT/INDEX/DOCTYPE",
    )
    parser.add_argument(
        "--suite", action="append", choices=SUITES, help="run only this suite (repeatable; default: all)"
    )
    parser.add_argument(
        "-k", dest="select", metavar="EXPR", help="kernel_cost: only cases matching this pytest -k expression"
    )
    parser.add_argument(
        "--profile",
        metavar="CASE",
        help="instead of timing, show where the extractor spends its time on one kernel_cost case "
        "(e.g. standard), by program and source line (needs perf)",
    )
    parser.add_argument("--seconds", type=float, help="--profile: how long to sample (default 10)")
    options.add_your_program(
        parser,
        "measure any XDP program instead of the extractor: with --object alone, its kernel cost on the "
        "kernel_cost cases' frames beside the empty program; with --compare OTHER too, the paired gate between "
        "OTHER (the reference) and --object (the current build); results in reports/out/bench-NAME unless --out",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_your_program(args)  # first: with --object, an option of the extractor's is the thing to drop
    check_profile_options(args)
    check_gate_options(args)
    require_root("xhdr bench")
    options.output_directory(args.out)
    if args.object is not None:
        from bench.any_program import any_program

        with any_program(args.object, args.program, args.ring):
            pass  # a wrong --program or --ring is one line now, not a failure of every case
    if args.profile:
        return run_profile(args)
    if args.compare:
        return run_gate(args)
    return run_suites(args)


def run_profile(args: argparse.Namespace) -> int:
    """``--profile CASE``: the table on stdout, and the same as JSON in ``--out`` (profile_CASE.json)."""
    if args.compare:
        raise CommandError("--profile and --compare are separate runs; give one of them")
    if args.seconds <= 0:
        raise CommandError(f"--seconds {args.seconds:g} is too short; give a number of seconds above 0")
    found = profile.run(
        args.profile, args.seconds, PROFILE_LINES, args.caches, lambda text: print(text, file=sys.stderr)
    )
    print(profile.render(found))
    cold = "" if found.caches == WARM else f"_{found.caches}"
    path = args.out / f"profile_{found.case}{cold}.json"
    path.write_text(json.dumps(dataclasses.asdict(found), indent=2) + "\n")
    print(f"xhdr bench: profile in {path}", file=sys.stderr)
    return 0


# The suites' options, which --profile (one kernel_cost case sampled for --seconds) has no use for.
SUITE_OPTIONS = {"suite": "--suite", "select": "-k", "rounds": "--rounds", "quick": "--quick"}


def check_profile_options(args: argparse.Namespace) -> None:
    """An option of the suites given with ``--profile`` would be silently ignored there, so it is refused."""
    if not args.profile:
        return
    for dest, flag in SUITE_OPTIONS.items():
        if getattr(args, dest):
            raise CommandError(
                f"{flag} does not apply to --profile {args.profile}, which samples one kernel_cost case "
                f"for --seconds; drop {flag}"
            )


def check_gate_options(args: argparse.Namespace) -> None:
    """Gate and profile options are checked before anything is built: a bad one must not silently become the
    default, and one given to a run that does not use it must not be silently ignored."""
    from harness.core.paired import MIN_ROUNDS

    for option, users in OPTION_USERS.items():
        value = getattr(args, option)
        if value is None or any(getattr(args, user) for user in users):
            continue
        if option == "rounds":
            check_suite_rounds(args)  # without --compare, the rounds of the suites that have them
            continue
        named = " or ".join(f"--{user}" for user in users)
        add = f"--{users[0]}" if len(users) == 1 else "one"
        raise CommandError(f"--{option} {value} applies to {named} only; add {add} or drop it")
    for option, default in (*GATE_DEFAULTS.items(), ("seconds", PROFILE_SECONDS)):
        if getattr(args, option) is None:
            setattr(args, option, default)
    options.check(args)
    if args.compare and args.rounds is not None and args.rounds < MIN_ROUNDS:
        raise CommandError(f"--rounds {args.rounds} is too few; give at least {MIN_ROUNDS} paired rounds")
    if args.loads < 1:
        raise CommandError(f"--loads {args.loads} is too few; give at least 1 load of each build")
    if args.loads > DISPATCHER_MAX // 2:
        raise CommandError(
            f"--loads {args.loads} is too many: the XDP dispatcher holds {DISPATCHER_MAX} programs while they are "
            f"timed; give at most {DISPATCHER_MAX // 2} loads of each build"
        )


def check_suite_rounds(args: argparse.Namespace) -> None:
    """``--rounds`` without ``--compare`` sets the rounds of the suites that have them, and only of those: a
    run of other suites too would leave it unused there, so that is refused rather than ignored."""
    suites = args.suite or list(SUITES)
    others = [suite for suite in suites if suite not in ROUND_SUITES]
    if others:
        named = " or ".join(f"--suite {suite}" for suite in ROUND_SUITES)
        raise CommandError(
            f"--rounds {args.rounds} applies to --compare, {named} only; "
            f"add --compare or one of those suites, or drop it"
        )
    if args.rounds < 1:
        raise CommandError(f"--rounds {args.rounds} is too few; give at least 1 round of every leg")


def your_results(path: Path) -> Path:
    """Where ``--object``'s results go without ``--out``: beside the extractor's, named by the file."""
    return RESULTS_DIR.with_name(f"bench-{path.name.split('.')[0]}")


def check_your_program(args: argparse.Namespace) -> None:
    """``--object`` goes with the kernel-cost and cache suites or the gate; the extractor's own options do not."""
    if args.object is None:
        options.check_without_object(args)
        return
    if not args.object.is_file():
        raise CommandError(f"--object {args.object} is not a file; give your program's .bpf.o or BCC .c")
    for option, used_by in (("profile", "the extractor's profile"), ("cflags", "the extractor's build")):
        if getattr(args, option):
            raise CommandError(f"--{option} is for {used_by}; drop it with --object {args.object}")
    others = [suite for suite in args.suite or () if suite not in YOUR_PROGRAM_SUITES]
    if others:
        raise CommandError(
            f"--suite {others[0]} measures the extractor; with --object only "
            f"{' and '.join(YOUR_PROGRAM_SUITES)} run"
        )
    args.suite = args.suite or [KERNEL_SUITE]
    if args.out == RESULTS_DIR:  # not given: the extractor's results there are not overwritten
        args.out = your_results(args.object)


# -- suites ------------------------------------------------------------------------------------------


class ProgressPlugin:
    """One line per finished benchmark on stderr: count, name, outcome, the suite's own summary, ETA; on a
    terminal, the benchmark under way in a status line."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.started = time.monotonic()
        self.failures: list[str] = []
        self.progress = Progress()

    def pytest_collection_finish(self, session) -> None:
        self.total = len(session.items)
        self.progress.note(f"xhdr bench: {self.total} benchmarks")

    def pytest_runtest_logstart(self, nodeid: str, location: object) -> None:
        self.progress.status(f"[{self.done + 1:>3}/{self.total}] {nodeid.split('::')[-1]}: running")

    def pytest_runtest_logreport(self, report) -> None:
        if report.outcome == "failed":
            message = str(report.longrepr).strip().splitlines() or [""]
            self.failures.append(f"{report.nodeid}: {message[-1]}")
        # A test is finished after its call, or at setup when it never gets to run (skip, error).
        if not (report.when == "call" or (report.when == "setup" and report.outcome != "passed")):
            return
        self.done += 1
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.done * (self.total - self.done)
        summary = dict(report.user_properties).get("xhdr_summary", "")
        status = "ok" if report.outcome == "passed" else report.outcome.upper()
        self.progress.note(
            f"[{self.done:>3}/{self.total}] {report.nodeid.split('::')[-1]:<36} {status:<7} {summary}"
            f"  ({elapsed:.0f} s, ~{eta:.0f} s left)"
        )


def run_suites(args: argparse.Namespace) -> int:
    """The pytest-benchmark suite first, then each module suite; every result file ends up in --out."""
    suites = args.suite or list(SUITES)
    if KERNEL_SUITE in suites:
        run_kernel_suite(args)
    for name in suites:
        if name in MODULE_SUITES:
            run_module_suite(name, args)
    return 0


def run_module_suite(name: str, args: argparse.Namespace) -> None:
    import importlib
    import shutil

    started = time.monotonic()
    progress = Progress(f"xhdr bench: {name}: ")
    progress.note("started")
    module = importlib.import_module(MODULE_SUITES[name])
    extra: dict[str, object] = {"rounds": args.rounds} if name in ROUND_SUITES else {}
    if args.object is not None:  # straight into --out: the extractor's results must stay as they are
        extra = {"yours": (args.object, args.program, args.ring), "directory": args.out}
    # the file is named by the suite
    path = Path(module.run(quick=args.quick, progress=progress.note, **extra))
    if path.resolve().parent != args.out.resolve():
        shutil.copy(path, args.out / path.name)
    progress.note(f"done in {time.monotonic() - started:.0f} s")


def run_kernel_suite(args: argparse.Namespace) -> int:
    import pytest

    os.environ["XHDR_BENCH_PROFILE"] = "quick" if args.quick else "full"
    os.environ["XHDR_BENCH_OUT"] = str(args.out.resolve())
    if args.object is not None:
        os.environ["XHDR_BENCH_OBJECT"] = str(args.object.resolve())
        os.environ["XHDR_BENCH_PROGRAM"] = args.program or ""
        os.environ["XHDR_BENCH_RING"] = args.ring or ""
    pytest_args = [
        str(BENCH_DIR),
        "-p",
        "no:cacheprovider",
        "-p",
        "no:terminal",  # the progress plugin is the display; pytest's dots would interleave with it
        "-o",
        "addopts=--strict-markers",  # the project's -ra is a terminal option, gone with the terminal
        "--benchmark-quiet",
        f"--benchmark-json={args.out / 'pytest-benchmark.json'}",
        "--benchmark-autosave",
        f"--benchmark-storage={args.storage}",
        "--benchmark-name=short",
    ]
    if args.select:
        pytest_args += ["-k", args.select]
    plugin = ProgressPlugin()
    started = time.monotonic()
    code = pytest.main(pytest_args, plugins=[plugin])
    print(
        f"xhdr bench: finished in {time.monotonic() - started:.0f} s; results in {args.out}", file=sys.stderr
    )
    summary = args.out / "kernel_cost.json"
    if summary.is_file():
        print(headline(summary))
    if code not in (0, 5):
        first = plugin.failures[0] if plugin.failures else f"pytest exit status {int(code)}"
        raise CommandError(f"{len(plugin.failures) or 'some'} benchmark(s) failed; first: {first}")
    if code == 5:
        raise CommandError("no benchmark matched; check -k")
    return 0


def headline(path: Path) -> str:
    """The standard request's figures from a kernel_cost result file, as one line."""
    from bench.results import measured_program, read_results

    (result,) = read_results([path])
    standard = [row for row in result.rows if row.params.get("case") == "standard"]
    if not standard:
        return "standard request: not measured in this run"
    figures = {(row.method, row.metric): row.value for row in standard}
    measured = measured_program(standard)
    line = (
        f"standard request: {measured} {figures[(measured, 'ns_per_packet')]:.0f} ns/packet, "
        f"empty program {figures[('empty', 'ns_per_packet')]:.1f} ns, "
        f"{figures[(measured, 'ratio_to_empty')]:.1f}x the empty program"
    )
    if measured == "extractor":
        line += f" (targets: {targets.summary()})"
    return line + "; render plots with `xhdr report`"


# -- gate --------------------------------------------------------------------------------------------


def run_gate(args: argparse.Namespace) -> int:
    from bench.ab_gate import (
        GateError,
        current_version,
        reference_version,
        render_gate,
        run_gate,
        your_versions,
    )
    from bench.results import machine_info

    shown = Progress()

    def progress(case: str, number: int, rounds: int, done: object) -> None:
        if done is not None:
            result = done.assessment  # type: ignore[attr-defined]
            shown.note(
                f"[{number}] {case}: ratio {result.estimate:.3f} [{result.low:.3f}, {result.high:.3f}] "
                f"after {rounds} rounds: {result.verdict}"
            )
        else:
            shown.status(f"[{number}] {case}: round {rounds}")

    try:
        with contextlib.ExitStack() as stack:
            if args.object is not None:
                reference, current = your_versions(args.compare, args.object, args.program, args.ring)
            else:
                reference = stack.enter_context(reference_version(args.compare))
                current = current_version(tuple(shlex.split(args.cflags)))
            print(f"xhdr bench: gate {reference.label} -> {current.label}", file=sys.stderr)
            document = run_gate(
                reference,
                current,
                profile="quick" if args.quick else "full",
                rounds=args.rounds,
                threshold_pct=args.threshold,
                loads=args.loads,
                progress=progress,
                caches=args.caches,
            )
    except GateError as error:
        raise CommandError(str(error)) from None
    document["machine"] = machine_info()
    path = args.out / "gate.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(render_gate(document))
    print(f"xhdr bench: gate document in {path}", file=sys.stderr)
    return EXIT_ERROR if document["verdict"] == "fail" else 0
