"""``xhdr report``: one self-contained report.html (and its PNGs) from the JSON the other commands write.

Machine output first: the command reads the bench suites' result files (bench/results.py), the gate's
gate.json, ``xhdr verify --json`` and ``xhdr fuzz --json`` documents and pytest-benchmark's stored history,
derives what the page shows into ``report.json`` (the verdict banner, the headline table, the targets, the
linear fits, the plots with the metrics each draws) and renders the PNGs and ``report.html`` (images
embedded as base64, so the page can be mailed or attached to a CI run) from those. The page answers the
reader's questions in order: did anything fail, what does the extractor cost against the other ways of
logging, where does that cost go, then the details. What did not run is simply absent.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import html
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.results import RESULTS_DIR, ResultFile, measured_program, per_round, read_json, read_results
from bench.targets import CONSUMER_EVENTS_PER_SECOND, TARGETS
from harness.cli.options import add_out, output_directory
from harness.core.errors import CommandError
from harness.core.paired import Judgement, judge_rounds
from reports import figures
from reports.metrics import ACCESS_LOG_COMPARISONS, METRICS, describe, method_label

DEFAULT_OUT = Path("reports/out/report")
DEFAULT_HISTORY = Path(".benchmarks")
# What the page reads of a gate document (bench/ab_gate.py writes it).
GATE_KEYS = {"verdict", "cases", "reference", "current", "threshold_pct", "statistic"}
KINDS = ("result", "gate", "verify", "fuzz")
# The headline's question for each of the nginx suite's comparisons (reports/metrics.py ACCESS_LOG_COMPARISONS).
NGINX_QUESTIONS = {
    "rps_ratio_to_access_log": "nginx requests/s, relative to nginx's access log in the same round",
    "rps_ratio_to_access_log_on_hook": (
        "nginx requests/s, relative to nginx's access log behind the same XDP hook, in the same round"
    ),
}


def register(subcommands: argparse._SubParsersAction) -> None:
    """Adds ``report`` to the ``xhdr`` command line (found through the xhdr.commands entry point)."""
    parser = subcommands.add_parser(
        "report",
        help="render benchmark, gate, verify and fuzz results as one self-contained HTML page",
        description="Read xhdr's JSON (default: every bench result, gate.json, `xhdr verify --json` and "
        "`xhdr fuzz --json` document in reports/out/bench) and write PNG plots, report.json and report.html.",
    )
    parser.add_argument(
        "results",
        nargs="*",
        type=Path,
        metavar="FILE.json|DIR",
        help="bench result files, a gate.json, verify or fuzz JSON documents (told apart by their content), or "
        "directories of them (`xhdr bench --out DIR`), whose other JSON is skipped",
    )
    add_out(parser, DEFAULT_OUT, "report.html and its plots")
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


def kind_of(document: object) -> str | None:
    """Which of xhdr's documents this is, by its content: result, gate, verify, fuzz, or None."""
    if not isinstance(document, dict):
        return None
    if "suite" in document and "rows" in document:
        return "result"
    if document.get("tool") == "xhdr verify":
        return "verify"
    if document.get("tool") == "xhdr fuzz":
        return "fuzz"
    if GATE_KEYS <= document.keys():
        return "gate"
    return None


def discover(directory: Path) -> list[Path]:
    """xhdr's documents in a directory; other JSON there (pytest-benchmark's, a damaged file) is skipped."""
    found = []
    for path in sorted(directory.glob("*.json")):
        try:
            document = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        if kind_of(document):
            found.append(path)
    return found


def sort_inputs(paths: Sequence[Path]) -> dict[str, list[Path]]:
    """The given files by kind; a file that is none of them is a ValueError whose one line names it."""
    sorted_paths: dict[str, list[Path]] = {kind: [] for kind in KINDS}
    for path in paths:
        document = read_json(path, "result file")
        kind = kind_of(document)
        if kind is None and isinstance(document, dict) and "format" in document:
            kind = "result"  # a result file of another format: read_results names the problem
        if kind is None:
            raise ValueError(
                f"result file {path} is not an xhdr result file (a bench suite's, gate.json, verify or fuzz "
                "JSON); give one that `xhdr bench`, `xhdr verify --json` or `xhdr fuzz --json` wrote"
            )
        sorted_paths[kind].append(path)
    return sorted_paths


