"""``xhdr fuzz``: a differential campaign against the kernel program, with a live progress line.

The campaign runs Hypothesis in rounds (one seed each) until the example or time budget is spent or a
disagreement is found; every shrunk disagreement is saved under fuzz/corpus/ (``fuzz.repro``), where
tests/test_fuzz.py replays it from then on. Hypothesis's example database keeps what earlier runs found: on disk
under .hypothesis/xhdr-fuzz/ by default, in Redis with ``--redis URL`` so many CI workers share one corpus.
The summary (also written as JSON with ``--json``) gives examples per second and where the time went.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from fuzz import repro
from fuzz.differential import FUZZ_CONFIG, FUZZ_KEY, Campaign, Progress
from fuzz.lab_sample import Reservoir, lab_differences
from fuzz.strategies import TARGETS
from harness.cli import CommandError, require_root
from harness.config import load_config
from harness.program import Program

DEFAULT_EXAMPLES = 2000
DEFAULT_LAB_SAMPLE = 30
ROUND_EXAMPLES = 500  # examples per Hypothesis run when the budget is time; each round gets the next seed
PROGRESS_INTERVAL_S = 0.5
EXIT_FOUND = 1


def register(subcommands: argparse._SubParsersAction) -> None:
    """Adds ``xhdr fuzz`` (found through the xhdr.commands entry point)."""
    parser = subcommands.add_parser(
        "fuzz",
        help="differential fuzzing: kernel program against the reference extractor",
        description="Feeds Hypothesis-generated frames and TCP flows to the extractor through BPF_PROG_TEST_RUN "
        "and compares every event and counter with the reference; shrunk disagreements are saved under "
        "fuzz/corpus/.",
    )
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="run for this long (in rounds of Hypothesis runs)")
    budget.add_argument("--examples", type=int, help=f"run this many examples (default {DEFAULT_EXAMPLES})")
    parser.add_argument("--target", choices=sorted(TARGETS), default="all", help="which layer to fuzz")
    parser.add_argument("--seed", type=int, help="seed of the first round (default: random, printed)")
    parser.add_argument(
        "--config", type=Path, help="extractor config TOML (default: small limits, see FUZZ_CONFIG)"
    )
    parser.add_argument(
        "--db", type=Path, default=Path(".hypothesis/xhdr-fuzz"), help="example database folder"
    )
    parser.add_argument("--redis", metavar="URL", help="share the example database in Redis (needs redis-py)")
    parser.add_argument("--corpus", type=Path, default=repro.CORPUS_DIR, help="where repro files go")
    parser.add_argument("--json", type=Path, help="also write the summary as JSON to this file")
    parser.add_argument(
        "--lab-sample",
        type=int,
        default=DEFAULT_LAB_SAMPLE,
        metavar="N",
        help=f"also send N of the campaign's frames over the lab, native and generic (default {DEFAULT_LAB_SAMPLE}; "
        "0: none)",
    )
    parser.set_defaults(run=run)


def example_database(args: argparse.Namespace) -> ExampleDatabase:
    """The Redis database when a URL is given, else a folder per target (targets draw different shapes)."""
    if args.redis is None:
        return DirectoryBasedExampleDatabase(str(args.db / args.target))
    try:
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase
    except ImportError:
        raise CommandError("--redis needs the redis package; install it with: pip install redis") from None
    try:
        client = redis.Redis.from_url(args.redis)
    except ValueError as error:
        raise CommandError(
            f"--redis {args.redis!r} is not a Redis URL ({error}); use redis://HOST:PORT/DB"
        ) from None
    return RedisExampleDatabase(client, key_prefix=f"xhdr-fuzz:{args.target}:".encode())


class ProgressLine:
    """Rewrites one status line on a terminal, at most every PROGRESS_INTERVAL_S; prints lines otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last = 0.0
        self.failures = 0

    def __call__(self, progress: Progress) -> None:
        now = time.perf_counter()
        interval = PROGRESS_INTERVAL_S if self.tty else 10 * PROGRESS_INTERVAL_S
        if now - self.last < interval:
            return
        self.last = now
        self.show(progress)

    def show(self, progress: Progress, final: bool = False) -> None:
        line = progress.line(self.failures)
        if progress.failing_examples and not self.failures:
            line += " | shrinking a failure"
        if self.tty:
            self.stream.write("\r\x1b[K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def run(args: argparse.Namespace) -> int:
    """Runs the campaign; exit status 1 when a disagreement was found (its repro paths are printed)."""
    if args.examples is not None and args.examples < 1:
        raise CommandError(f"--examples {args.examples} must be at least 1")
    if args.minutes is not None and args.minutes <= 0:
        raise CommandError(f"--minutes {args.minutes} must be more than 0")
    if args.lab_sample < 0:
        raise CommandError(f"--lab-sample {args.lab_sample} must be 0 or more")
    config = load_config(args.config) if args.config else FUZZ_CONFIG
    database = example_database(args)
    require_root("xhdr fuzz")
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(
        f"xhdr fuzz: target {args.target}, seed {seed}, examples database {args.redis or args.db}",
        file=sys.stderr,
    )
    line = ProgressLine(sys.stderr)
    with Program(config, key=FUZZ_KEY) as program:
        sample = Reservoir(args.lab_sample, seed)
        campaign = Campaign(program, target=args.target, on_example=line, on_frames=sample.offer)
        saved = _rounds(campaign, args, seed, database, line)
        line.failures = len(saved)
        line.show(campaign.progress, final=True)
        lab_lines = lab_differences(program, sample.frames) if sample.frames else []
        summary = _summary(campaign, args, seed, saved)
        summary["lab_sample"] = {"frames": len(sample.frames), "modes": 2, "differences": lab_lines}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    _print_summary(summary)
    return EXIT_FOUND if saved or lab_lines else 0


def _rounds(
    campaign: Campaign, args: argparse.Namespace, seed: int, database: ExampleDatabase, line: ProgressLine
) -> list[Path]:
    """Hypothesis runs until the budget is spent or one ends with disagreements; returns the saved repros."""
    deadline = time.monotonic() + args.minutes * 60 if args.minutes is not None else None
    remaining = args.examples if args.examples is not None else (None if deadline else DEFAULT_EXAMPLES)
    round_index = 0
    while True:
        size = ROUND_EXAMPLES if remaining is None else min(ROUND_EXAMPLES, remaining)
        before = campaign.progress.examples
        found = campaign.run(size, seed=seed + round_index, database=database)
        if found:
            found_by = {"target": args.target, "seed": seed + round_index, "command": " ".join(sys.argv[1:])}
            return [
                repro.save(
                    disagreement,
                    campaign.program.config,
                    campaign.program.key,
                    args.corpus,
                    found_by=found_by,
                )
                for disagreement in found
            ]
        round_index += 1
        if remaining is not None:
            remaining -= campaign.progress.examples - before
            if remaining <= 0:
                return []
        if deadline is not None and time.monotonic() >= deadline:
            return []


def _summary(campaign: Campaign, args: argparse.Namespace, seed: int, saved: list[Path]) -> dict[str, Any]:
    """The machine-readable result: throughput, the time split, outcome classes and the repro files."""
    progress = campaign.progress
    split = campaign.clock.split()
    wall = split["wall"] or 1e-9
    return {
        "target": args.target,
        "seed": seed,
        "examples": progress.examples,
        "frames": progress.frames,
        "seconds": round(wall, 3),
        "examples_per_second": round(progress.examples / wall, 1),
        "frames_per_second": round(progress.frames / wall, 1),
        "outcome_classes": sorted(progress.classes),
        "time_split_seconds": {
            stage: round(seconds, 3) for stage, seconds in split.items() if stage != "wall"
        },
        "first_failure_at_example": progress.first_failure[0] if progress.first_failure else None,
        "repros": [str(path) for path in saved],
    }


def _print_summary(summary: dict[str, Any]) -> None:
    split = summary["time_split_seconds"]
    total = sum(split.values()) or 1e-9
    shares = ", ".join(f"{stage} {seconds / total:.0%}" for stage, seconds in split.items())
    print(
        f"{summary['examples']} examples ({summary['frames']} frames) in {summary['seconds']:.1f}s: "
        f"{summary['examples_per_second']} examples/s, {summary['frames_per_second']} frames/s; "
        f"{len(summary['outcome_classes'])} outcome classes; time: {shares}"
    )
    for path in summary["repros"]:
        print(f"disagreement saved: {path}")
    lab = summary["lab_sample"]
    if lab["frames"]:
        verdict = "all agree" if not lab["differences"] else f"{len(lab['differences'])} differences"
        print(f"lab sample: {lab['frames']} frames over veth, native and generic: {verdict}")
        for line in lab["differences"]:
            print(f"  {line}")
