"""Benchmark 6: differential examples per second of ``xhdr fuzz``, with where the time goes.

Measures the command users run, as a child process: ``xhdr fuzz --mutants N`` for a fixed time on the
`all` target, seeded (so the example database neither replays nor grows) and with its repro corpus in a
temporary folder. Its JSON summary gives the figures: every compared item (a frame, a flow, a mutant) is
one differential example, and the split of the wall time into generation, test run, reference and compare.
A run without mutants is measured beside it, so the gain of bulk mutation shows in the same run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench.results import Row, write_results
from bench.targets import FUZZ_EXAMPLES_PER_SECOND
from harness.core.config import ExtractorConfig
from harness.core.ownership import scratch_directory

SUITE = "fuzz"
MUTANTS = 128  # per frame; what the README recommends for throughput
SEED = 1


def campaign(seconds: float, mutants: int, scratch: Path) -> dict:
    """One ``xhdr fuzz`` run of about ``seconds``; its JSON summary."""
    summary = scratch / f"summary-{mutants}.json"
    argv = [
        *(sys.executable, "-m", "harness.cli"),
        *("fuzz", "--minutes", f"{seconds / 60:.3f}", "--target", "all", "--seed", str(SEED)),
        *("--mutants", str(mutants), "--lab-sample", "0"),
        *("--corpus", str(scratch / "corpus"), "--json", str(summary)),
    ]
    done = subprocess.run(argv, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"xhdr fuzz --mutants {mutants} exited {done.returncode}: {last}")
    return json.loads(summary.read_text(encoding="utf-8"))


def run(quick: bool, progress: Callable[[str], None] = print) -> Path:
    """Benchmark 6; writes reports/out/bench/fuzz.json and returns its path.

    quick: 20 s per campaign; full: 60 s.
    """
    seconds = 20.0 if quick else 60.0
    summaries = {}
    with scratch_directory("bench-fuzz") as scratch:
        for mutants in (0, MUTANTS):
            progress(f"xhdr fuzz --mutants {mutants} for {seconds:.0f} s")
            summaries[mutants] = campaign(seconds, mutants, Path(scratch))
    rows = summarise(summaries)
    best = summaries[MUTANTS]["compared_per_second"]
    progress(
        f"{best:,.0f} differential examples/s with --mutants {MUTANTS} "
        f"(target: at least {FUZZ_EXAMPLES_PER_SECOND:,}); {summaries[0]['compared_per_second']:,.0f} without"
    )
    return write_results(SUITE, rows, ExtractorConfig())


def summarise(summaries: dict[int, dict]) -> list[Row]:
    """Per campaign: differential examples/s, Hypothesis examples/s and the share of each stage."""
    rows: list[Row] = []
    for mutants, summary in summaries.items():
        params = {"mutants": mutants, "target": summary.get("target", "all"), "seconds": summary["seconds"]}
        rows.append(
            Row("xhdr_fuzz", "compared_per_second", summary["compared_per_second"], "examples/s", params)
        )
        rows.append(
            Row("xhdr_fuzz", "examples_per_second", summary["examples_per_second"], "examples/s", params)
        )
        for stage, seconds in summary["time_split_seconds"].items():
            share = 100 * seconds / summary["seconds"]
            rows.append(Row("xhdr_fuzz", "time_share", round(share, 1), "%", params | {"stage": stage}))
    return rows