def run(args: argparse.Namespace) -> int:
    given = args.results or [RESULTS_DIR]
    paths = [found for path in given for found in (discover(path) if path.is_dir() else [path])]
    if not paths:
        where = ", ".join(str(path) for path in given)
        raise CommandError(f"no xhdr result files in {where}; run `xhdr bench` first, or give the files")
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"result file {path} does not exist; check the path")
    if args.gate and not args.gate.is_file():
        raise FileNotFoundError(f"gate file {args.gate} does not exist; check --gate")
    try:
        inputs = sort_inputs(paths)
        beside = paths[0].parent / "gate.json"
        if args.gate:
            inputs["gate"] = [args.gate]
        elif not inputs["gate"] and beside.is_file() and beside not in paths:
            inputs["gate"] = [beside]
        files = read_results(inputs["result"])
        gate = read_gate(inputs["gate"][-1]) if inputs["gate"] else None
        verify = [read_json(path, "verify document") for path in inputs["verify"]]
        fuzz = [read_json(path, "fuzz summary") for path in sorted(inputs["fuzz"], key=_mtime)]
    except ValueError as error:
        raise CommandError(str(error)) from None
    history = figures.read_history(args.history) if args.history.is_dir() else []
    document = build_report(files, gate, history, verify=verify, fuzz=fuzz)
    page = render(document, files, gate, verify, fuzz, output_directory(args.out))
    banner = document["banner"]
    print(f"xhdr report: {banner['status'].upper()}: {banner['line']}", file=sys.stderr)
    print(f"xhdr report: {len(document['plots'])} plots and {page}", file=sys.stderr)
    return 0


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def _not_a_gate(path: Path) -> list[Path]:
    raise ValueError(f"gate file {path} is not a gate.json of `xhdr bench --compare`; give that file")


def read_gate(path: Path) -> dict:
    document = read_json(path, "gate file")
    if not isinstance(document, dict) or not GATE_KEYS <= document.keys():
        _not_a_gate(path)
    return document


# -- what the page shows, as JSON ------------------------------------------------------------------------


