"""PNG plots rendered from result rows (bench/results.py), the gate, verify and fuzz documents and
pytest-benchmark's stored history.

Each plot answers one question a reader has. Every function takes data, never measures, and returns a
``Plot`` (the file, its title and the metrics it draws, each declared in reports/metrics.py: axis labels,
units and directions are read from there) or None when the data it needs is absent, so a suite that did not
run has no plot and no plot is empty. Plots are sized for a web page at 100 dpi.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from bench.cache_cost import WARM
from bench.results import ResultFile, Row, measured_program, per_round
from bench.targets import STANDARD_RATIO
from reports.metrics import METRICS, method_label

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

KERNEL_SUITE = "kernel_cost"
COLOURS = {"extractor": "#d62728", "empty": "#7f7f7f"}
# Segments of the stacked CPU bars, in drawing order, each with its colour.
SEGMENTS = {
    "hook_cost_ns": "#9ecae1",
    "program_cost_ns": "#d62728",
    "logger_cost_ns": "#ff9896",
    "kernel_delivery_cost_ns": "#6baed6",
    "process_cpu_ns_per_request": "#fdae6b",
    "softirq_cpu_ns_per_request": "#9ecae1",
    "nginx_cpu_ns_per_request": "#c7c7c7",
    "logger_cpu_ns_per_request": "#ff9896",
}
# What a logged request costs: the extractor's parts, and a capture's.
EXTRACTOR_PARTS = ("hook_cost_ns", "program_cost_ns", "logger_cost_ns")
CAPTURE_PARTS = ("kernel_delivery_cost_ns", "process_cpu_ns_per_request")
DPI = 100


@dataclasses.dataclass(frozen=True)
class Plot:
    path: Path
    title: str
    metrics: tuple[str, ...]  # every one declared in reports/metrics.py

    def to_json(self) -> dict:
        return {"file": self.path.name, "title": self.title, "metrics": list(self.metrics)}


def _pyplot() -> ModuleType:
    """matplotlib.pyplot, imported when the first plot is drawn rather than with this module.

    Every ``xhdr`` command imports this module (to register ``report``), and importing matplotlib reads its
    configuration directory, warning on stderr when the home directory is not writable.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    return matplotlib.pyplot


def _style(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)


def _save(fig: Figure, path: Path, title: str, metrics: Iterable[str]) -> Plot:
    names = tuple(dict.fromkeys(metrics))
    for name in names:
        METRICS[name]
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")  # legends placed below an axis stay in the picture
    _pyplot().close(fig)
    return Plot(path, title, names)


def _height(frame: float, per_bar: float, bars: int) -> float:
    """Inches for a plot of horizontal bars: room for the title, axis and legend, then each bar."""
    return max(3.2, frame + per_bar * bars)


def _name(text: str) -> str:
    return text.replace("_", " ")


def linear_fit(points: Sequence[tuple[float, float]]) -> dict[str, float] | None:
    """Least-squares line y = slope * x + intercept and its R^2: how linear the scanning cost is."""
    if len(points) < 3:
        return None
    x = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = ((y - y.mean()) ** 2).sum()
    r2 = 1 - (residual**2).sum() / total if total else 1.0
    return {"slope": float(slope), "intercept": float(intercept), "r2": float(r2), "points": len(points)}


def suite_rows(files: Iterable[ResultFile], suite: str) -> list[Row]:
    """The rows of one suite (the last file of it given wins: a suite is one run)."""
    found = [file for file in files if file.suite == suite]
    return list(found[-1].rows) if found else []


def kernel_rows(files: Iterable[ResultFile]) -> list[Row]:
    return suite_rows(files, KERNEL_SUITE)


