"""What ``xhdr fuzz`` writes: the summary document first, then the terminal text and markdown rendered from it.

The document (``--json``) is what CI keeps; the text and ``--markdown`` (a CI job summary, like
``xhdr verify --markdown``) are views of it, so a figure added to the document reaches both.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from fuzz.differential import Campaign

Summary = dict[str, Any]
CLASS_FORMAT = "outcome/event flags/slot flags/events"
OTHER = "Hypothesis's engine between examples (choosing, the database, shrinking) and the progress line"


@dataclasses.dataclass(frozen=True)
class Setting:
    """How the campaign ran, as the summary reports it."""

    target: str
    seed: int | None
    database: str | None  # where failures are kept and replayed from; None when a seed turned it off
    defines: tuple[str, ...]


def build_summary(
    campaign: Campaign, setting: Setting, saved: list[Path], lab_frames: int, lab_lines: list[str]
) -> Summary:
    """The machine-readable result: throughput, the time split, outcome classes, failures, the lab sample."""
    progress = campaign.progress
    split = campaign.clock.split()
    wall = split.pop("wall") or 1e-9
    first = progress.first_failure
    return {
        "tool": "xhdr fuzz",
        **dataclasses.asdict(setting),
        "examples": progress.examples,
        "frames": progress.frames,
        "seconds": round(wall, 3),
        "examples_per_second": round(progress.examples / wall, 1),
        "frames_per_second": round(progress.frames / wall, 1),
        # differential examples: the Hypothesis examples' own items plus the mutants made of them (--mutants)
        "compared": progress.compared,
        "compared_per_second": round(progress.compared / wall, 1),
        "time_split_seconds": {stage: round(seconds, 3) for stage, seconds in split.items()},
        "outcome_classes": sorted(progress.classes),
        "first_failure_at_example": first[0] if first else None,
        "first_failure_after_seconds": round(first[1], 3) if first else None,
        "repros": [str(path) for path in saved],
        "lab_sample": {"frames": lab_frames, "modes": 2, "differences": lab_lines},
        "coverage": _coverage(campaign),
    }


def _coverage(campaign: Campaign) -> dict[str, Any] | None:
    """Which labelled branches of bpf/xhdr.c ran (a coverage build only): counts, the never-hit labels, and
    ``over_time`` as [seconds, examples, labels hit] each time a label was first hit, for a plot."""
    track = campaign.coverage
    if track is None:
        return None
    totals = track.totals()
    progress = campaign.progress
    over_time = [list(sample) for sample in track.over_time]
    over_time.append([round(progress.elapsed, 3), progress.examples, len(track.covered)])
    return {
        "feedback": track.feedback,
        "labels": len(totals),
        "hit": len(track.covered),
        "never_hit": [label for label in totals if label not in track.covered],
        "hits": totals,
        "over_time": over_time,
    }


def _coverage_line(coverage: dict[str, Any]) -> str:
    how = "as feedback to Hypothesis" if coverage["feedback"] else "reported only"
    share = coverage["hit"] / (coverage["labels"] or 1)
    return f"coverage ({how}): {coverage['hit']}/{coverage['labels']} labelled branches hit ({share:.0%})"


def _time_rows(summary: Summary) -> list[tuple[str, float, float, float]]:
    """(stage, seconds, share of the total, milliseconds per example) for each stage of the split."""
    split = summary["time_split_seconds"]
    total = sum(split.values()) or 1e-9
    examples = summary["examples"] or 1
    return [(stage, seconds, seconds / total, seconds * 1000 / examples) for stage, seconds in split.items()]


def _counted(count: int, noun: str, nouns: str = "") -> str:
    """``1 noun`` or ``N nouns`` (``nouns`` defaults to noun + s)."""
    return f"{count} {noun}" if count == 1 else f"{count} {nouns or noun + 's'}"


def _classes(summary: Summary) -> str:
    return _counted(len(summary["outcome_classes"]), "outcome class", "outcome classes")


def _lab_line(lab: dict[str, Any]) -> str:
    verdict = _counted(len(lab["differences"]), "difference") if lab["differences"] else "all agree"
    return f"lab sample: {lab['frames']} frames over veth, native and generic: {verdict}"


def _failure_line(summary: Summary) -> str:
    if summary["first_failure_at_example"] is None:
        return "no disagreement"
    return (
        f"first disagreement at example {summary['first_failure_at_example']} "
        f"after {summary['first_failure_after_seconds']:.2f}s"
    )


def _database_line(summary: Summary) -> str:
    if summary["database"] is None:
        return f"example database off (--seed {summary['seed']}: a seeded run neither replays nor keeps failures)"
    return f"example database {summary['database']} (its failures are replayed first)"


def render_text(summary: Summary) -> str:
    """The lines printed at the end of a campaign."""
    shares = ", ".join(f"{stage} {share:.0%}" for stage, _, share, _ in _time_rows(summary))
    figures = (
        f"{summary['examples']} examples ({summary['frames']} frames) in {summary['seconds']:.1f}s: "
        f"{summary['examples_per_second']} examples/s, {summary['frames_per_second']} frames/s, "
        f"{summary.get('compared_per_second')} differential items/s; "
        f"{_classes(summary)}; time: {shares}"
    )
    lines = [
        figures,
        f"{_failure_line(summary)}; {_database_line(summary)}",
        *(f"disagreement saved: {path}" for path in summary["repros"]),
    ]
    lab = summary["lab_sample"]
    if lab["frames"]:
        lines.append(_lab_line(lab))
        lines += [f"  {line}" for line in lab["differences"]]
    coverage = summary.get("coverage")
    if coverage:
        lines.append(_coverage_line(coverage))
        if coverage["never_hit"]:
            lines.append(f"  never hit: {', '.join(coverage['never_hit'])}")
    return "\n".join(lines)


def render_markdown(summary: Summary) -> str:
    """A GitHub-flavoured summary for CI: figures, the time split, failures, then the outcome classes."""
    verdict = _counted(len(summary["repros"]), "disagreement") if summary["repros"] else "no disagreement"
    build = " ".join(f"`-D{define}`" for define in summary["defines"]) or "the real build"
    figures = [
        summary["examples"],
        summary["frames"],
        f"{summary['seconds']:.1f}",
        summary["examples_per_second"],
        summary["frames_per_second"],
        len(summary["outcome_classes"]),
    ]
    out = [
        f"### xhdr fuzz: target `{summary['target']}`, {verdict}",
        "",
        "| examples | frames | seconds | examples/s | frames/s | outcome classes |",
        "|--:|--:|--:|--:|--:|--:|",
        "| " + " | ".join(str(figure) for figure in figures) + " |",
        "",
        "| time | seconds | share | ms per example |",
        "|:--|--:|--:|--:|",
        *(
            f"| {stage} | {seconds:.2f} | {share:.0%} | {per_example:.2f} |"
            for stage, seconds, share, per_example in _time_rows(summary)
        ),
        "",
        f"_other_: {OTHER}.",
        "",
        f"- build: {build}",
        f"- {_failure_line(summary)}",
        f"- {_database_line(summary)}",
        *(f"- repro: `{path}`" for path in summary["repros"]),
    ]
    lab = summary["lab_sample"]
    if lab["frames"]:
        out.append(f"- {_lab_line(lab)}")
    if lab["differences"]:
        out += ["", "```", *lab["differences"], "```"]
    coverage = summary.get("coverage")
    if coverage:
        never = " ".join(f"`{label}`" for label in coverage["never_hit"]) or "none"
        out += ["", f"{_coverage_line(coverage)}; never hit: {never}"]
    out += [
        "",
        f"<details><summary>{_classes(summary)} ({CLASS_FORMAT})</summary>",
        "",
        *(f"- `{name}`" for name in summary["outcome_classes"]),
        "",
        "</details>",
    ]
    return "\n".join(out) + "\n"
