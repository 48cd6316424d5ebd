"""``xhdr verify``: prove that every build of an XDP program passes the kernel verifier, and watch its cost.

With no SOURCE it checks the bundled extractor over its default matrix (harness/verify/variants/default.toml); any
BCC-dialect XDP source can be given instead, or an ELF object built with clang and libbpf (one build: its
``SEC("xdp")`` programs). Each variant is compiled and loaded (never attached); the result is a JSON document
(``--json``) from which the terminal table, ``--markdown``, ``--csv`` and the baseline gate (``--baseline``,
like veristat's compare mode) are rendered. ``--compare OLD NEW`` renders the gate's table from two such
documents offline, without root. Exit status: 0 when every variant is accepted
and the gate passes, 1 otherwise; bad input (missing file, compile error, bad matrix) is one line on stderr
and exit 1, found before anything is loaded.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import time
from pathlib import Path

from harness.cli import options
from harness.cli.main import EXIT_ERROR, require_root
from harness.cli.textui import Progress
from harness.core.errors import CommandError
from harness.core.loader import is_object, object_xdp_programs, xdp_functions
from harness.core.program import EXTRACTOR_SOURCE
from harness.core.workers import process_pool
from harness.kernels import run as kernel_run
from harness.kernels.guest import HOST, parse_kernels
from harness.verify.report import (
    DEFAULT_THRESHOLD_PCT,
    baseline_gate,
    build_document,
    load_baseline,
    program_rows,
    render_baseline_gate,
    render_csv,
    render_markdown,
    render_rejections,
    render_table,
)
from harness.verify.variants import DEFAULT_MATRIX, SINGLE_BUILD, Variant, load_matrix
from harness.verify.verifier import VariantResult, verify_object, verify_variant

# Compiling is clang-bound and single-threaded; a few builds at once use the machine without starving it.
DEFAULT_JOBS = max(1, min(4, os.cpu_count() or 1))


def register(subcommands: argparse._SubParsersAction) -> None:
    """Adds ``verify`` to the ``xhdr`` command line (found through the xhdr.commands entry point)."""
    parser = subcommands.add_parser(
        "verify",
        help="check that every build variant passes the kernel verifier; report its statistics",
        description="Compile and load (without attaching) each variant of an XDP program, report the "
        "verifier's statistics, explain rejections, and optionally gate against a baseline JSON.",
    )
    parser.add_argument(
        "sources",
        nargs="*",
        type=Path,
        metavar="SOURCE.c|OBJECT.o",
        help="BCC-dialect C files (every non-static function taking struct xdp_md * is verified, and one "
        "taking struct __sk_buff * as a TC classifier, one build per --matrix variant) or ELF objects built "
        'with clang and libbpf (every SEC("xdp") program, one build); default: the bundled extractor over its '
        "default matrix",
    )
    parser.add_argument(
        "--matrix", type=Path, help="TOML file of [[variant]] tables (see harness/verify/variants.py)"
    )
    parser.add_argument(
        "--baseline", type=Path, help="earlier --json output to compare with; fails on regressions"
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("OLD.json", "NEW.json"),
        help="compare two earlier --json outputs offline (no root, nothing loaded): each variant's and "
        "program's statistics side by side; gates (exit 1 on a regression) only with --threshold",
    )
    options.add_threshold(
        parser,
        "a growth of verified instructions over --baseline (or OLD of --compare)",
        DEFAULT_THRESHOLD_PCT,
    )
    options.add_json(parser, "the results")
    options.add_markdown(parser, "a summary")
    options.add_csv(parser, "one row per program")
    parser.add_argument("--programs", action="store_true", help="also show one table row per program")
    parser.add_argument(
        "--least-privilege",
        action="store_true",
        help="load as a loader holding only CAP_BPF and CAP_NET_ADMIN: the verifier is then stricter "
        "(no uninitialised stack reads, Spectre checks)",
    )
    parser.add_argument(
        "--jobs", type=int, default=DEFAULT_JOBS, help=f"variants built at once (default {DEFAULT_JOBS})"
    )
    parser.add_argument(
        "--kernels",
        metavar="LIST",
        help="also verify and run the corpus on these kernels, booted under qemu: a comma-separated list of "
        "5.10, 6.1, 6.12 and host (Debian's cloud kernels, fetched once into /var/cache/xhdr/kernels)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Checks all input first (files, matrix, baseline), then verifies, then reports and gates."""
    options.check(args)
    if args.compare:
        return compare(args)
    require_root("xhdr verify")
    if args.threshold is not None and args.baseline is None:
        raise CommandError(
            f"--threshold {args.threshold:g} applies to --baseline or --compare only; add one of them or drop it"
        )
    builds = plan(args.sources, args.matrix)
    baseline = load_baseline(args.baseline) if args.baseline else None
    if args.jobs < 1:
        raise CommandError(f"--jobs {args.jobs} is not a number of worker processes; use 1 or more")
    kernels = parse_kernels(args.kernels) if args.kernels else [HOST]
    if kernels != [HOST]:
        return run_matrix(builds, kernels, args)
    results = verify_all(builds, least_privilege=args.least_privilege, jobs=args.jobs)
    document = build_document(
        results, least_privilege=args.least_privilege, sources=[build[0] for build in builds]
    )
    if baseline is not None:
        document["gate"] = baseline_gate(document, baseline, options.threshold(args, DEFAULT_THRESHOLD_PCT))
        if baseline.get("kernel") != document["kernel"]:
            print(
                f"xhdr verify: note: the baseline was recorded on Linux {baseline.get('kernel')}, this is "
                f"{document['kernel']}; verifier counts differ between kernels",
                file=sys.stderr,
            )
    return report(document, args)