def _series(
    rows: Iterable[Row], group: str, x_param: str, metric_name: str
) -> dict[str, list[tuple[float, float]]]:
    """method -> sorted (x, value) points of one sweep."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row in rows:
        if row.metric == metric_name and row.params.get("group") == group and x_param in row.params:
            series[row.method].append((float(row.params[x_param]), row.value))
    return {method: sorted(points) for method, points in series.items()}


SWEEPS = {"frame_size": ("s", "one header growing"), "header_count": ("o", "more header lines")}


def scanning_linearity(files: Sequence[ResultFile]) -> dict[str, dict[str, float] | None]:
    """Fits of extractor cost against bytes scanned, per sweep, below the scan limit."""
    rows = kernel_rows(files)
    return {
        group: linear_fit(
            _series(rows, group, "bytes_scanned", "ns_per_packet").get(measured_program(rows), [])
        )
        for group in SWEEPS
    }


# -- the key result: CPU per logged request, nginx ------------------------------------------------------


def _stack(
    ax: Axes, bars: list[tuple[str, dict[str, float], float | None]], segments: Sequence[str]
) -> list[str]:
    """Horizontal stacked bars, one per (label, segment values, total), the total written at each bar's end;
    returns the segments drawn. When one bar dwarfs the others (the Python captures next to the rest) the axis
    stops at a few times the others' largest and the longer bars are cut, their totals still written."""
    drawn = []
    y = np.arange(len(bars))
    left = np.zeros(len(bars))
    for segment in segments:
        values = np.array([max(parts.get(segment, 0.0), 0.0) for _, parts, _ in bars])
        if not values.any():
            continue
        ax.barh(
            y, values, left=left, color=SEGMENTS[segment], label=METRICS[segment].label, edgecolor="white"
        )
        left += values
        drawn.append(segment)
    ordered = np.sort(left)
    small = ordered[ordered <= 10 * max(ordered[0], 1e-9)]
    limit = left.max() * 1.15 if left.max() > 0 else 1.0
    if len(small) < len(left) and small.size:
        limit = small.max() * 2.5
    for yi, (_, parts, total) in zip(y, bars, strict=True):
        shown = total if total is not None else sum(parts.values())
        cut = left[yi] > limit
        text = f"{shown:,.0f} →" if cut else f" {shown:,.0f}"
        at = limit if cut else left[yi]
        ax.annotate(
            text,
            (at, yi),
            va="center",
            ha="right" if cut else "left",
            fontsize=8,
            color="white" if cut else "black",
            fontweight="bold" if cut else "normal",
        )
    ax.set_yticks(y, [label for label, _, _ in bars], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, limit)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=len(drawn), frameon=False)
    return drawn


def logged_request_bars(files: Sequence[ResultFile]) -> list[tuple[str, dict[str, float], float | None]]:
    """Lab rows as stacked bars: (label, CPU per logged request by part, the suite's own total) per method;
    the extractor's parts are hook, program and consumer, a capture's are delivery and its process."""
    rows = suite_rows(files, "lab_throughput")
    bars: list[tuple[str, dict[str, float], float | None]] = []
    ours = [
        r
        for r in rows
        if r.method == "extractor" and r.metric in (*EXTRACTOR_PARTS, "cpu_ns_per_logged_request")
    ]
    for mode, output in dict.fromkeys(lab_leg(r) for r in ours):
        leg = {r.metric: r.value for r in ours if lab_leg(r) == (mode, output)}
        total = leg.pop("cpu_ns_per_logged_request", None)
        bars.append((lab_leg_label(mode, output), leg, total))
    for baseline in dict.fromkeys(r.method for r in rows if r.metric == "kernel_delivery_cost_ns"):
        parts = {part: _value(rows, baseline, part) or 0.0 for part in CAPTURE_PARTS}
        bars.append((method_label(baseline), parts, _value(rows, baseline, "cpu_ns_per_logged_request")))
    return bars


def lab_leg(row: Row) -> tuple[str, str]:
    """An extractor row's XDP mode and what its xhdr log wrote (JSON lines where older results do not say)."""
    return row.params.get("mode", ""), row.params.get("output", "json")


def lab_leg_label(mode: str, output: str) -> str:
    """How the plot and the headline name an extractor leg of the lab."""
    written = "" if output == "json" else f", xhdr log --{output}"
    return f"extractor, {mode} XDP{written}"


def lab_by_leg(rows: Iterable[Row], metric: str) -> dict[tuple[str, str], float]:
    """An extractor metric of the lab per leg (XDP mode, output)."""
    return {lab_leg(r): r.value for r in rows if r.method == "extractor" and r.metric == metric}


def cpu_per_logged_request(files: Sequence[ResultFile], out: Path) -> Plot | None:
    """Lab: CPU per logged request per method, split into what each part costs (the extractor: hook, program,
    consumer; a capture: kernel delivery, its process parsing and writing)."""
    bars = logged_request_bars(files)
    if not bars:
        return None
    fig, ax = _pyplot().subplots(figsize=(10, _height(2.0, 0.55, len(bars))))
    drawn = _stack(ax, bars, [*EXTRACTOR_PARTS, *CAPTURE_PARTS])
    title = "CPU per logged request (lab: trafgen bursts of the standard request over veth)"
    _style(ax, title, METRICS["cpu_ns_per_logged_request"].axis, "")
    return _save(fig, out / "cpu_per_logged_request.png", title, ["cpu_ns_per_logged_request", *drawn])


