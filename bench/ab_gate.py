"""The performance regression gate: ``xhdr bench --compare REF``, a paired A/B test of two extractor builds.

Why paired: on a shared machine the absolute cost of the same program moves by tens of percent between
runs (other work, frequency, cache), so comparing today's figure with a stored one mostly measures the
machine. Both builds are loaded at once and run round by round in ABBA order on the same frame; a noise
burst then hits both sides of a round alike and cancels in the round's ratio current/reference.

The statistic: the median of the per-round log ratios, with a percentile bootstrap interval
(harness/core/paired.py).
A case **fails** only if the slowdown is significant (the interval lies above 1) *and* its estimate is
larger than the minimum effect (``--threshold``, default 10%); it **passes** when the interval's upper end
is below the minimum effect (any slowdown is smaller than what we care about); anything else is
**inconclusive**: too noisy to tell, said so instead of failing. An inconclusive case is measured once more
with as many rounds again before the verdict is given.

Two loads of the same bytecode can differ by 15-20% for their whole life on this machine (measured: equal
program tags, one load steadily faster; JIT image and map placement). So each build is loaded several
times (``loads``), rounds rotate over every (reference load, current load) pair, the bootstrap resamples
loads before rounds, and a tentative failure is measured again on fresh loads: it stands only if the
second pass fails too (else the case is inconclusive).

With ``caches`` other than warm (``--caches l2_evicted`` or ``llc_evicted``), every run starts with that cache
of the core written over, as in bench/cache_cost.py: the test runs are then one at a time, fewer per round,
and the gate compares what each build costs a core that did other work since the last request. A change that
makes a request touch more code or map lines (an unrolled loop, a bigger record) weighs more there than
while everything stays cached, and a gateway's cores are rarely that warm.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import math
import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from bench.any_program import any_program
from bench.cache_cost import STATES, WARM, before_each_run
from bench.foreign import ForeignLoadError, ForeignProgram
from bench.kernel_cost import (
    Case,
    Measured,
    cases,
    events_per_run,
    program_subject,
)
from harness.cli.textui import table
from harness.core.config import ExtractorConfig
from harness.core.dispatcher import held_by_dispatcher
from harness.core.ownership import scratch_directory
from harness.core.paired import CONFIDENCE, paired_ratio
from harness.core.program import BPF_DIR, EXTRACTOR_SOURCE
from harness.core.rounds import interleaved_round, timed_repeat

Verdict = Literal["pass", "fail", "inconclusive"]
REPO_DIR = BPF_DIR.parent
DEFAULT_THRESHOLD_PCT = 10.0
# The cases the gate compares: the one the targets are set on, and the ones that stress each stage.
GATE_CASES = ("standard", "frame_1500", "headers_32", "worst_last_header_last")
GATE_ROUNDS = {"quick": 36, "full": 72}  # multiples of DEFAULT_LOADS ** 2 pairings
DEFAULT_LOADS = 3  # loads of each build: see assess() on why one load per side is not enough
# Runs per build and round when each run starts with a cache written over: each one is a test run of its own
# after the write (about 0.1 ms for the L2, 5 ms for the last-level cache here), so fewer than the warm 100.
COLD_REPEAT = {"l2_evicted": 20, "llc_evicted": 4}


class GateError(RuntimeError):
    """The gate could not run (unknown ref, build failure); one line naming the cause."""


@dataclasses.dataclass(frozen=True)
class Version:
    """One build to compare: a source file (with its bpf/ headers beside it) and extra -D flags."""

    label: str
    source: Path
    cflags: tuple[str, ...] = ()
    commit: str = ""
    tree: Path | None = None  # a git ref's whole checkout: its own harness loads it (bench/foreign.py)
    yours: bool = False  # a user's program (--object), loaded as any XDP program (bench/any_program.py)
    program: str | None = None  # which XDP program of the file, for a user's program
    ring: str | None = None  # the ring buffer it logs to, for a user's program


@dataclasses.dataclass(frozen=True)
class Assessment:
    """The statistic for one case: the ratio current/reference, its interval, and what they mean."""

    estimate: float  # exp(median of per-round log ratios)
    low: float
    high: float
    rounds: int
    spread_pct: float  # interquartile range of the per-round ratios, in percent
    verdict: Verdict


def assess(
    current: Sequence[float],
    reference: Sequence[float],
    threshold_pct: float = DEFAULT_THRESHOLD_PCT,
    loads: Sequence[tuple[int, int]] | None = None,
) -> Assessment:
    """The paired ratio of the two builds' times (harness/core/paired.py) and the verdict it supports.

    ``loads`` gives, per round, which load of the reference and which load of the current build ran it.
    Two loads of the same bytecode can differ by 15% for the whole of their life (we measured it: same
    program tags, one load steadily faster; JIT image placement), so the interval resamples loads before
    rounds (see ``paired_ratio``).
    """
    found = paired_ratio(current, reference, loads=loads)
    ratios = np.asarray(current, dtype=float) / np.asarray(reference, dtype=float)
    q1, q3 = np.quantile(ratios, [0.25, 0.75])
    limit = 1 + threshold_pct / 100
    verdict: Verdict
    if found.low > 1 and found.estimate > limit:
        verdict = "fail"
    elif found.high < limit:
        verdict = "pass"
    else:
        verdict = "inconclusive"
    return Assessment(found.estimate, found.low, found.high, ratios.size, float(100 * (q3 - q1)), verdict)


def overall(verdicts: Sequence[Verdict]) -> Verdict:
    """One failing case fails the gate; otherwise one inconclusive case makes it inconclusive."""
    if "fail" in verdicts:
        return "fail"
    return "inconclusive" if "inconclusive" in verdicts else "pass"


# -- versions ----------------------------------------------------------------------------------------


def _git(*args: str, failure: str | None = None) -> str:
    """git's output in this repository; a failure is a GateError with ``failure`` or git's last stderr line."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO_DIR, capture_output=True, text=True, check=False, timeout=30
        )
    except OSError as error:
        raise GateError(f"cannot run git: {error.strerror}") from None
    if done.returncode != 0:
        message = (done.stderr.strip().splitlines() or ["git failed"])[-1]
        raise GateError(failure or f"git {' '.join(args)}: {message}")
    return done.stdout