def run_matrix(
    builds: list[tuple[Path, Variant, list[str]]], kernels: list[str], args: argparse.Namespace
) -> int:
    """``--kernels``: the host's own verify (when listed) plus one qemu guest per other kernel, one table.

    The host's run keeps its full report (JSON, markdown, gate); the matrix table follows it, and any
    rejection or behaviour difference on any kernel fails the command with one line per problem.
    """
    started = time.monotonic()
    status = 0
    host: list[tuple[bool, int | None]] = [(False, None)] * len(builds)
    if HOST in kernels:
        results = verify_all(builds, least_privilege=args.least_privilege, jobs=args.jobs)
        document = build_document(
            results, least_privilege=args.least_privilege, sources=[build[0] for build in builds]
        )
        if args.baseline:
            document["gate"] = baseline_gate(
                document, load_baseline(args.baseline), options.threshold(args, DEFAULT_THRESHOLD_PCT)
            )
        status = report(document, args)
        host = [(result.accepted, result.totals()["verified_insns"]) for result in results]
    described = kernel_run.build_all(builds, args.jobs)
    columns = kernel_run.run_kernels(kernels, described)
    human = options.human_stream(args)
    print(
        f"\nKernel matrix (verified instructions; processed instructions before 5.16; '!' = behaviour "
        f"over {len(kernel_run.corpus_frames())} corpus frames differs from the reference, or for another "
        "program from its run on the host):",
        file=human,
    )
    print(kernel_run.render(kernels, described, columns, host), file=human)
    for column in columns:
        print(f"  {column.kernel}: {column.release}, guest {column.seconds:.1f} s", file=human)
    print(f"  wall time {time.monotonic() - started:.1f} s", file=human)
    problems = kernel_run.failures(described, columns)
    for problem in problems:
        print(f"xhdr verify: {problem}", file=sys.stderr)
    return EXIT_ERROR if problems else status