def _value(rows: Iterable[Row], method: str, metric: str, **params: object) -> float | None:
    for row in rows:
        if (
            row.method == method
            and row.metric == metric
            and all(row.params.get(k) == v for k, v in params.items())
        ):
            return row.value
    return None


def nginx_throughput(files: Sequence[ResultFile], out: Path) -> Plot | None:
    """nginx under wrk: requests/s relative to no logging (median bar, one dot per round), and the CPU each
    request costs (nginx, the logger, softirq) per method."""
    rows = suite_rows(files, "http_nginx")
    methods = list(dict.fromkeys(r.method for r in rows if r.metric == "rps_ratio_to_no_logging"))
    if not methods:
        return None
    fig, (left, right) = _pyplot().subplots(1, 2, figsize=(12, _height(2.4, 0.5, len(methods))))
    y = np.arange(len(methods))
    medians = [_value(rows, m, "rps_ratio_to_no_logging") or 0.0 for m in methods]
    colours = [COLOURS["extractor"] if m.startswith("extractor") else "#1f77b4" for m in methods]
    left.barh(y, medians, color=colours, alpha=0.8)
    drawn = ["rps_ratio_to_no_logging"]
    for yi, method in zip(y, methods, strict=True):
        rounds = per_round(rows, method, "rps_ratio_round")
        if rounds:
            left.scatter(rounds, [yi] * len(rounds), color="black", s=14, zorder=3)
            drawn.append("rps_ratio_round")
        end = max([medians[yi], *rounds]) + 0.02
        left.annotate(f" {medians[yi]:.2f}x", (end, yi), va="center", fontsize=8)
    left.axvline(1.0, color="black", linewidth=1)
    left.set_yticks(y, [method_label(m) for m in methods], fontsize=8)
    left.invert_yaxis()
    left.set_xlim(0, max(1.2, max(medians) * 1.2))
    _style(
        left,
        "nginx requests/s relative to no logging (dots: rounds)",
        METRICS["rps_ratio_to_no_logging"].axis,
        "",
    )
    every = list(dict.fromkeys(["no_logging", *methods]))
    bars = []
    for method in every:
        parts = {
            r.metric: r.value
            for r in rows
            if r.method == method
            and r.metric
            in ("nginx_cpu_ns_per_request", "logger_cpu_ns_per_request", "softirq_cpu_ns_per_request")
        }
        if parts:
            bars.append((method_label(method), parts, None))
    if bars:
        stacked = _stack(
            right,
            bars,
            ["nginx_cpu_ns_per_request", "softirq_cpu_ns_per_request", "logger_cpu_ns_per_request"],
        )
        drawn += stacked
        _style(right, "CPU per request under wrk", "CPU per request (ns), lower is better", "")
    else:
        right.set_visible(False)
    title = "nginx with wrk: throughput kept and CPU per request, per way of logging"
    return _save(fig, out / "nginx.png", title, drawn)


# -- kernel cost ---------------------------------------------------------------------------------------------


def cost_vs_payload(files: Sequence[ResultFile], out: Path) -> Plot | None:
    """Kernel test run: the measured program's ns per packet against payload bytes scanned, both sweeps, with
    their least-squares lines, and the empty program's floor."""
    rows = kernel_rows(files)
    program = measured_program(rows)
    fig = None
    for group, (marker, label) in SWEEPS.items():
        points = _series(rows, group, "bytes_scanned", "ns_per_packet").get(program, [])
        if not points:
            continue
        if fig is None:
            fig, ax = _pyplot().subplots(figsize=(9.5, 4.5))
        x, y = zip(*points, strict=True)
        line = ax.scatter(x, y, marker=marker, label=f"{program}: {label}")
        fit = linear_fit(points)
        if fit:
            xs = np.linspace(0, max(x), 50)
            ax.plot(
                xs,
                fit["slope"] * xs + fit["intercept"],
                linestyle="--",
                linewidth=1,
                color=line.get_facecolor()[0],
                label=f"fit: {fit['slope']:.2f} ns/byte + {fit['intercept']:.0f} ns, R² {fit['r2']:.3f}",
            )
    if fig is None:
        return None
    floor = [r.value for r in rows if r.method == "empty" and r.metric == "ns_per_packet"]
    if floor:
        ax.axhline(float(np.median(floor)), color=COLOURS["empty"], linewidth=1, label="empty XDP program")
    metric = METRICS["ns_per_packet"]
    title = f"{program.capitalize()} cost against payload bytes scanned (kernel, BPF_PROG_TEST_RUN)"
    _style(ax, title, "payload bytes scanned", metric.axis)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return _save(fig, out / "cost_vs_payload.png", title, ["ns_per_packet"])