@contextlib.contextmanager
def reference_version(ref: str) -> Iterator[Version]:
    """The reference build: a stored program (a .c file, or a directory holding xhdr.c) or a git ref.

    For a git ref the whole tree at that ref is written to a temporary directory: the reference compiles
    against its own headers and is loaded by its own harness (``_load``), since the maps, stages and event
    layout of the extractor may differ between commits.
    """
    path = Path(ref)
    if path.is_file():
        yield Version(f"file {path}", path.resolve())
        return
    if path.is_dir():
        if not (path / EXTRACTOR_SOURCE.name).is_file():
            raise GateError(f"{path} holds no {EXTRACTOR_SOURCE.name}; give a git ref or a stored program")
        yield Version(f"directory {path}", (path / EXTRACTOR_SOURCE.name).resolve())
        return
    commit = _git(
        "rev-parse",
        "--verify",
        "--quiet",
        f"{ref}^{{commit}}",
        failure=f"{ref} is not a file, a directory or a git commit of {REPO_DIR}; give a stored program (a .c file, "
        f"or a directory holding {EXTRACTOR_SOURCE.name}) or a commit, branch or tag (see `git log`)",
    ).strip()
    names = _git("ls-tree", "--name-only", f"{commit}:{BPF_DIR.name}").split()
    if EXTRACTOR_SOURCE.name not in names:
        raise GateError(f"{ref} has no {BPF_DIR.name}/{EXTRACTOR_SOURCE.name}")
    with scratch_directory("gate") as directory:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", commit], cwd=REPO_DIR, capture_output=True, check=False
        )
        unpacked = subprocess.run(
            ["tar", "-x", "-C", directory], input=archive.stdout, capture_output=True, check=False
        )
        if archive.returncode or unpacked.returncode:
            raise GateError(
                f"cannot export {ref}: {(archive.stderr or unpacked.stderr).decode().strip()[:200]}"
            )
        tree = Path(directory)
        yield Version(
            f"git {ref}", tree / BPF_DIR.name / EXTRACTOR_SOURCE.name, commit=commit[:12], tree=tree
        )


