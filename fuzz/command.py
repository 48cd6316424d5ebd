"""``xhdr fuzz``: a differential campaign against the kernel program, with a live progress line.

The campaign runs Hypothesis in rounds until the example or time budget is spent or a disagreement is found;
every shrunk disagreement is saved under fuzz/corpus/ (``fuzz.repro``), where tests/test_fuzz.py replays it from
then on. Hypothesis's example database keeps what earlier runs found and every round replays it before drawing
anything new: on disk under .hypothesis/xhdr-fuzz/ by default, in Redis with ``--redis URL`` so many CI workers
share one corpus. A fixed seed turns that database off in Hypothesis, so ``--seed`` is the explicit choice of a
reproducible run over replay. The summary (``--json``, ``--markdown``) gives examples per second and where the
time went.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.parse
from pathlib import Path
from typing import TextIO

from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from fuzz import foreign, repro
from fuzz.differential import FUZZ_CONFIG, FUZZ_KEY, Campaign, CampaignProgress
from fuzz.lab_sample import Reservoir, lab_differences
from fuzz.strategies import TARGETS
from fuzz.summary import Setting, build_summary, render_markdown, render_text
from harness.cli import options
from harness.cli.main import require_root
from harness.cli.textui import Progress
from harness.core.errors import CommandError
from harness.core.loader import load
from harness.core.program import Program
from harness.core.rules import Action

DEFAULT_EXAMPLES = 2000
DEFAULT_LAB_SAMPLE = 30
ROUND_EXAMPLES = 500  # examples per Hypothesis run; each replays the database first (or takes the next seed)
DEFAULT_DB = Path(".hypothesis/xhdr-fuzz")
FOREIGN_CORPUS = "xhdr-fuzz-repros"  # --object's repros: in the user's folder, not among the extractor's
# What belongs to the extractor's campaign alone, with the value that means "not given".
EXTRACTOR_ONLY = {
    "target": "all",
    "mutants": 0,
    "coverage": None,
    "define": [],
    "redis": None,
    "lab_sample": None,
    "json": None,
    "markdown": None,
}
REDIS_EXTRA = "pip install 'xhdr[redis]'"
DEFINE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(=.*)?")
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
    options.add_config(parser, "small limits, see fuzz.differential.FUZZ_CONFIG")
    parser.add_argument(
        "--define",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="compile the kernel program with -DNAME[=VALUE] (repeatable), e.g. XHDR_PLANTED_BUG to see the "
        "fuzzer find a planted bug",
    )
    parser.add_argument(
        "--mutants",
        type=int,
        default=0,
        metavar="N",
        help="also compare N cheap byte-level mutants of each frame of every example, in the same batch "
        "(default 0); a failing mutant is saved as itself",
    )
    parser.add_argument(
        "--coverage",
        nargs="?",
        const="report",
        choices=("report", "feedback"),
        help="build with -DXHDR_COVERAGE and report which labelled branches of bpf/xhdr.c ran and never ran, "
        "and when ('report', the default when given: costs nothing measurable); 'feedback' also passes "
        "Hypothesis's target() the rarity of the rarest branch each example hit, which makes Hypothesis's "
        "engine about four times slower per example",
    )
    kept = parser.add_mutually_exclusive_group()
    kept.add_argument(
        "--db",
        type=Path,
        help=f"example database folder: failures are kept there and replayed first (default {DEFAULT_DB})",
    )
    kept.add_argument(
        "--redis", metavar="URL", help=f"keep the example database in Redis instead (needs {REDIS_EXTRA})"
    )
    kept.add_argument(
        "--seed",
        type=int,
        help="seed of the first round, for a reproducible run; turns the example database off (nothing is "
        "replayed or kept), as a fixed seed does in Hypothesis",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        help=f"where repro files go (default {repro.CORPUS_DIR.relative_to(Path(__file__).parents[1])}/, where the "
        f"tests replay them; with --object, ./{FOREIGN_CORPUS}/)",
    )
    options.add_json(parser, "the summary")
    options.add_markdown(parser, "the summary (for CI job summaries)")
    parser.add_argument(
        "--lab-sample",
        type=int,
        metavar="N",
        help=f"also send N of the campaign's frames over the lab, native and generic (default {DEFAULT_LAB_SAMPLE}; "
        "0: none)",
    )
    yours = options.add_your_program(
        parser,
        "fuzz any XDP program instead of the extractor: each generated frame runs through it alone, and what it "
        "wrote to its ring buffer, decoded, must equal what the oracle says for that frame (fuzz/foreign.py); "
        "functions are MODULE:FUNCTION, FILE.py:FUNCTION or the name of an entry point (groups xhdr.decoders, "
        "xhdr.oracles)",
    )
    yours.add_argument("--decoder", metavar="FUNCTION", help="record bytes -> a value that compares with ==")
    yours.add_argument(
        "--oracle",
        metavar="FUNCTION",
        help="frame bytes -> the list of values it should log (default: reference, our reference's events as "
        "xhdr log --json writes them, cut down to the keys your decoder's dicts have; each frame then follows "
        "the SYN that opens its flow)",
    )
    parser.set_defaults(run=run)


def example_database(args: argparse.Namespace) -> ExampleDatabase | None:
    """The Redis database when a URL is given, else a folder per target (targets draw different shapes); none
    with a seed, which Hypothesis would ignore the database for anyway."""
    if args.seed is not None:
        return None
    if args.redis is None:
        return DirectoryBasedExampleDatabase(str(_folder(args)))
    try:
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase
    except ImportError:
        raise CommandError(f"--redis needs the redis package; install it with: {REDIS_EXTRA}") from None
    try:
        client = redis.Redis.from_url(args.redis)
    except ValueError as error:
        raise CommandError(
            f"--redis {_shown(args.redis)!r} is not a Redis URL ({error}); use redis://HOST:PORT/DB"
        ) from None
    return RedisExampleDatabase(client, key_prefix=_redis_prefix(args).encode())


def _object_folder(args: argparse.Namespace) -> Path:
    """``--object``'s example database: a folder per program file, beside the extractor's per target."""
    return (args.db or DEFAULT_DB) / f"object-{args.object.stem}"


def _folder(args: argparse.Namespace) -> Path:
    return (args.db or DEFAULT_DB) / args.target


def _redis_prefix(args: argparse.Namespace) -> str:
    return f"xhdr-fuzz:{args.target}:"


def _shown(url: str) -> str:
    """The URL as logs and CI summaries may show it: any user and password in it become ``***``."""
    parts = urllib.parse.urlsplit(url)
    _, at, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"***@{host}").geturl() if at else url


def database_name(args: argparse.Namespace) -> str | None:
    """Where the example database is, as the progress header and the summary show it."""
    if args.seed is not None:
        return None
    if args.redis is not None:
        return f"{_shown(args.redis)} (keys {_redis_prefix(args)}*)"
    return str(_folder(args))


def cflags(defines: list[str]) -> tuple[str, ...]:
    """The -D flags of ``--define``, each checked to start with a C identifier."""
    for define in defines:
        if not DEFINE.fullmatch(define):
            raise CommandError(f"--define {define!r} is not NAME or NAME=VALUE with NAME a C identifier")
    return tuple(f"-D{define}" for define in defines)


class ProgressLine:
    """The campaign's status line (harness.cli.textui.Progress): rewritten at most every PROGRESS_INTERVAL_S on a
    terminal; a plain line every ten intervals elsewhere."""

    def __init__(self, stream: TextIO) -> None:
        self.shown = Progress(stream=stream)
        self.last = 0.0
        self.failures = 0

    def __call__(self, progress: CampaignProgress) -> None:
        now = time.perf_counter()
        interval = PROGRESS_INTERVAL_S if self.shown.tty else 10 * PROGRESS_INTERVAL_S
        if now - self.last < interval:
            return
        self.last = now
        self.show(progress)

    def show(self, progress: CampaignProgress, final: bool = False) -> None:
        line = progress.line(self.failures)
        if progress.failing_examples and not self.failures:
            line += " | shrinking a failure"
        (self.shown.note if final else self.shown.tick)(line)


def run(args: argparse.Namespace) -> int:
    """Runs the campaign; exit status 1 when a disagreement was found (its repro paths are printed)."""
    if args.examples is not None and args.examples < 1:
        raise CommandError(f"--examples {args.examples} must be at least 1")
    if args.minutes is not None and args.minutes <= 0:
        raise CommandError(f"--minutes {args.minutes} must be more than 0")
    if args.object is not None:
        return run_foreign(args)
    options.check_without_object(args, "decoder", "oracle")
    if args.lab_sample is None:
        args.lab_sample = DEFAULT_LAB_SAMPLE
    if args.corpus is None:
        args.corpus = repro.CORPUS_DIR
    if args.mutants < 0:
        raise CommandError(f"--mutants {args.mutants} must be 0 or more")
    if args.lab_sample < 0:
        raise CommandError(f"--lab-sample {args.lab_sample} must be 0 or more")
    options.check(args)
    config = options.extractor_config(args, FUZZ_CONFIG)
    sampled = [rule.name for rule in config.rules if rule.action is Action.SAMPLE]
    if sampled:
        # R28: which hit a sample rule sends depends on every earlier hit on the CPU, across examples and
        # batches, which the reference (a fresh tracker per example) cannot know
        raise CommandError(
            f'rule {sampled[0]!r} samples, which a fuzz campaign cannot judge; fuzz it as action = "log"'
        )
    extra_cflags = cflags(args.define)
    database = example_database(args)
    require_root("xhdr fuzz")
    setting = Setting(args.target, args.seed, database_name(args), tuple(args.define))
    kept = setting.database or f"off (--seed {args.seed})"
    print(f"xhdr fuzz: target {args.target}, example database {kept}", file=sys.stderr)
    line = ProgressLine(sys.stderr)
    with Program(config, key=FUZZ_KEY, extra_cflags=extra_cflags, coverage=bool(args.coverage)) as program:
        sample = Reservoir(args.lab_sample, args.seed)
        campaign = Campaign(
            program,
            target=args.target,
            on_example=line,
            on_frames=sample.offer,
            coverage=bool(args.coverage),
            feedback=args.coverage == "feedback",
            mutants=args.mutants,
        )
        saved = _rounds(campaign, args, database, extra_cflags)
        line.failures = len(saved)
        line.show(campaign.progress, final=True)
        lab_lines = lab_differences(program, sample.frames) if sample.frames else []
    summary = build_summary(campaign, setting, saved, len(sample.frames), lab_lines)
    human = options.human_stream(args)
    if args.json:
        options.write_output(args.json, json.dumps(summary, indent=2) + "\n")
    if args.markdown:
        options.write_output(args.markdown, render_markdown(summary))
    print(render_text(summary), file=human)
    return EXIT_FOUND if saved or lab_lines else 0


def _rounds(
    campaign: Campaign,
    args: argparse.Namespace,
    database: ExampleDatabase | None,
    extra_cflags: tuple[str, ...],
) -> list[Path]:
    """Hypothesis runs until the budget is spent or one ends with disagreements; returns the saved repros."""
    deadline = time.monotonic() + args.minutes * 60 if args.minutes is not None else None
    remaining = args.examples if args.examples is not None else (None if deadline else DEFAULT_EXAMPLES)
    round_index = 0
    while True:
        size = ROUND_EXAMPLES if remaining is None else min(ROUND_EXAMPLES, remaining)
        before = campaign.progress.examples
        seed = None if args.seed is None else args.seed + round_index
        found = campaign.run(size, seed=seed, database=database)
        if found:
            found_by = {"target": args.target, "seed": seed, "command": " ".join(sys.argv[1:])}
            return [
                repro.save(
                    disagreement,
                    campaign.program.config,
                    campaign.program.key,
                    args.corpus,
                    cflags=extra_cflags,
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


def run_foreign(args: argparse.Namespace) -> int:
    """``--object``: your parser against your oracle; exit status 1 when they disagree (the repro is saved)."""
    for option, unset in EXTRACTOR_ONLY.items():
        if getattr(args, option) != unset:
            flag = "--" + option.replace("_", "-")
            raise CommandError(
                f"{flag} is for the extractor's campaign; drop it when fuzzing --object {args.object}"
            )
    if args.decoder is None:
        raise CommandError("--object needs --decoder too; see `xhdr fuzz --help`, 'your own program'")
    decode = foreign.load_function(args.decoder, "--decoder")
    reference = args.oracle in (None, foreign.REFERENCE)
    expect = None if reference else foreign.load_function(args.oracle, "--oracle")
    database = None if args.seed is not None else DirectoryBasedExampleDatabase(str(_object_folder(args)))
    require_root("xhdr fuzz")
    examples = args.examples if args.examples is not None else DEFAULT_EXAMPLES
    progress = Progress(stream=sys.stderr)
    count = [0]

    def tick() -> None:
        count[0] += 1
        if count[0] % 100 == 0:
            progress.tick(f"{args.object.name}: {count[0]} examples, no disagreement yet")

    with load(args.object, args.program) as program:
        ring = program.ring_named(args.ring)
        if ring is None:
            raise CommandError(
                f"{args.object} has no ring buffer map; fuzzing compares what a program logs to one"
            )
        parser = foreign.Parser(program, ring, decode, expect)
        found = foreign.run(parser, examples, FUZZ_CONFIG, database, args.seed, on_example=tick)
    against = "the reference" if reference else "the oracle"
    if found is None:
        progress.note(f"{args.object.name}: {count[0]} examples, every frame logged what {against} expected")
        return 0
    saved = foreign.save(found, args.object, program.name, args.corpus or Path(FOREIGN_CORPUS))
    progress.note(f"{args.object.name} disagrees with {against}: {found}; repro {saved}")
    return EXIT_FOUND
