"""``xhdr report``: PNG plots and one self-contained HTML page from benchmark result files.

Machine output first: the command reads the results (bench/results.py files, the gate's gate.json and
pytest-benchmark's stored history), writes ``report.json`` with the figures it derived (targets, linear
fits, plots), and renders the PNGs and ``report.html`` (images embedded as base64, so the page can be
mailed or attached to a CI run) from those. Suites that did not run are simply absent.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import html
import json
import sys
from pathlib import Path

from bench.results import RESULTS_DIR, ResultFile, read_json, read_results
from bench.targets import TARGETS
from harness.cli.options import output_directory
from harness.core.errors import CommandError
from reports import figures
from reports.metrics import METRICS, metric

DEFAULT_OUT = Path("reports/out/report")
DEFAULT_HISTORY = Path(".benchmarks")
# What the page reads of a gate document (bench/ab_gate.py writes it).
GATE_KEYS = {"verdict", "cases", "reference", "current", "threshold_pct", "statistic"}


def register(subcommands: argparse._SubParsersAction) -> None:
    """Adds ``report`` to the ``xhdr`` command line (found through the xhdr.commands entry point)."""
    parser = subcommands.add_parser(
        "report",
        help="render benchmark results as PNG plots and one self-contained HTML page",
        description="Read xhdr benchmark result files (default: every result file in reports/out/bench) "
        "and write PNG plots, report.json and report.html.",
    )
    parser.add_argument("results", nargs="*", type=Path, metavar="RESULT.json", help="xhdr result files")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--gate", type=Path, help="a gate.json of `xhdr bench --compare` (default: beside the results)"
    )
    parser.add_argument(
        "--history",
        type=Path,
        default=DEFAULT_HISTORY,
        help="pytest-benchmark file storage to plot the trend from (default ./.benchmarks)",
    )
    parser.set_defaults(run=run)


def discover(directory: Path) -> list[Path]:
    """The xhdr result files in a directory; other JSON there (pytest-benchmark's, the gate's) is skipped."""
    found = []
    for path in sorted(directory.glob("*.json")):
        try:
            document = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(document, dict) and "suite" in document and "rows" in document:
            found.append(path)
    return found


def run(args: argparse.Namespace) -> int:
    paths = args.results or discover(RESULTS_DIR)
    if not paths:
        raise CommandError(f"no result files given and none in {RESULTS_DIR}; run `xhdr bench` first")
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"result file {path} does not exist; check the path")
    try:
        files = read_results(paths)
        gate = read_gate(args.gate or paths[0].parent / "gate.json", given=args.gate is not None)
    except ValueError as error:
        raise CommandError(str(error)) from None
    document = build_report(files, gate, figures.read_history(args.history) if args.history.is_dir() else [])
    page = render(document, files, gate, output_directory(args.out))
    print(f"xhdr report: {len(document['plots'])} plots and {page}", file=sys.stderr)
    return 0


def read_gate(path: Path, *, given: bool) -> dict | None:
    """The gate document, or None when there is none beside the results; one given with --gate must exist."""
    if not path.is_file():
        if given:
            raise FileNotFoundError(f"gate file {path} does not exist; check --gate")
        return None
    document = read_json(path, "gate file")
    if not isinstance(document, dict) or not GATE_KEYS <= document.keys():
        raise ValueError(f"gate file {path} is not a gate.json of `xhdr bench --compare`; give that file")
    return document


def build_report(files: list[ResultFile], gate: dict | None, history: list[dict]) -> dict:
    """The figures the page shows, as JSON: inputs, targets with their margins, linear fits, history."""
    rows = figures.kernel_rows(files)
    value = {(r.params.get("case"), r.method, r.metric): r.value for r in rows}
    fits = figures.scanning_linearity(files)
    targets = []
    for target in TARGETS:
        if target.metric == "ns_per_byte":
            fit = fits.get(target.case)
            measured = None if fit is None else fit["slope"]
        else:
            measured = value.get((target.case, "extractor", target.metric))
        if measured is None:
            continue
        targets.append(
            {
                "what": target.what,
                "target": target.limit,
                "measured": measured,
                "met": measured <= target.limit,
                "by": f"{measured / target.limit:.2f}x the target",
            }
        )
    return {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "inputs": [
            {
                "suite": f.suite,
                "path": str(f.path),
                "created": f.created,
                "machine": f.machine,
                "rows": len(f.rows),
            }
            for f in files
        ],
        "targets": targets,
        "linear_fits": fits,
        "gate": None if gate is None else {"verdict": gate["verdict"], "cases": len(gate["cases"])},
        "history_runs": len(history),
        "history": history,
        "plots": [],
    }


def render(document: dict, files: list[ResultFile], gate: dict | None, out: Path) -> Path:
    """Writes the PNGs, report.json and report.html into ``out`` (an existing directory); returns the page's path."""
    plots = [
        figures.cost_vs_frame_size(files, out),
        figures.cost_vs_header_count(files, out),
        figures.cost_by_case(files, out),
        *[figures.suite_bars(f, out) for f in files if f.suite != figures.KERNEL_SUITE],
        figures.gate_plot(gate, out) if gate else None,
        figures.trend(document["history"], out),
    ]
    document["plots"] = [path.name for path in plots if path is not None]
    (out / "report.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    page = out / "report.html"
    page.write_text(render_html(document, files, gate, out))
    return page


# -- HTML --------------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}"><figcaption>{path.name}</figcaption></figure>'


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; } figure { margin: 1em 0; } figcaption { font-size: 0.8em; color: #666; }
.met { color: #2ca02c; } .missed { color: #d62728; font-weight: bold; }
"""


def render_html(document: dict, files: list[ResultFile], gate: dict | None, out: Path) -> str:
    """One page: where it ran, the targets, every plot (embedded) and the tables the plots come from."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>xhdr benchmarks</title><style>{STYLE}</style></head><body>"
    ]
    parts.append("<h1>xhdr benchmark report</h1>")
    parts.append("<h2>Runs</h2>")
    parts.append(
        _table(
            ["suite", "created", "commit", "kernel", "cpu", "cores", "rows"],
            [
                [
                    i["suite"],
                    i["created"],
                    i["machine"].get("commit"),
                    i["machine"].get("kernel"),
                    i["machine"].get("cpu"),
                    i["machine"].get("cores"),
                    i["rows"],
                ]
                for i in document["inputs"]
            ],
        )
    )
    if document["targets"]:
        parts.append("<h2>Targets</h2>")
        rows = [
            [t["what"], t["target"], t["measured"], "met" if t["met"] else f"missed ({t['by']})"]
            for t in document["targets"]
        ]
        for name, fit in document["linear_fits"].items():
            if fit:
                rows.append(
                    [
                        f"scanning cost linear in bytes ({name} sweep)",
                        "R² near 1",
                        round(fit["r2"], 3),
                        f"{fit['slope']:.2f} ns/byte",
                    ]
                )
        parts.append(_table(["what", "target", "measured", "verdict"], rows))
    for name in document["plots"]:
        parts.append(_image(out / name))
    if gate:
        parts.append(f"<h2>Regression gate: {html.escape(gate['verdict'])}</h2>")
        parts.append(
            f"<p>{html.escape(gate['reference']['label'])} → {html.escape(gate['current']['label'])}; minimum effect {gate['threshold_pct']}%, {html.escape(gate['statistic'])}</p>"
        )
        parts.append(
            _table(
                ["case", "reference ns", "current ns", "ratio", "interval", "spread %", "rounds", "verdict"],
                [
                    [
                        c["case"],
                        c["reference_ns_median"],
                        c["current_ns_median"],
                        c["ratio"],
                        f"{c['interval'][0]:.3f}–{c['interval'][1]:.3f}",
                        c["spread_pct"],
                        c["rounds"],
                        c["verdict"],
                    ]
                    for c in gate["cases"]
                ],
            )
        )
    for file in files:
        parts.append(f"<h2>{html.escape(file.suite)}</h2>")
        parts.append(_suite_table(file))
    parts.append("<h2>Metrics</h2>")
    parts.append(
        _table(
            ["metric", "unit", "better", "meaning"],
            [[m.label, m.unit, m.better, m.meaning] for m in METRICS.values()],
        )
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def _suite_table(file: ResultFile) -> str:
    """Kernel cost: one line per case with its metrics side by side; other suites: one line per row."""
    if file.suite == figures.KERNEL_SUITE:
        cases: dict[str, dict] = {}
        for row in file.rows:
            entry = cases.setdefault(row.params["case"], {"params": row.params})
            entry[(row.method, row.metric)] = row.value
        columns = [
            ("extractor", "ns_per_packet"),
            ("empty", "ns_per_packet"),
            ("extractor", "ratio_to_empty"),
            ("extractor", "ns_per_byte"),
            ("extractor", "spread_pct"),
        ]
        return _table(
            [
                "case",
                "group",
                "frame B",
                "payload B",
                "extractor ns",
                "empty ns",
                "ratio",
                "ns/B",
                "spread %",
                "rounds",
            ],
            [
                [
                    name,
                    e["params"]["group"],
                    e["params"]["frame_bytes"],
                    e["params"]["payload_bytes"],
                    *[e.get(c, "") for c in columns],
                    e["params"]["rounds"],
                ]
                for name, e in cases.items()
            ],
        )
    return _table(
        ["method", "metric", "value", "unit", "params"],
        [
            [
                r.method,
                metric(r.metric, r.unit).label,
                r.value,
                r.unit,
                ", ".join(f"{k}={v}" for k, v in r.params.items()),
            ]
            for r in file.rows
        ],
    )