def cost_by_case(files: Sequence[ResultFile], out: Path) -> Plot | None:
    """Bars for the standard request, each configured-header count, each rule set (R27), the worst cases and a
    TLS ClientHello, floor beside them."""
    rows = kernel_rows(files)
    wanted = [
        r
        for r in rows
        if r.metric == "ns_per_packet"
        and r.params.get("group") in ("standard", "configured", "rules", "worst", "tls")
    ]
    if not wanted:
        return None
    program = measured_program(rows)
    names = list(dict.fromkeys(r.params["case"] for r in wanted))
    value = {(r.params["case"], r.method): r.value for r in wanted}
    ratio = {r.params["case"]: r.value for r in rows if r.metric == "ratio_to_empty"}
    fig, ax = _pyplot().subplots(figsize=(10, 4.5))
    x = np.arange(len(names))
    measured = [value.get((n, program), 0) for n in names]
    ax.bar(x - 0.2, measured, 0.4, label=program, color=COLOURS["extractor"])
    ax.bar(
        x + 0.2,
        [value.get((n, "empty"), 0) for n in names],
        0.4,
        label="empty program",
        color=COLOURS["empty"],
    )
    for xi, name, height in zip(x, names, measured, strict=True):
        if name in ratio:
            ax.annotate(f"{ratio[name]:.0f}x", (xi - 0.2, height), ha="center", va="bottom", fontsize=8)
    floor = value.get(("standard", "empty"))
    if floor and program == "extractor":  # the targets are the extractor's (issue 9), not a user's program's
        ax.axhline(
            STANDARD_RATIO * floor,
            color="#2ca02c",
            linestyle="--",
            linewidth=1,
            label=f"target: standard request at most {STANDARD_RATIO:g}x the empty program",
        )
    ax.set_xticks(x, [_name(n) for n in names], rotation=30, ha="right", fontsize=8)
    title = f"Kernel cost by case (labels: {program} / empty program)"
    _style(ax, title, "", METRICS["ns_per_packet"].axis)
    ax.legend(fontsize=8)
    return _save(fig, out / "cost_by_case.png", title, ["ns_per_packet", "ratio_to_empty"])