def your_versions(ref: str, current: Path, program: str | None, ring: str | None) -> tuple[Version, Version]:
    """``--compare REF --object FILE``: two builds of a user's program, each a file (a .bpf.o or a BCC .c)."""
    if not Path(ref).is_file():
        raise GateError(
            f"--compare {ref}: with --object, give the other build of your program as a file (.bpf.o or .c)"
        )
    return (
        Version(f"file {ref}", Path(ref).resolve(), yours=True, program=program, ring=ring),
        Version(f"file {current}", current.resolve(), yours=True, program=program, ring=ring),
    )


def _version_json(version: Version) -> dict:
    """A version as the gate's JSON records it (a git ref's exported tree is temporary: left out)."""
    document = dataclasses.asdict(version) | {"source": str(version.source)}
    del document["tree"]
    return document


def current_version(cflags: tuple[str, ...] = ()) -> Version:
    """The working tree's bpf/xhdr.c, with any extra -D flags (the planted slowdown's self-test)."""
    try:
        commit = _git("rev-parse", "--short=12", "HEAD").strip()
        dirty = bool(_git("status", "--porcelain", "--", BPF_DIR.name).strip())
    except GateError:
        commit, dirty = "unknown", False
    label = (
        "working tree" + (" (bpf/ modified)" if dirty else "") + (f" {' '.join(cflags)}" if cflags else "")
    )
    return Version(label, EXTRACTOR_SOURCE, cflags, commit + ("+dirty" if dirty else ""))


# -- running -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CaseComparison:
    case: str
    reference_ns: tuple[float, ...]
    current_ns: tuple[float, ...]
    assessment: Assessment
    loads: tuple[tuple[int, int], ...] = ()
    first_pass: CaseComparison | None = None  # set when a tentative failure was measured again

    def to_json(self) -> dict:
        return {
            "first_pass": None if self.first_pass is None else self.first_pass.to_json(),
            "case": self.case,
            "verdict": self.assessment.verdict,
            "ratio": round(self.assessment.estimate, 4),
            "interval": [round(self.assessment.low, 4), round(self.assessment.high, 4)],
            "rounds": self.assessment.rounds,
            "spread_pct": round(self.assessment.spread_pct, 2),
            "reference_ns_median": round(float(np.median(self.reference_ns)), 1),
            "current_ns_median": round(float(np.median(self.current_ns)), 1),
            "reference_ns_rounds": [round(value, 1) for value in self.reference_ns],
            "current_ns_rounds": [round(value, 1) for value in self.current_ns],
            "load_pairs": [list(pair) for pair in self.loads],
            "per_load_pair_ratio": self._per_pair(),
        }

    def _per_pair(self) -> dict[str, float]:
        """Median ratio per (reference load, current load): shows a load that sits apart."""
        ratios: dict[str, list[float]] = {}
        for (i, j), a, b in zip(self.loads, self.reference_ns, self.current_ns, strict=True):
            ratios.setdefault(f"{i}-{j}", []).append(b / a)
        return {key: round(float(np.median(values)), 4) for key, values in sorted(ratios.items())}


GateProgress = Callable[[str, int, int, "CaseComparison | None"], None]


def _load(version: Version, key: bytes) -> contextlib.AbstractContextManager[Measured]:
    """One load of a build, ready to enter. An extractor build is loaded in a helper process by the harness
    of its own tree (a git ref's: its maps and stages may differ from today's), so that loads compile in
    parallel; a user's program is loaded as any XDP program."""
    if version.yours:
        return any_program(version.source, version.program, version.ring)
    tree = version.tree or REPO_DIR
    source = None if version.tree is not None or version.source == EXTRACTOR_SOURCE else version.source
    try:
        return ForeignProgram(tree, key, source, version.cflags)
    except ForeignLoadError as error:
        raise GateError(f"{version.label}: {error}") from None


