"""What ``xhdr verify`` writes: the JSON document first, then the table, markdown and gate rendered from it.

The JSON is the product (like veristat's CSV): a later run compares against it offline, CI keeps it as an
artifact, and a baseline is simply an earlier document. Every renderer and the gate read the statistics
through ``verifier.STATS``, so adding a statistic adds it everywhere.
"""

from __future__ import annotations

import csv
import io
import json
import platform
from collections.abc import Sequence
from pathlib import Path

from harness.cli.textui import table
from harness.core.config import ConfigError, read_input
from harness.core.provenance import commit_of
from harness.verify.verifier import STATS, VariantResult

SCHEMA = 1
DEFAULT_THRESHOLD_PCT = 10.0

Document = dict[str, object]


def build_document(
    results: list[VariantResult], *, least_privilege: bool, sources: Sequence[Path] = ()
) -> Document:
    """The machine-readable result of one run; ``commit`` is the first source's repository's, so results of
    several commits can be told apart side by side (`xhdr report`)."""
    return {
        "tool": "xhdr verify",
        "schema": SCHEMA,
        "kernel": platform.release(),
        "commit": commit_of(sources[0].resolve().parent) if sources else commit_of(),
        "least_privilege": least_privilege,
        "statistics": {stat.name: stat.doc for stat in STATS},
        "variants": [result.to_json() for result in results],
        "gate": None,
    }


def variants(document: Document) -> list[dict]:
    return list(document["variants"])  # type: ignore[arg-type]


# -- tables ------------------------------------------------------------------------------------------


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _rows(document: Document, per_program: bool) -> tuple[list[str], list[list[str]]]:
    columns = [stat for stat in STATS if stat.shown]
    header = ["variant", "result", *(stat.header for stat in columns)]
    rows: list[list[str]] = []
    for variant in variants(document):
        result = "ok" if variant["accepted"] else "REJECTED"
        rows.append([variant["key"], result, *(_cell(variant["stats"].get(stat.name)) for stat in columns)])
        if per_program:
            for program in variant["programs"]:
                outcome = "ok" if program["accepted"] else "REJECTED"
                cells = [_cell(program["stats"].get(s.name)) if s.scope == "program" else "" for s in columns]
                rows.append([f"  {program['name']}", outcome, *cells])
    return header, rows


def render_table(document: Document, *, per_program: bool = False) -> str:
    """One line per variant (and per program with ``per_program``), numbers right-aligned."""
    header, rows = _rows(document, per_program)
    return table(header, rows, rule=False, right=range(2, len(header)))


def render_markdown(document: Document) -> str:
    """A GitHub-flavoured table for CI job summaries, with the rejections and the gate below it."""
    header, rows = _rows(document, per_program=False)
    out = [
        f"### xhdr verify on Linux {document['kernel']}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":--", ":--", *("--:" for _ in header[2:])]) + "|",
        *(
            "| " + " | ".join(f"`{row[0]}`" if i == 0 else cell for i, cell in enumerate(row)) + " |"
            for row in rows
        ),
    ]
    rejected = render_rejections(document)
    if rejected:
        out += ["", "```", rejected, "```"]
    gate = document.get("gate")
    if gate:
        out += ["", "```", render_baseline_gate(gate), "```"]  # type: ignore[arg-type]
    return "\n".join(out) + "\n"


def render_rejections(document: Document) -> str:
    """For each rejected variant: its name and -D values, the verifier's reason, where, and the log before it."""
    blocks: list[str] = []
    for variant in variants(document):
        rejection = variant["rejection"]
        if rejection is None:
            continue
        defines = " ".join(flag for flag in variant["cflags"] if flag.startswith("-D")) or "(no -D values)"
        block = [
            f"REJECTED {variant['key']}: program {rejection['program']}",
            f"  built with: {defines}",
            f"  verifier:   {rejection['error']}",
        ]
        if rejection["source_line"]:
            block.append(f"  at:         {rejection['source_line']}")
        block.append("  last lines of the verifier log:")
        block += [f"    {line}" for line in rejection["log_tail"]]
        blocks.append("\n".join(block))
    return "\n\n".join(blocks)


# -- CSV -------------------------------------------------------------------------------------------------


def program_rows(document: Document) -> list[dict]:
    """One flat row per program (veristat's CSV shape): the variant, the verdict, every statistic of
    STATS (a variant-scope one repeated on each of its programs) and the verifier's message."""
    rows = []
    for variant in variants(document):
        for program in variant["programs"]:
            row = {"key": variant["key"], "program": program["name"], "accepted": program["accepted"]}
            for stat in STATS:
                where = program["stats"] if stat.scope == "program" else variant["stats"]
                row[stat.name] = where.get(stat.name)
            row["error"] = program["error"]
            rows.append(row)
    return rows


def render_csv(rows: list[dict]) -> str:
    """A header line, then one line per row; None is an empty field."""
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return out.getvalue()


# -- the baseline gate -------------------------------------------------------------------------------


def load_baseline(path: Path, what: str = "baseline file") -> Document:
    """An earlier ``--json`` document (``what``: how errors name it); checked before anything is compiled."""
    text = read_input(path, what, f"write one with `xhdr verify --json {path}`")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{what} {path} is not JSON: {error}") from None
    if (
        not isinstance(document, dict)
        or document.get("tool") != "xhdr verify"
        or not isinstance(document.get("variants"), list)
    ):
        raise ConfigError(f"{what} {path} is not the JSON of `xhdr verify --json`")
    return document