def baselines(files: Sequence[ResultFile], out: Path) -> Plot | None:
    """The same frame parsed by the extractor (test run) and by each user-space parser (in a loop)."""
    rows = [r for r in suite_rows(files, "baselines") if r.metric == "ns_per_packet"]
    if not rows:
        return None
    rows.sort(key=lambda r: r.value)
    fig, ax = _pyplot().subplots(figsize=(9.5, _height(1.2, 0.5, len(rows))))
    y = np.arange(len(rows))
    ax.barh(y, [r.value for r in rows], color=[COLOURS.get(r.method, "#1f77b4") for r in rows])
    for yi, row in zip(y, rows, strict=True):
        ax.annotate(f" {row.value:,.0f}", (row.value, yi), va="center", fontsize=8)
    ax.set_yticks(y, [method_label(r.method) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    metric = METRICS["ns_per_packet"]
    title = "Parsing one request: extractor (test run) against user-space parsers, same frame, log scale"
    _style(ax, title, f"{metric.label} ({metric.unit}, log scale), {metric.direction}", "")
    ax.set_xlim(right=max(r.value for r in rows) * 4)
    return _save(fig, out / "baselines.png", title, ["ns_per_packet"])


def consumer(files: Sequence[ResultFile], out: Path, target: float) -> Plot | None:
    """Events per second one consumer writes, per output format, against the target."""
    rows = [r for r in suite_rows(files, "consumer") if r.metric == "events_per_second"]
    if not rows:
        return None
    fig, ax = _pyplot().subplots(figsize=(8, _height(1.4, 0.5, len(rows))))
    y = np.arange(len(rows))
    ax.barh(y, [r.value for r in rows], color="#1f77b4")
    ax.axvline(target, color="#2ca02c", linestyle="--", linewidth=1, label=f"target {target:,.0f} (JSON)")
    ax.set_yticks(y, [str(r.params.get("format", r.method)) for r in rows], fontsize=8)
    ax.invert_yaxis()
    title = "xhdr log's consumer alone: a full ring buffer into lines on a file"
    _style(ax, title, METRICS["events_per_second"].axis, "")
    ax.legend(fontsize=8)
    return _save(fig, out / "consumer.png", title, ["events_per_second"])


def caches(files: Sequence[ResultFile], out: Path) -> Plot | None:
    """The standard request per cache state (bench/cache_cost.py): the measured program's (the extractor's or a
    user's) and the empty program's time per run side by side, each measured bar labelled with what the cold
    caches added to its own work."""
    rows = suite_rows(files, "cache_cost")
    measured = measured_program(rows)
    runs = {(r.method, r.params["caches"]): r.value for r in rows if r.metric == "ns_per_run"}
    penalty = {r.params["caches"]: r.value for r in rows if r.metric == "cache_penalty_ns"}
    states = list(dict.fromkeys(state for _, state in runs))
    if not states:
        return None
    fig, ax = _pyplot().subplots(figsize=(8, _height(1.6, 0.7, len(states))))
    y = np.arange(len(states))
    for offset, method in ((-0.2, measured), (0.2, "empty")):
        values = [runs.get((method, state), np.nan) for state in states]
        colour = COLOURS.get(method, COLOURS["extractor"])
        ax.barh(y + offset, values, height=0.4, color=colour, label=method_label(method))
        for yi, state, value in zip(y, states, values, strict=True):
            added = (
                f" (the caches add {penalty[state]:,.0f})" if method == measured and state in penalty else ""
            )
            ax.annotate(f" {value:,.0f}{added}", (value, yi + offset), va="center", fontsize=8)
    ax.set_yticks(y, [_name(state) for state in states], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(right=max(runs.values()) * 6)
    metric = METRICS["ns_per_run"]
    title = "The standard request with the core's caches written over before each run"
    _style(ax, title, f"{metric.label} ({metric.unit}, log scale), {metric.direction}", "")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, out / "caches.png", title, ["ns_per_run", "cache_penalty_ns"])


# -- the gate, the verifier, the fuzzer ----------------------------------------------------------------------


def cold_gate(gate: dict) -> str:
    """ ", caches STATE" for a gate measured with cold caches (``--caches``), nothing for a warm one."""
    return "" if gate.get("caches", WARM) == WARM else f", caches {gate['caches']}"


def gate_plot(document: dict, out: Path) -> Plot | None:
    """Per case: the paired per-round ratios, the estimate with its interval, and the minimum effect line."""
    cases = document.get("cases") or []
    if not cases:
        return None
    fig, ax = _pyplot().subplots(figsize=(8, 4))
    for index, case in enumerate(cases):
        ratios = np.array(case["current_ns_rounds"]) / np.array(case["reference_ns_rounds"])
        jitter = np.linspace(-0.15, 0.15, ratios.size)
        ax.scatter(index + jitter, ratios, s=8, alpha=0.4, color="#7f7f7f")
        low, high = case["interval"]
        colour = {"pass": "#2ca02c", "fail": "#d62728"}.get(case["verdict"], "#ff7f0e")
        ax.errorbar(
            index,
            case["ratio"],
            yerr=[[case["ratio"] - low], [high - case["ratio"]]],
            fmt="o",
            color=colour,
            capsize=6,
        )
    limit = 1 + document["threshold_pct"] / 100
    ax.axhline(1, color="black", linewidth=0.8)
    ax.axhline(limit, color="#d62728", linestyle="--", linewidth=1, label=f"minimum effect {limit:.2f}x")
    ax.set_xticks(range(len(cases)), [_name(c["case"]) for c in cases], fontsize=8)
    ax.set_ylim(0.5, max(2.0, limit + 0.2))
    title = f"Regression gate: {document['verdict'].upper()} (paired rounds, interval per case{cold_gate(document)})"
    _style(ax, title, "", METRICS["gate_ratio"].axis)
    ax.legend(fontsize=8)
    return _save(fig, out / "gate.png", title, ["gate_ratio"])


def verifier_labels(documents: Sequence[dict]) -> list[tuple[str, dict]]:
    """(label, variant) of every accepted variant with its programs, in the order given. The label names the
    commit and the kernel when the documents differ in them, so one plot compares commits or kernels."""

    commits, kernels = ({document.get(key, "?") for document in documents} for key in ("commit", "kernel"))
    entries = []
    for document in documents:
        where = [f"commit {document.get('commit', '?')}"] if len(commits) > 1 else []
        where += [f"Linux {document['kernel']}"] if len(kernels) > 1 else []
        for variant in document.get("variants", []):
            if variant.get("accepted") and variant.get("programs"):
                label = f"{variant['variant']}  ({', '.join(where)})" if where else variant["variant"]
                entries.append((label, variant))
    return entries


def verifier(documents: Sequence[dict], out: Path) -> Plot | None:
    """Verified instructions per variant, split by program: one group of bars per commit or kernel verified."""
    entries = verifier_labels(documents)
    if not entries:
        return None
    programs = list(dict.fromkeys(p["name"] for _, v in entries for p in v["programs"]))
    labels = [label for label, _ in entries]
    fig, ax = _pyplot().subplots(figsize=(10, _height(1.4, 0.45, len(entries))))
    y = np.arange(len(entries))
    left = np.zeros(len(entries))
    colours = _pyplot().get_cmap("tab10")
    for index, program in enumerate(programs):
        values = np.array(
            [
                next(
                    (p["stats"].get("verified_insns") or 0 for p in v["programs"] if p["name"] == program), 0
                )
                for _, v in entries
            ],
            dtype=float,
        )
        ax.barh(y, values, left=left, label=program, color=colours(index % 10), edgecolor="white")
        left += values
    for yi, total in zip(y, left, strict=True):
        ax.annotate(f" {total:,.0f}", (total, yi), va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(right=left.max() * 1.15)
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    title = (
        "Verifier: instructions processed per build variant, by program (the limit is 1,000,000 per program)"
    )
    _style(ax, title, METRICS["verified_insns"].axis, "")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, out / "verifier.png", title, ["verified_insns"])


def fuzz(summaries: Sequence[dict], out: Path) -> Plot | None:
    """Outcome classes the last campaign reached, by outcome; across campaigns (oldest first) when there are
    several: classes reached and examples per second."""
    if not summaries:
        return None
    last = summaries[-1]
    by_outcome: dict[str, int] = defaultdict(int)
    for name in last.get("outcome_classes", []):
        by_outcome[name.split("/")[0]] += 1
    if not by_outcome:
        return None
    several = len(summaries) > 1
    from matplotlib.ticker import MaxNLocator  # here: matplotlib loads only to draw

    fig, axes = _pyplot().subplots(1, 2 if several else 1, figsize=(12 if several else 8, 4.5), squeeze=False)
    left = axes[0][0]
    names = sorted(by_outcome, key=lambda n: -by_outcome[n])
    left.barh(np.arange(len(names)), [by_outcome[n] for n in names], color="#1f77b4")
    left.set_yticks(np.arange(len(names)), [_name(n) for n in names], fontsize=8)
    left.invert_yaxis()
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    found = len(last.get("repros") or [])
    verdict = f"{found} disagreement{'s' if found > 1 else ''}" if found else "no disagreement"
    _style(
        left,
        f"Fuzz: {len(last['outcome_classes'])} outcome classes, {last['examples']:,} examples, {verdict}",
        METRICS["outcome_classes"].axis,
        "",
    )
    if several:
        right = axes[0][1]
        x = np.arange(len(summaries))
        reached = [len(summary["outcome_classes"]) for summary in summaries]
        right.plot(x, reached, marker="o", color="#1f77b4", label="no disagreement")
        failed = [i for i, summary in enumerate(summaries) if summary.get("repros")]
        if failed:
            right.scatter(
                failed,
                [reached[i] for i in failed],
                color="#d62728",
                s=70,
                zorder=3,
                label="found a disagreement",
            )
        _style(
            right,
            "Outcome classes reached, campaign by campaign",
            "campaign (oldest first)",
            METRICS["outcome_classes"].axis,
        )
        right.set_xticks(x, [f"{i + 1}: {s.get('target', '')}" for i, s in enumerate(summaries)], fontsize=7)
        right.yaxis.set_major_locator(MaxNLocator(integer=True))
        right.legend(fontsize=8)
    title = "Differential fuzzing: coverage of outcome classes"
    return _save(fig, out / "fuzz.png", title, ["outcome_classes"])


def fuzz_coverage(summaries: Sequence[dict], out: Path) -> Plot | None:
    """Labelled branches of bpf/xhdr.c the last coverage campaign (``xhdr fuzz --coverage``) had hit, over its
    time: a step each time a label was first hit."""
    coverage = next((s["coverage"] for s in reversed(summaries) if s.get("coverage")), None)
    if not coverage or not coverage.get("over_time"):
        return None
    seconds = [sample[0] for sample in coverage["over_time"]]
    hit = [sample[2] for sample in coverage["over_time"]]
    fig, ax = _pyplot().subplots(figsize=(8, 3.5))
    ax.step(seconds, hit, where="post", color="#1f77b4")
    ax.axhline(
        coverage["labels"], color="#999", linestyle="--", linewidth=1, label=f"{coverage['labels']} labels"
    )
    ax.set_ylim(0, coverage["labels"] * 1.05)
    ax.legend(fontsize=8, loc="lower right")
    how = "with feedback" if coverage.get("feedback") else "report only"
    title = f"Fuzz coverage ({how}): {coverage['hit']} of {coverage['labels']} labelled branches hit"
    _style(ax, title, "seconds into the campaign", METRICS["labels_hit"].axis)
    return _save(fig, out / "fuzz_coverage.png", title, ["labels_hit"])


# -- history -----------------------------------------------------------------------------------------

TREND_CASES = ("standard", "headers_32", "worst_last_header_last")


def read_history(storage: Path) -> list[dict]:
    """Runs stored by pytest-benchmark's file storage, oldest first: date, commit, key kernel figures."""
    runs = []
    for path in sorted(storage.glob("*/*.json")):
        try:
            document = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        figures = {}
        for benchmark in document.get("benchmarks", []) if isinstance(document, dict) else []:
            info = benchmark.get("extra_info") or {}
            # runs of a user's program (xhdr bench --object) are not the extractor's trend
            extractor = info.get("program", "extractor") == "extractor"
            if info.get("suite") == KERNEL_SUITE and extractor and info.get("case") in TREND_CASES:
                figures[info["case"]] = {
                    "ratio_to_empty": info.get("ratio_to_empty"),
                    "ns_per_packet": info.get("kernel_ns_per_packet"),
                }
        if figures:
            commit = document.get("commit_info", {})
            runs.append(
                {
                    "datetime": document.get("datetime", ""),
                    "commit": (commit.get("id") or "")[:7] + ("+" if commit.get("dirty") else ""),
                    "file": path.name,
                    "figures": figures,
                }
            )
    runs.sort(key=lambda run: run["datetime"])
    return runs


def trend(runs: Sequence[dict], out: Path) -> Plot | None:
    """The key ratios across stored runs: ratio to the empty program and ns per packet per key case."""
    if not runs:
        return None
    fig, (top, bottom) = _pyplot().subplots(2, 1, figsize=(9, 6), sharex=True)
    x = np.arange(len(runs))
    for case in TREND_CASES:
        ratios = [run["figures"].get(case, {}).get("ratio_to_empty") for run in runs]
        ns = [run["figures"].get(case, {}).get("ns_per_packet") for run in runs]
        if any(v is not None for v in ratios):
            top.plot(x, [np.nan if v is None else v for v in ratios], marker="o", label=_name(case))
            bottom.plot(x, [np.nan if v is None else v for v in ns], marker="o", label=_name(case))
    top.axhline(
        STANDARD_RATIO,
        color="#2ca02c",
        linestyle="--",
        linewidth=1,
        label=f"target {STANDARD_RATIO:g}x (standard)",
    )
    title = "Kernel cost across stored runs (pytest-benchmark history)"
    _style(top, title, "", METRICS["ratio_to_empty"].axis)
    _style(bottom, "", "run (date, commit)", METRICS["ns_per_packet"].axis)
    top.legend(fontsize=8)
    labels = [f"{run['datetime'][5:16].replace('T', ' ')}\n{run['commit']}" for run in runs]
    step = max(1, len(runs) // 12)
    bottom.set_xticks(x[::step], labels[::step], fontsize=7)
    return _save(fig, out / "trend.png", title, ["ratio_to_empty", "ns_per_packet"])