def _load_all(versions: Sequence[Version], key: bytes, stack: contextlib.ExitStack) -> list[Measured]:
    """Every load of ``versions``, one per core at a time; each entered on ``stack`` as it is ready (so that
    what loaded is unloaded when another load fails)."""
    failure: GateError | None = None
    loaded: list[Measured] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for future in [pool.submit(_load, version, key) for version in versions]:
            try:
                loaded.append(stack.enter_context(future.result()))
            except GateError as error:
                failure = failure or error
    if failure is not None:
        raise failure
    return loaded


def _measure(
    reference: Version,
    current: Version,
    by_name: dict[str, Case],
    key: bytes,
    rounds: int,
    threshold_pct: float,
    repeat: int,
    loads: int,
    progress: GateProgress | None,
    caches: str,
    case_names: list[str],
) -> list[CaseComparison]:
    """One pass: fresh loads of both builds, every named case in rotated paired rounds, each run starting with
    the caches in state ``caches``. Cold, the process is held on one CPU once the builds are loaded (their
    compiles run on every core), and that CPU's cache is written over before each run."""
    pairs = [(i, j) for i in range(loads) for j in range(loads)]
    comparisons: list[CaseComparison] = []
    with contextlib.ExitStack() as stack:
        builds = _load_all([reference] * loads + [current] * loads, key, stack)
        stack.enter_context(held_by_dispatcher([build.fd for build in builds]))
        before_run = stack.enter_context(before_each_run(caches))
        refs, curs = builds[:loads], builds[loads:]
        ref_subjects = [program_subject(f"reference#{i}", p) for i, p in enumerate(refs)]
        cur_subjects = [program_subject(f"current#{i}", p) for i, p in enumerate(curs)]
        for number, name in enumerate(case_names, 1):
            case = by_name[name]
            per_run = events_per_run(curs[0], case.frame)
            if events_per_run(refs[0], case.frame) != per_run:
                raise GateError(f"case {name}: the two builds emit different numbers of events")
            room = min(refs[0].repeat_cap(case.frame, per_run), curs[0].repeat_cap(case.frame, per_run))
            reps = timed_repeat(repeat, room)
            ref_ns: list[float] = []
            cur_ns: list[float] = []
            used: list[tuple[int, int]] = []
            target = rounds
            while True:
                for _ in range(target - len(ref_ns)):
                    i, j = pairs[len(used) % len(pairs)]
                    a, b = interleaved_round(
                        [ref_subjects[i], cur_subjects[j]], case.frame, reps, per_run, before_run
                    )
                    ref_ns.append(a)
                    cur_ns.append(b)
                    used.append((i, j))
                    if progress:
                        progress(name, number, len(ref_ns), None)
                result = assess(cur_ns, ref_ns, threshold_pct, loads=used)
                if result.verdict != "inconclusive" or target > rounds:
                    break
                target = 2 * rounds  # one extension for a case too noisy to call
            comparison = CaseComparison(name, tuple(ref_ns), tuple(cur_ns), result, tuple(used))
            comparisons.append(comparison)
            if progress:
                progress(name, number, len(ref_ns), comparison)
    return comparisons


def _confirmed(first: CaseComparison, second: CaseComparison) -> CaseComparison:
    """The second pass's figures; a failure stands only if both passes failed, else it is inconclusive."""
    verdict: Verdict = "fail" if second.assessment.verdict == "fail" else "inconclusive"
    return dataclasses.replace(
        second,
        assessment=dataclasses.replace(second.assessment, verdict=verdict),
        first_pass=dataclasses.replace(first, first_pass=None),
    )