def build_report(
    files: list[ResultFile],
    gate: dict | None,
    history: list[dict],
    *,
    verify: Sequence[dict] = (),
    fuzz: Sequence[dict] = (),
) -> dict:
    """The figures the page shows, as JSON: banner, headline, targets, fits, inputs, history."""
    fits = figures.scanning_linearity(files)
    targets = target_rows(files, fits)
    return {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "banner": banner(gate, targets, verify, fuzz),
        "headline": headline(files),
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


def target_rows(files: list[ResultFile], fits: dict) -> list[dict]:
    """The issue-9 targets (bench/targets.py) the rows measure, each met or not; none for a user's program's
    rows (``xhdr bench --object``): the targets are the extractor's."""
    kernel = figures.kernel_rows(files)
    if measured_program(kernel) != "extractor":
        return []
    value = {(r.params.get("case"), r.method, r.metric): r.value for r in kernel}
    rows = []
    for target in TARGETS:
        if target.metric == "ns_per_byte":
            fit = fits.get(target.case)
            measured = None if fit is None else fit["slope"]
        else:
            measured = value.get((target.case, "extractor", target.metric))
        if measured is None:
            continue
        rows.append(
            {
                "what": target.what,
                "target": target.limit,
                "measured": measured,
                "met": measured <= target.limit,
                "by": f"{measured / target.limit:.2f}x the target",
            }
        )
    return rows


def banner(gate: dict | None, targets: list[dict], verify: Sequence[dict], fuzz: Sequence[dict]) -> dict:
    """The verdicts first: the gate, the verifier, the fuzzer (a failure in any is FAIL), then the targets
    (missed ones make the page MISSED, not FAIL: they say how far the extractor is from where it should be)."""
    items = []
    if gate:
        worst = [c["case"] for c in gate["cases"] if c["verdict"] == "fail"]
        detail = {
            "pass": "no case is slower than the minimum effect",
            "fail": f"slower: {', '.join(worst)}",
            "inconclusive": "too noisy to tell; not a failure",
        }.get(gate["verdict"], "")
        items.append(
            {
                "what": f"A/B gate {gate['reference']['label']} → {gate['current']['label']}"
                + figures.cold_gate(gate),
                "status": {"pass": "pass", "fail": "fail"}.get(gate["verdict"], "warn"),
                "says": f"{gate['verdict'].upper()}: {detail}",
            }
        )
    for document in verify:
        rejected = [v["key"] for v in document.get("variants", []) if not v.get("accepted")]
        count = len(document.get("variants", []))
        items.append(
            {
                "what": f"verifier on Linux {document.get('kernel')}",
                "status": "fail" if rejected else "pass",
                "says": f"{len(rejected)} of {count} variants rejected: {', '.join(rejected)}"
                if rejected
                else f"all {count} variants accepted",
            }
        )
    if fuzz:
        last = fuzz[-1]
        repros = last.get("repros") or []
        items.append(
            {
                "what": f"fuzz campaign ({last.get('target')})",
                "status": "fail" if repros else "pass",
                "says": f"{len(repros)} disagreement{'s' if len(repros) > 1 else ''} with the reference"
                if repros
                else f"no disagreement in {last.get('examples', 0):,} examples",
            }
        )
    if targets:
        missed = [t for t in targets if not t["met"]]
        items.append(
            {
                "what": "performance targets (issue 9)",
                "status": "warn" if missed else "pass",
                "says": f"{len(targets) - len(missed)} of {len(targets)} met"
                + (f" ({len(TARGETS) - len(targets)} not measured)" if len(targets) < len(TARGETS) else "")
                + (f"; missed: {'; '.join(t['what'] + ' ' + t['by'] for t in missed)}" if missed else ""),
            }
        )
    order = {"fail": 0, "warn": 1, "pass": 2}
    worst = min((item["status"] for item in items), key=order.__getitem__, default="none")
    status = {"fail": "fail", "warn": "missed", "pass": "pass", "none": "no verdict"}[worst]
    failing = [i for i in items if i["status"] == worst and worst != "pass"]
    line = "; ".join(f"{i['what']}: {i['says']}" for i in failing) or (
        "every gate, check and target passed" if items else "no gate, verify, fuzz or target in these inputs"
    )
    return {"status": status, "line": line, "items": items}


def headline(files: list[ResultFile]) -> list[dict]:
    """The key result in one table: the extractor against each other way of getting the same log lines,
    from every suite present. ``ratio`` is the extractor's figure over the other's."""
    rows = []

    def add(
        question: str,
        metric: str,
        ours: tuple[str, float | None],
        theirs: tuple[str, float | None],
        judged: Judgement | None = None,
    ) -> None:
        """``judged``: for a ratio of paired rounds, what their interval says; better or worse then only if
        it says so (None: too close to tell)."""
        if ours[1] is None or theirs[1] is None or not theirs[1]:
            return
        declared = METRICS[metric]
        ratio = ours[1] / theirs[1]
        better: bool | None = ratio < 1 if declared.better == "lower" else ratio > 1
        if declared.better == "lower":
            says = f"{1 / ratio:.1f}x less" if ratio < 1 else f"{ratio:.1f}x more"
        else:
            says = f"{ratio:.2f}x as much"
        if judged is not None:
            better, says = judged.ahead, f"{says}; {judged.says}"
        rows.append(
            {
                "question": question,
                "metric": metric,
                "extractor": {"label": ours[0], "value": ours[1]},
                "other": {"label": theirs[0], "value": theirs[1]},
                "ratio": ratio,
                "extractor_better": better,
                "says": f"extractor: {says}",
            }
        )

    value = figures._value
    parsers = figures.suite_rows(files, "baselines")
    ours = value(parsers, "extractor", "ns_per_packet")
    for method in dict.fromkeys(r.method for r in parsers if r.metric == "ratio_to_extractor"):
        add(
            "parsing one request, same frame",
            "ns_per_packet",
            ("extractor (test run)", ours),
            (method_label(method), value(parsers, method, "ns_per_packet")),
        )
    lab = figures.suite_rows(files, "lab_throughput")
    totals = figures.lab_by_leg(lab, "cpu_ns_per_logged_request")
    without_hook = figures.lab_by_leg(lab, "program_and_logger_ns")
    for leg in (("native", "json"), ("native", "records")):
        label = figures.lab_leg_label(*leg)
        for method in dict.fromkeys(r.method for r in lab if r.metric == "kernel_delivery_cost_ns"):
            theirs = (method_label(method), value(lab, method, "cpu_ns_per_logged_request"))
            add("CPU per logged request (lab)", "cpu_ns_per_logged_request", (label, totals.get(leg)), theirs)
            add(
                "CPU per logged request without the XDP hook (lab: program and consumer)",
                "cpu_ns_per_logged_request",
                (label, without_hook.get(leg)),
                theirs,
            )
    nginx = figures.suite_rows(files, "http_nginx")
    for extractor in ("extractor", "extractor_text", "extractor_records"):
        # against the access log, issue 11's target, then behind the same hook: the ratio of the legs of each
        # round, whose median does not move with the machine's slow spells as the ratio of the legs' medians does
        for base, metric in ACCESS_LOG_COMPARISONS.items():
            rounds = per_round(nginx, extractor, f"{metric}_round")
            add(
                NGINX_QUESTIONS[metric],
                metric,
                (method_label(extractor), value(nginx, extractor, metric)),
                (method_label(base), 1.0),
                judge_rounds(rounds) if rounds else None,
            )
        add(
            "nginx requests/s kept, relative to no logging",
            "rps_ratio_to_no_logging",
            (method_label(extractor), value(nginx, extractor, "rps_ratio_to_no_logging")),
            (method_label("c_tpacket_v3"), value(nginx, "c_tpacket_v3", "rps_ratio_to_no_logging")),
        )
    logger_cpu = value(nginx, "extractor", "logger_cpu_ns_per_request")
    program_cpu = value(nginx, "extractor", "xdp_program_ns_per_request")
    # the XDP program's run time counts with the logger's: both are what the extractor adds per request
    ours_cpu = None if logger_cpu is None or program_cpu is None else logger_cpu + program_cpu
    for method in ("nginx_access_log", "c_tpacket_v3"):
        theirs = value(nginx, method, "logger_cpu_ns_per_request")
        if method == "nginx_access_log" and theirs is None:
            # nginx logs inside its own process: its cost is nginx's CPU with the log less without it
            with_log = value(nginx, method, "nginx_cpu_ns_per_request")
            without = value(nginx, "no_logging", "nginx_cpu_ns_per_request")
            theirs = None if with_log is None or without is None else with_log - without
            if theirs is not None and theirs <= 0:
                theirs = None  # within noise: no ratio to show
        add(
            "CPU the logging adds per request under nginx",
            "logger_cpu_ns_per_request",
            ("extractor (XDP program and xhdr log)", ours_cpu),
            (
                method_label(method)
                + (" (nginx's CPU with it less without)" if method == "nginx_access_log" else ""),
                theirs,
            ),
        )
    return rows


# -- HTML --------------------------------------------------------------------------------------------


def render(
    document: dict,
    files: list[ResultFile],
    gate: dict | None,
    verify: Sequence[dict],
    fuzz: Sequence[dict],
    out: Path,
) -> Path:
    """Writes the PNGs, report.json and report.html into ``out`` (an existing directory); returns the page's path."""
    plots = [
        figures.cpu_per_logged_request(files, out),
        figures.nginx_throughput(files, out),
        figures.baselines(files, out),
        figures.cost_vs_payload(files, out),
        figures.cost_by_case(files, out),
        figures.consumer(files, out, CONSUMER_EVENTS_PER_SECOND),
        figures.caches(files, out),
        figures.gate_plot(gate, out) if gate else None,
        figures.verifier(verify, out),
        figures.fuzz(fuzz, out),
        figures.fuzz_coverage(fuzz, out),
        figures.trend(document["history"], out),
    ]
    document["plots"] = [plot.to_json() for plot in plots if plot is not None]
    (out / "report.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    page = out / "report.html"
    page.write_text(render_html(document, files, gate, verify, out))
    return page


def _table(header: list[str], rows: list[list[object]], classes: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        f"<tr class='{classes[i] if i < len(classes) else ''}'>"
        + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row)
        + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def _figure(out: Path, plot: dict) -> str:
    data = base64.b64encode((out / plot["file"]).read_bytes()).decode("ascii")
    caption = "; ".join(f"{describe(m).label}: {describe(m).meaning}" for m in plot["metrics"])
    return (
        f'<figure><img alt="{html.escape(plot["title"])}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; } figure { margin: 1em 0; } figcaption { font-size: 0.8em; color: #666; }
.banner { padding: 0.8em 1.2em; border-radius: 6px; margin: 1em 0; color: white; }
.banner h2 { margin: 0 0 0.3em; } .banner ul { margin: 0; padding-left: 1.2em; }
.banner-fail { background: #c62828; } .banner-missed { background: #ef6c00; }
.banner-pass { background: #2e7d32; } .banner-none { background: #616161; }
tr.good td:last-child { color: #2e7d32; font-weight: bold; } tr.bad td:last-child { color: #c62828; font-weight: bold; }
"""

# The page's sections after the headline, each with the plots it holds (by file name).
SECTIONS = (
    ("Where the CPU goes per logged request", ("cpu_per_logged_request.png", "nginx.png")),
    ("Kernel cost", ("baselines.png", "cost_vs_payload.png", "cost_by_case.png", "caches.png", "trend.png")),
    ("xhdr log's consumer", ("consumer.png",)),
    ("Regression gate", ("gate.png",)),
    ("Verifier", ("verifier.png",)),
    ("Fuzzing", ("fuzz.png", "fuzz_coverage.png")),
)
MARK = {"pass": "✔", "fail": "✘", "warn": "!"}


def render_html(
    document: dict, files: list[ResultFile], gate: dict | None, verify: Sequence[dict], out: Path
) -> str:
    """One page: the verdict banner, the headline table and the targets, then a section per question with
    its plots, then the data: runs, gate cases, kernel matrix, each suite's figures, the metric table."""
    banner_ = document["banner"]
    status = banner_["status"]
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>xhdr report</title><style>{STYLE}</style>",
        "</head><body>",
        "<h1>xhdr report</h1>",
        f"<div class='banner banner-{status.split()[0]}'><h2>{html.escape(status.upper())}</h2>"
        f"<p>{html.escape(banner_['line'])}</p><ul>"
        + "".join(
            f"<li>{MARK[i['status']]} {html.escape(i['what'])}: {html.escape(i['says'])}</li>"
            for i in banner_["items"]
        )
        + "</ul></div>",
    ]
    if document["headline"]:
        parts.append("<h2>The extractor against the other ways to log</h2>")
        rows, classes = [], []
        for h in document["headline"]:
            metric = METRICS[h["metric"]]
            rows.append(
                [
                    h["question"],
                    f"{metric.label} ({metric.unit}), {metric.direction}",
                    f"{h['extractor']['label']}: {_cell(h['extractor']['value'])}",
                    f"{h['other']['label']}: {_cell(h['other']['value'])}",
                    f"{h['ratio']:.2f}",
                    h["says"],
                ]
            )
            classes.append({True: "good", False: "bad", None: ""}[h["extractor_better"]])
        parts.append(
            _table(["question", "metric", "extractor", "compared with", "ratio", "verdict"], rows, classes)
        )
    if document["targets"]:
        parts.append("<h2>Targets (issue 9)</h2>")
        rows = [
            [t["what"], t["target"], t["measured"], "met" if t["met"] else f"not met ({t['by']})"]
            for t in document["targets"]
        ]
        for name, fit in document["linear_fits"].items():
            if fit:
                rows.append(
                    [
                        f"scanning cost linear in bytes ({_name(name)} sweep)",
                        "R² near 1",
                        round(fit["r2"], 3),
                        f"{fit['slope']:.2f} ns/byte",
                    ]
                )
        classes = ["good" if t["met"] else "bad" for t in document["targets"]]
        parts.append(_table(["target", "limit", "measured", "verdict"], rows, classes))
    plots = {plot["file"]: plot for plot in document["plots"]}
    for title, names in SECTIONS:
        present = [plots[name] for name in names if name in plots]
        if present:
            parts.append(f"<h2>{html.escape(title)}</h2>")
            parts += [_figure(out, plot) for plot in present]
        if title == "Regression gate" and gate:
            parts.append(_gate_table(gate))
        if title == "Verifier" and verify:
            parts.append(_kernel_matrix(verify))
    parts.append("<h2>Data</h2>")
    parts.append(_runs_table(document))
    for file in files:
        parts.append(f"<h3>{html.escape(_name(file.suite))}</h3>")
        parts.append(_suite_table(file))
    parts.append("<h2>Metrics</h2>")
    parts.append(
        _table(
            ["metric", "name", "unit", "direction", "meaning"],
            [[m.label, m.name, m.unit, m.direction, m.meaning] for m in METRICS.values()],
        )
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def _name(text: str) -> str:
    return text.replace("_", " ")


def _runs_table(document: dict) -> str:
    return _table(
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


def _gate_table(gate: dict) -> str:
    intro = (
        f"<p>{html.escape(gate['reference']['label'])} → {html.escape(gate['current']['label'])}; "
        f"minimum effect {gate['threshold_pct']}%, {html.escape(gate['statistic'])}</p>"
    )
    return intro + _table(
        [
            "case",
            "reference ns",
            "current ns",
            "current / reference",
            "interval",
            "spread %",
            "rounds",
            "verdict",
        ],
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
        [
            "bad" if c["verdict"] == "fail" else "good" if c["verdict"] == "pass" else ""
            for c in gate["cases"]
        ],
    )


def _kernel_matrix(documents: Sequence[dict]) -> str:
    """Variants down, the kernels the verify documents ran on across: verified instructions or REJECTED."""
    kernels = list(dict.fromkeys(str(d.get("kernel")) for d in documents))
    cells: dict[str, dict[str, str]] = {}
    for document in documents:
        for variant in document.get("variants", []):
            insns = variant.get("stats", {}).get("verified_insns")
            cells.setdefault(variant["key"], {})[str(document.get("kernel"))] = (
                _cell(insns) if variant.get("accepted") else "REJECTED"
            )
    return "<h3>Verified instructions per variant and kernel</h3>" + _table(
        ["variant", *(f"Linux {k}" for k in kernels)],
        [[key, *(row.get(k, "-") for k in kernels)] for key, row in cells.items()],
    )


# Parameters that tell a suite's rows apart (a method measured several ways); the rest describe the run.
DISTINGUISHING = ("mode", "baseline", "format", "caches", "round")


def _suite_table(file: ResultFile) -> str:
    """Kernel cost: one line per case with its metrics side by side; other suites: one line per method
    (and mode, baseline, format or caches), one column per metric, each headed with its label, unit and direction."""
    if file.suite == figures.KERNEL_SUITE:
        cases: dict[str, dict] = {}
        for row in file.rows:
            entry = cases.setdefault(row.params["case"], {"params": row.params})
            entry[(row.method, row.metric)] = row.value
        program = measured_program(file.rows)
        columns = [
            (program, "ns_per_packet"),
            ("empty", "ns_per_packet"),
            (program, "ratio_to_empty"),
            (program, "ns_per_byte"),
            (program, "spread_pct"),
        ]
        header = ["case", "group", "frame B", "payload B"]
        header += [f"{method}: {_heading(name)}" for method, name in columns]
        return _table(
            [*header, "rounds"],
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
    lines: dict[str, dict[str, float]] = {}
    for row in file.rows:
        extra = [
            f"round {row.params[k]}" if k == "round" else str(row.params[k])
            for k in DISTINGUISHING
            if k in row.params and str(row.params[k]) != row.method
        ]
        label = f"{row.method} ({', '.join(extra)})" if extra else row.method
        lines.setdefault(label, {})[row.metric] = row.value
    metrics = list(dict.fromkeys(row.metric for row in file.rows))
    return _table(
        ["method", *(_heading(name) for name in metrics)],
        [[label, *(values.get(name) for name in metrics)] for label, values in lines.items()],
    )


def _heading(name: str) -> str:
    metric = describe(name)
    arrow = {"lower": " ↓", "higher": " ↑"}.get(metric.better, "")
    return f"{metric.label} ({metric.unit}){arrow}" if metric.unit else f"{metric.label}{arrow}"