def compare(args: argparse.Namespace) -> int:
    """``--compare OLD NEW``: the baseline gate's table over two result files, per program too.

    Nothing is compiled or loaded, so it needs no root. The exit status is 1 only when a gate is asked
    for (``--threshold``) and fails; without one the comparison is information.
    """
    for option in ("sources", "baseline", "matrix", "kernels"):
        if getattr(args, option):
            name = "SOURCE" if option == "sources" else f"--{option}"
            raise CommandError(f"--compare reads two result files; {name} does not go with it")
    old, new = (load_baseline(path, "result file") for path in args.compare)
    gate = baseline_gate(new, old, options.threshold(args, DEFAULT_THRESHOLD_PCT))
    table = render_baseline_gate(gate, per_program=True, gated=args.threshold is not None)
    if args.json:
        options.write_output(args.json, json.dumps(gate, indent=2) + "\n")
    if args.markdown:
        options.write_output(args.markdown, f"```\n{table}\n```\n")
    if args.csv:
        options.write_output(args.csv, render_csv(gate["rows"]))
    human = options.human_stream(args)
    print(f"xhdr verify --compare {args.compare[0]} (OLD) {args.compare[1]} (NEW)", file=human)
    if old.get("kernel") != new.get("kernel"):
        print(f"note: OLD is from Linux {old.get('kernel')}, NEW from {new.get('kernel')}", file=human)
    print(table, file=human)
    if args.threshold is not None and not gate["passed"]:
        print(f"xhdr verify: compare gate failed: {gate['failures'][0]}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def plan(sources: list[Path], matrix: Path | None) -> list[tuple[Path, Variant, list[str]]]:
    """Every (source, variant, cflags) to build, checked without compiling anything; an object (an ELF
    file built with clang) is one build with no -D values."""
    objects = [source for source in sources if is_object(source)]
    if matrix is not None and sources and len(objects) == len(sources):
        raise CommandError(
            f"--matrix builds sources with -D values; {sources[0]} is an object, built already: drop --matrix"
        )
    for source in sources:
        if source in objects:
            if not object_xdp_programs(source):
                raise CommandError(f'{source} has no XDP program: no program of type xdp (SEC("xdp"))')
            continue
        if source.is_dir():
            raise CommandError(
                f"source {source} is a directory; give the .c files to verify (for example {source}/*.c)"
            )
        if not source.is_file():
            raise FileNotFoundError(f"source file {source} does not exist; check the path")
        try:
            text = source.read_text(errors="replace")
        except OSError as error:
            raise FileNotFoundError(f"source file {source} cannot be read: {error.strerror}") from None
        if not xdp_functions(text):
            raise CommandError(f"{source} has no XDP program: no function takes a struct xdp_md * argument")
    if matrix is not None:
        variants = load_matrix(matrix)
    else:
        variants = load_matrix(DEFAULT_MATRIX) if not sources else SINGLE_BUILD
    chosen = sources or [EXTRACTOR_SOURCE]
    return [
        (source, variant, variant.cflags(extractor=source.resolve() == EXTRACTOR_SOURCE))
        if source not in objects
        else (source, variant, [])
        for source in chosen
        for variant in (SINGLE_BUILD if source in objects else variants)
    ]


def _verify(build: tuple[Path, Variant, list[str]], least_privilege: bool) -> VariantResult:
    source, variant, cflags = build
    if is_object(source):
        return verify_object(source, variant.name, least_privileged=least_privilege)
    return verify_variant(source, variant.name, cflags, least_privileged=least_privilege)


def verify_all(
    builds: list[tuple[Path, Variant, list[str]]], *, least_privilege: bool, jobs: int
) -> list[VariantResult]:
    """Verifies every build, ``jobs`` at a time in worker processes, showing progress on stderr.

    Workers are separate processes (spawned, not forked from a process that holds LLVM): each compile is
    single-threaded clang, and a worker's fds, maps and programs vanish with it whatever happens; they
    die with this process too, even when it is killed outright (harness/core/workers.py).
    The first bad build (a compile error) stops the run with its one-line message.
    """
    progress = BuildProgress(len(builds))
    if jobs == 1 or len(builds) == 1:
        results = []
        for build in builds:
            progress.started(build)
            results.append(_verify(build, least_privilege))
            progress.finished(results[-1])
        return results
    progress.lines.note(f"building {len(builds)} variants, {min(jobs, len(builds))} at a time")
    with process_pool(min(jobs, len(builds))) as pool:
        futures = {pool.submit(_verify, build, least_privilege): index for index, build in enumerate(builds)}
        done: dict[int, VariantResult] = {}
        try:
            for future in concurrent.futures.as_completed(futures):
                done[futures[future]] = future.result()
                progress.finished(done[futures[future]])
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return [done[index] for index in range(len(builds))]


class BuildProgress:
    """One permanent line per finished variant; on a terminal, a status line for the variant being built."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.count = 0
        self.started_at = time.monotonic()
        self.lines = Progress("xhdr verify: ")

    def started(self, build: tuple[Path, Variant, list[str]]) -> None:
        source, variant, _ = build
        self.lines.status(f"[{self.count + 1}/{self.total}] {source.name}/{variant.name}: compiling…")

    def finished(self, result: VariantResult) -> None:
        self.count += 1
        verdict = "accepted" if result.accepted else "REJECTED"
        insns = result.totals()["verified_insns"]
        line = f"[{self.count}/{self.total}] {result.key}: {verdict}"
        if insns is not None:
            line += f", {insns} verified insns"
        self.lines.note(f"{line} ({time.monotonic() - self.started_at:.1f} s)")


def report(document: dict, args: argparse.Namespace) -> int:
    """Writes the outputs, prints the table unless stdout carries JSON or markdown, returns the exit code."""
    if args.json:
        options.write_output(args.json, json.dumps(document, indent=2) + "\n")
    if args.markdown:
        options.write_output(args.markdown, render_markdown(document))
    if args.csv:
        options.write_output(args.csv, render_csv(program_rows(document)))
    human = options.human_stream(args)
    print(render_table(document, per_program=args.programs), file=human)
    rejections = render_rejections(document)
    if rejections:
        print(f"\n{rejections}", file=human)
    gate = document.get("gate")
    if gate:
        print(f"\n{render_baseline_gate(gate)}", file=human)
    rejected = [
        f"{variant['key']} program {variant['rejection']['program']}: {variant['rejection']['error']}"
        for variant in document["variants"]
        if not variant["accepted"]
    ]
    problems = []
    if rejected:
        problems.append(
            f"{len(rejected)} of {len(document['variants'])} variants rejected ({'; '.join(rejected)})"
        )
    if gate and not gate["passed"]:
        problems.append(f"baseline gate failed: {gate['failures'][0]}")
    if problems:
        print(f"xhdr verify: {'; '.join(problems)}", file=sys.stderr)
        return EXIT_ERROR
    return 0