def run_gate(
    reference: Version,
    current: Version,
    *,
    profile: str = "quick",
    rounds: int | None = None,
    threshold_pct: float = DEFAULT_THRESHOLD_PCT,
    case_names: Sequence[str] = GATE_CASES,
    repeat: int = 100,
    loads: int = DEFAULT_LOADS,
    progress: GateProgress | None = None,
    caches: str = WARM,
) -> dict:
    """Loads each build ``loads`` times, all at once, and measures every gate case in paired rounds.

    Round k pairs reference load i with current load j, cycling through every (i, j), so a load that
    happens to sit well or badly in memory is one cluster among several instead of the whole answer.
    ``caches``: the state each run starts in (bench/cache_cost.py's STATES); cold, the process is held on one
    CPU, whose cache is written over before every run.
    """
    if caches not in STATES:
        raise GateError(f"unknown cache state {caches!r}; known: {', '.join(STATES)}")
    repeat = COLD_REPEAT.get(caches, repeat)
    config = ExtractorConfig()
    key = os.urandom(16)
    if rounds is None:
        rounds = GATE_ROUNDS.get(profile, GATE_ROUNDS["quick"])
    by_name: dict[str, Case] = {case.name: case for case in cases("full", config)}
    unknown = [name for name in case_names if name not in by_name]
    if unknown:
        raise GateError(f"unknown gate case {unknown[0]!r}; known: {', '.join(by_name)}")
    measure = functools.partial(
        _measure,
        reference,
        current,
        by_name,
        key,
        rounds,
        threshold_pct,
        repeat,
        loads,
        progress,
        caches,
    )
    comparisons = measure(list(case_names))
    failed = [c.case for c in comparisons if c.assessment.verdict == "fail"]
    if failed:
        # A tentative failure is measured again on fresh loads: a placement that happened to favour the
        # reference in every load of the first pass must not fail the gate on its own.
        confirmation = {c.case: c for c in measure(failed)}
        comparisons = [
            c if c.case not in confirmation else _confirmed(c, confirmation[c.case]) for c in comparisons
        ]
    verdict = overall([c.assessment.verdict for c in comparisons])
    spreads = [c.assessment.spread_pct for c in comparisons]
    return {
        "verdict": verdict,
        "threshold_pct": threshold_pct,
        "confidence": CONFIDENCE,
        "statistic": "two-stage (loads, then rounds) bootstrap interval of the median paired log ratio",
        "profile": profile,
        "repeat": repeat,
        "loads": loads,
        "caches": caches,
        "reference": _version_json(reference),
        "current": _version_json(current),
        "median_spread_pct": round(float(np.median(spreads)), 2) if spreads else math.nan,
        "cases": [c.to_json() for c in comparisons],
    }


CACHES_SHOWN = {
    "warm": "caches: warm (each build's code and maps stay cached between runs)",
    "l2_evicted": "caches: the core's L2 written over before every run",
    "llc_evicted": "caches: the last-level cache written over before every run",
}


def render_gate(document: dict) -> str:
    """The human table of a gate document (rendered from the JSON, never measured twice)."""
    limit = 1 + document["threshold_pct"] / 100
    rows = [
        [
            case["case"],
            f"{case['reference_ns_median']:.0f}",
            f"{case['current_ns_median']:.0f}",
            f"{case['ratio']:.3f}",
            f"[{case['interval'][0]:.3f}, {case['interval'][1]:.3f}]",
            f"{case['spread_pct']:.1f}%",
            case["verdict"],
        ]
        for case in document["cases"]
    ]
    header = ["case", "ref ns", "cur ns", "ratio", "95% interval", "spread", "verdict"]
    lines = [
        f"reference: {document['reference']['label']}   current: {document['current']['label']}",
        CACHES_SHOWN[document.get("caches", WARM)],
        table(header, rows),
    ]
    verdict = document["verdict"]
    explanation = {
        "pass": f"every case is below the minimum effect ({limit:.2f}x) with {document['confidence']:.0%} confidence",
        "fail": f"a case is significantly slower and by more than the minimum effect ({limit:.2f}x)",
        "inconclusive": "too noisy to tell at this many rounds; not a failure (rerun on a quieter machine)",
    }[verdict]
    confirmed = [case["case"] for case in document["cases"] if case.get("first_pass")]
    if confirmed:
        lines.append(f"measured again on fresh loads after a first-pass failure: {', '.join(confirmed)}")
    lines.append(f"gate: {verdict.upper()}: {explanation}")
    return "\n".join(lines)
