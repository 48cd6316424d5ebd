"""PNG plots rendered from result rows (bench/results.py) and pytest-benchmark's stored history.

Every function takes rows, never measures, and returns the path written, or None when the rows it needs
are absent (a suite that did not run simply has no plot). Plots are sized for a web page at 100 dpi and
read at a glance: one message per plot, units on the axes, the floor drawn in the same plot.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from bench.results import ResultFile, Row
from bench.targets import STANDARD_RATIO
from reports.metrics import metric

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

KERNEL_SUITE = "kernel_cost"
COLOURS = {"extractor": "#d62728", "empty": "#7f7f7f"}
DPI = 100


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
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    _pyplot().close(fig)
    return path


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


def kernel_rows(files: Iterable[ResultFile]) -> list[Row]:
    return [row for file in files if file.suite == KERNEL_SUITE for row in file.rows]


def _series(
    rows: Iterable[Row], group: str, x_param: str, metric_name: str
) -> dict[str, list[tuple[float, float]]]:
    """method -> sorted (x, value) points of one sweep."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row in rows:
        if row.metric == metric_name and row.params.get("group") == group and x_param in row.params:
            series[row.method].append((float(row.params[x_param]), row.value))
    return {method: sorted(points) for method, points in series.items()}


def cost_vs_frame_size(files: Sequence[ResultFile], out: Path) -> Path | None:
    """ns per packet against frame size for every method that has frame-size rows, the floor included."""
    series = _series(kernel_rows(files), "frame_size", "frame_bytes", "ns_per_packet")
    for file in files:  # other suites' rows on the same frames, if they report per-frame-size figures
        if file.suite == KERNEL_SUITE:
            continue
        for row in file.rows:  # named with their suite, so they never merge into the kernel's own lines
            if row.metric == "ns_per_packet" and "frame_bytes" in row.params and row.method not in series:
                label = f"{row.method} ({file.suite})"
                series.setdefault(label, []).append((float(row.params["frame_bytes"]), row.value))
    if not series:
        return None
    fig, ax = _pyplot().subplots(figsize=(9.5, 4.5))
    for method, points in sorted(series.items()):
        points.sort()
        if len(points) == 1:  # a baseline measured on one frame: a point, not a line
            ax.plot(*points[0], marker="D", linestyle="none", markersize=7, label=method)
        else:
            ax.plot(*zip(*points, strict=True), marker="o", label=method, color=COLOURS.get(method))
    values = [v for points in series.values() for _, v in points]
    if min(values) > 0 and max(values) / min(values) > 50:
        ax.set_yscale("log")
    scan = _scan_limit_frame(files)
    if scan:
        ax.axvline(scan, color="#1f77b4", linestyle=":", linewidth=1)
        ax.annotate("scan limit", (scan, ax.get_ylim()[1]), fontsize=8, ha="right", va="top", rotation=90)
    _style(
        ax, "Cost per packet vs frame size (kernel: BPF_PROG_TEST_RUN)", "frame size (bytes)", "ns per packet"
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _save(fig, out / "cost_vs_frame_size.png")


def _scan_limit_frame(files: Sequence[ResultFile]) -> int | None:
    for file in files:
        if file.suite == KERNEL_SUITE and "max_scan_bytes" in file.config:
            return int(file.config["max_scan_bytes"]) + 54
    return None


def scanning_linearity(files: Sequence[ResultFile]) -> dict[str, dict[str, float] | None]:
    """Fits of extractor cost against bytes scanned, per sweep, below the scan limit."""
    rows = kernel_rows(files)
    fits = {}
    for group in ("frame_size", "header_count"):
        points = _series(rows, group, "bytes_scanned", "ns_per_packet").get("extractor", [])
        fits[group] = linear_fit(points)
    return fits


def cost_vs_header_count(files: Sequence[ResultFile], out: Path) -> Path | None:
    """Left: cost against header lines; right: cost against bytes scanned with the least-squares lines."""
    rows = kernel_rows(files)
    by_count = _series(rows, "header_count", "headers", "ns_per_packet")
    if not by_count:
        return None
    fig, (left, right) = _pyplot().subplots(1, 2, figsize=(11, 4.5))
    for method, points in sorted(by_count.items()):
        left.plot(*zip(*points, strict=True), marker="o", label=method, color=COLOURS.get(method))
    _style(left, "Cost vs header lines in the request", "header lines (not configured)", "ns per packet")
    left.legend()
    markers = {
        "frame_size": ("s", "one header growing (frame size sweep)"),
        "header_count": ("o", "more header lines"),
    }
    for group, (marker, label) in markers.items():
        points = _series(rows, group, "bytes_scanned", "ns_per_packet").get("extractor", [])
        if not points:
            continue
        x, y = zip(*points, strict=True)
        right.scatter(x, y, marker=marker, label=label)
        fit = linear_fit(points)
        if fit:
            xs = np.linspace(0, max(x), 50)
            right.plot(
                xs,
                fit["slope"] * xs + fit["intercept"],
                linestyle="--",
                linewidth=1,
                label=f"fit: {fit['slope']:.2f} ns/byte, R² {fit['r2']:.3f}",
            )
    _style(
        right, "Extractor cost vs bytes scanned (linear = no worse)", "payload bytes scanned", "ns per packet"
    )
    right.legend(fontsize=8)
    right.set_xlim(left=0)
    right.set_ylim(bottom=0)
    return _save(fig, out / "cost_vs_header_count.png")


def cost_by_case(files: Sequence[ResultFile], out: Path) -> Path | None:
    """Bars for the standard request, each configured-header count and the worst cases, floor beside them."""
    rows = kernel_rows(files)
    wanted = [
        r
        for r in rows
        if r.metric == "ns_per_packet" and r.params.get("group") in ("standard", "configured", "worst")
    ]
    if not wanted:
        return None
    names = list(dict.fromkeys(r.params["case"] for r in wanted))
    value = {(r.params["case"], r.method): r.value for r in wanted}
    ratio = {r.params["case"]: r.value for r in rows if r.metric == "ratio_to_empty"}
    fig, ax = _pyplot().subplots(figsize=(10, 4.5))
    x = np.arange(len(names))
    extractor = [value.get((n, "extractor"), 0) for n in names]
    ax.bar(x - 0.2, extractor, 0.4, label="extractor", color=COLOURS["extractor"])
    ax.bar(
        x + 0.2,
        [value.get((n, "empty"), 0) for n in names],
        0.4,
        label="empty program",
        color=COLOURS["empty"],
    )
    for xi, name, height in zip(x, names, extractor, strict=True):
        if name in ratio:
            ax.annotate(f"{ratio[name]:.0f}x", (xi - 0.2, height), ha="center", va="bottom", fontsize=8)
    floor = value.get(("standard", "empty"))
    if floor:
        ax.axhline(
            STANDARD_RATIO * floor,
            color="#2ca02c",
            linestyle="--",
            linewidth=1,
            label=f"target: standard request at most {STANDARD_RATIO:g}x the empty program (lower is better)",
        )
    ax.set_xticks(x, [n.replace("_", " ") for n in names], rotation=30, ha="right", fontsize=8)
    _style(ax, "Cost per packet by case (labels: ratio to the empty program)", "", "ns per packet")
    ax.legend(fontsize=8)
    return _save(fig, out / "cost_by_case.png")


def _method_label(row: Row, varying: Sequence[str]) -> str:
    extra = [f"{row.params[key]}" for key in varying if key in row.params]
    return " ".join([row.method, *extra])


def suite_bars(file: ResultFile, out: Path) -> Path | None:
    """A generic plot for any other suite: one bar chart per metric, one bar per method (and mode...)."""
    by_metric: dict[str, list[Row]] = defaultdict(list)
    for row in file.rows:
        by_metric[row.metric].append(row)
    if not by_metric:
        return None
    columns = min(3, len(by_metric))
    lines = -(-len(by_metric) // columns)
    fig, axes = _pyplot().subplots(lines, columns, figsize=(5.2 * columns, 3.2 * lines), squeeze=False)
    for ax in axes.flat[len(by_metric) :]:
        ax.set_visible(False)
    for ax, (name, rows) in zip(axes.flat, sorted(by_metric.items()), strict=False):
        keys = sorted({k for r in rows for k, v in r.params.items() if isinstance(v, str | int | float)})
        varying = [k for k in keys if len({str(r.params.get(k)) for r in rows}) > 1]
        labels = [_method_label(r, varying) for r in rows]
        ax.barh(range(len(rows)), [r.value for r in rows], color="#1f77b4")
        ax.set_yticks(range(len(rows)), labels, fontsize=8)
        ax.invert_yaxis()
        info = metric(name, rows[0].unit)
        _style(ax, info.label, f"{info.unit} ({info.better} is better)", "")
        values = [r.value for r in rows]
        if min(values) > 0 and max(values) / min(values) > 100:
            ax.set_xscale("log")
    fig.suptitle(f"{file.suite} ({file.created})", fontsize=11)
    return _save(fig, out / f"{file.suite}.png")


def gate_plot(document: dict, out: Path) -> Path | None:
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
    ax.set_xticks(range(len(cases)), [c["case"].replace("_", " ") for c in cases], fontsize=8)
    ax.set_ylim(0.5, max(2.0, limit + 0.2))
    _style(
        ax,
        f"Regression gate: {document['verdict'].upper()} (current / reference, paired rounds)",
        "",
        "ratio",
    )
    ax.legend(fontsize=8)
    return _save(fig, out / "gate.png")


# -- history -----------------------------------------------------------------------------------------

TREND_CASES = ("standard", "headers_32", "worst_last_header_last")


def read_history(storage: Path) -> list[dict]:
    """Runs stored by pytest-benchmark's file storage, oldest first: date, commit, key kernel figures."""
    runs = []
    for path in sorted(storage.glob("*/*.json")):
        try:
            document = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        figures = {}
        for benchmark in document.get("benchmarks", []):
            info = benchmark.get("extra_info") or {}
            if info.get("suite") == KERNEL_SUITE and info.get("case") in TREND_CASES:
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


def trend(runs: Sequence[dict], out: Path) -> Path | None:
    """The key ratios across stored runs: ratio to the empty program and ns per packet per key case."""
    if not runs:
        return None
    fig, (top, bottom) = _pyplot().subplots(2, 1, figsize=(9, 6), sharex=True)
    x = np.arange(len(runs))
    for case in TREND_CASES:
        ratios = [run["figures"].get(case, {}).get("ratio_to_empty") for run in runs]
        ns = [run["figures"].get(case, {}).get("ns_per_packet") for run in runs]
        if any(v is not None for v in ratios):
            top.plot(
                x, [np.nan if v is None else v for v in ratios], marker="o", label=case.replace("_", " ")
            )
            bottom.plot(x, [np.nan if v is None else v for v in ns], marker="o", label=case.replace("_", " "))
    top.axhline(
        STANDARD_RATIO,
        color="#2ca02c",
        linestyle="--",
        linewidth=1,
        label=f"target {STANDARD_RATIO:g}x (standard)",
    )
    _style(top, "Trend across stored runs (pytest-benchmark history)", "", "ratio to empty program")
    _style(bottom, "", "run (date, commit)", "extractor ns per packet")
    top.legend(fontsize=8)
    labels = [f"{run['datetime'][5:16].replace('T', ' ')}\n{run['commit']}" for run in runs]
    step = max(1, len(runs) // 12)
    bottom.set_xticks(x[::step], labels[::step], fontsize=7)
    return _save(fig, out / "trend.png")