def baseline_gate(document: Document, baseline: Document, threshold_pct: float) -> dict:
    """Per-variant deltas of the compared statistics, and the one-line failures of the gate.

    A variant fails when it was accepted in the baseline and is rejected now, or when a ``gate`` statistic
    grew by more than ``threshold_pct`` percent. Variants the baseline does not know are listed, not failed.
    Each row is a variant's total (``program`` None) or, below it, one of its programs the baseline also
    has (shown by ``--compare``; only the totals gate).
    """
    before = {variant["key"]: variant for variant in variants(baseline)}
    partners = _renamed(before, [variant["key"] for variant in variants(document)])
    compared = [stat for stat in STATS if stat.compare]
    rows: list[dict] = []
    failures: list[str] = []
    new: list[str] = []
    for variant in variants(document):
        key = variant["key"]
        old = before.get(key) or before.get(partners.get(key, ""))
        if old is None:
            new.append(key)
            continue
        if key in partners:
            key = f"{key} (was {partners[key]})"
        if old["accepted"] and not variant["accepted"]:
            error = variant["rejection"]["error"] if variant["rejection"] else "rejected"
            failures.append(f"{key}: accepted in the baseline, now rejected by the verifier ({error})")
        old_programs = {program["name"]: program for program in old.get("programs", [])}
        pairs = [(None, old["stats"], variant["stats"])] + [
            (program["name"], old_programs[program["name"]]["stats"], program["stats"])
            for program in variant.get("programs", [])
            if program["name"] in old_programs
        ]
        for name, old_stats, new_stats in pairs:
            for stat in compared:
                if name is not None and stat.scope != "program":
                    continue
                row = _delta_row(key, name, stat.name, old_stats.get(stat.name), new_stats.get(stat.name))
                if row is None:
                    continue
                rows.append(row)
                was, now, pct = row["baseline"], row["now"], row["pct"]
                if name is None and stat.compare == "gate" and pct > threshold_pct:
                    failures.append(
                        f"{key}: {stat.name} grew {was} -> {now} ({now - was:+d}, {pct:+.1f}%), "
                        f"past the {threshold_pct:+g}% threshold"
                    )
    return {
        "baseline_kernel": baseline.get("kernel"),
        "threshold_pct": threshold_pct,
        "rows": rows,
        "new_variants": new,
        "failures": failures,
        "passed": not failures,
    }


def _renamed(before: dict[str, dict], keys: list[str]) -> dict[str, str]:
    """Variants of a file whose name changed (``old.bpf.o/default`` then ``new.bpf.o/default``): each key the
    baseline lacks, paired with the one key of the baseline that no key has and that has the same variant."""
    missing = [key for key in before if key not in keys]
    pairs = {}
    for key in keys:
        if key in before:
            continue
        same = [old for old in missing if old.rsplit("/", 1)[-1] == key.rsplit("/", 1)[-1]]
        if len(same) == 1:
            pairs[key] = same[0]
            missing.remove(same[0])
    return pairs


def _delta_row(key: str, program: str | None, stat: str, was: int | None, now: int | None) -> dict | None:
    if was is None or now is None:
        return None
    pct = (now - was) * 100.0 / was if was else (0.0 if now == was else float("inf"))
    return {
        "key": key,
        "program": program,
        "stat": stat,
        "baseline": was,
        "now": now,
        "delta": now - was,
        "pct": pct,
    }


def render_baseline_gate(gate: dict, *, per_program: bool = False, gated: bool = True) -> str:
    """The compare table (veristat -C style), one line per variant (and per program), then the verdict.

    The gated statistic shows baseline, now and percent; the others their signed change and percent.
    ``gated=False`` (``--compare`` without ``--threshold``) ends with the failures as notes, not a verdict.
    """
    compared = [stat for stat in STATS if stat.compare]
    by_key: dict[str, dict[str, dict]] = {}
    for row in gate["rows"]:
        program = row.get("program")
        if program is not None and not per_program:
            continue
        label = row["key"] if program is None else f"  {program}"
        by_key.setdefault(f"{row['key']}\0{program or ''}", {"": {"label": label}})[row["stat"]] = row
    header = ["variant"]
    for stat in compared:
        header += (
            [f"{stat.header} base", f"{stat.header} now", "%"]
            if stat.compare == "gate"
            else [f"Δ{stat.header}"]
        )
    rows: list[list[str]] = []
    for stats in by_key.values():
        cells = [stats[""]["label"]]
        for stat in compared:
            row = stats.get(stat.name)
            if stat.compare == "gate":
                cells += (
                    [str(row["baseline"]), str(row["now"]), f"{row['pct']:+.1f}"] if row else ["-", "-", "-"]
                )
            else:
                cells.append(
                    f"{row['delta']:+d} ({row['pct']:+.1f}%)"
                    if row and row["delta"]
                    else ("0" if row else "")
                )
        rows.append(cells)
    lines = [table(header, rows, rule=False, right=range(1, len(header)))]
    lines += [f"new (not in the baseline): {key}" for key in gate["new_variants"]]
    if not gated:
        lines += [f"regression (no gate without --threshold): {failure}" for failure in gate["failures"]]
    elif gate["passed"]:
        lines.append(
            f"gate passed: no variant grew past {gate['threshold_pct']:+g}% verified instructions or flipped"
        )
    else:
        lines += [f"GATE FAILED {failure}" for failure in gate["failures"]]
    return "\n".join(lines)
