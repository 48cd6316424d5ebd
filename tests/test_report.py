"""``xhdr report``: PNGs, report.json and one self-contained report.html from result files.

The inputs are written with bench/results.py's own writer (rows of the shape each suite writes), so the
report is tested against the format both benchmark halves share; a suite that did not run has no plot.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from bench import cache_cost
from bench.results import ResultFile, Row, write_results
from reports.command import build_report, headline, render
from reports.figures import linear_fit, logged_request_bars, verifier_labels
from reports.metrics import METRICS

ROOT = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _kernel_rows() -> list[Row]:
    """Kernel-cost rows for a small matrix: cost linear in bytes, the floor flat at 30 ns."""
    rows = []

    def case(name: str, group: str, payload: int, **params: int) -> None:
        common = {
            "case": name,
            "group": group,
            "frame_bytes": payload + 54,
            "payload_bytes": payload,
            "bytes_scanned": min(payload, 1024),
            "rounds": 15,
            **params,
        }
        ns = 300 + 3.0 * min(payload, 1024)
        rows.extend(
            [
                Row("extractor", "ns_per_packet", ns, "ns", common),
                Row("empty", "ns_per_packet", 30.0, "ns", common),
                Row("extractor", "ratio_to_empty", ns / 30, "x", common),
                Row("extractor", "ns_per_byte", ns / payload, "ns/B", common),
                Row("extractor", "spread_pct", 4.0, "%", common),
            ]
        )

    case("standard", "standard", 363)
    for size in (64, 512, 1500):
        case(f"frame_{size}", "frame_size", size - 54, frame_bytes_target=size)
    for count in (0, 8, 32):
        case(f"headers_{count}", "header_count", 30 + 35 * count, headers=count)
    case("configured_1", "configured", 363, configured_headers=1)
    case("worst_scan_limit", "worst", 1024)
    return rows


def _history(storage: Path) -> None:
    """Two runs in pytest-benchmark's file-storage layout, each with the standard case's extra_info."""
    machine = storage / "Linux-CPython-3.11-64bit"
    machine.mkdir(parents=True)
    for number, ratio in ((1, 80.0), (2, 70.0)):
        document = {
            "datetime": f"2026-11-2{number}T10:00:00",
            "commit_info": {"id": f"abc{number}def", "dirty": False},
            "benchmarks": [
                {
                    "name": "test_kernel_cost[standard]",
                    "extra_info": {
                        "suite": "kernel_cost",
                        "case": "standard",
                        "ratio_to_empty": ratio,
                        "kernel_ns_per_packet": ratio * 30,
                    },
                }
            ],
        }
        (machine / f"000{number}_run.json").write_text(json.dumps(document))


def _report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "report", *args],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_drawn(path: Path) -> None:
    """A plot with data in it: axes, ticks and text are drawn in greys, the series in colour, so a plot whose
    data went missing keeps its frame but has no coloured pixel (an empty axes: 0.0%, one thin line: 0.5%)."""
    pixels = matplotlib.image.imread(path)[..., :3]
    height, width = pixels.shape[:2]
    assert width >= 400 and height >= 250, (path.name, width, height)
    coloured = (pixels.max(axis=2) - pixels.min(axis=2) > 0.2).mean()
    assert coloured > 0.002, (path.name, coloured)


def _lab_rows() -> list[Row]:
    """lab_throughput's own summarise() on made-up bursts: kernel ns per frame 1000 with nothing attached,
    1200 with the empty program, 2000 with the extractor, 1500 with a capture; 3000 ns of process per line."""
    from bench import lab_throughput

    kernel = {"none": 1000, "empty": 1200, "extractor": 2000}
    samples = {}
    for mode in lab_throughput.MODES:
        ns = kernel.get(mode.partition("-")[0], 1500)
        process = 0 if mode == "none" or mode.startswith("empty") else 3000 * 1000
        samples[mode] = [
            lab_throughput.Sample(mode, 1000, 1000, 1000, 0, 0.01, ns * 1000, process, 0.0, 1, 400_000)
        ]
    return lab_throughput.summarise(samples, 1000, 1)


def _nginx_rows(kept: dict[str, tuple[float, ...]] | None = None) -> list[Row]:
    """http_nginx's own summarise() over two rounds: the extractor keeps 95% and 97% of the requests/s (97% and
    99% writing records), nginx's access log 80% and 90%; a logger takes 2,000 ns per request, and the
    extractor's XDP program 1,500. ``kept``: other shares (and rounds) of no logging's requests/s."""
    from bench import http_nginx

    base = {"requests_per_second": 1000.0, "requests": 3000.0, "nginx_cpu_ns_per_request": 10_000.0}
    kept = kept or {
        "extractor": (0.95, 0.97),
        "extractor_records": (0.97, 0.99),
        "nginx_access_log": (0.8, 0.9),
    }
    count = len(next(iter(kept.values())))
    logging = {"logged": 3000.0, "logger_cpu_ns_per_request": 2000.0}
    taken = {}
    for method in http_nginx.METHODS:
        rounds = kept.get(method, (1.0,) * count)
        program = {"xdp_program_ns_per_request": 1500.0} if method.startswith("extractor") else {}
        taken[method] = [
            base | {"requests_per_second": 1000.0 * share} | logging | program
            if method != "no_logging"
            else dict(base)
            for share in rounds
        ]
    return http_nginx.summarise(taken, 3)


def _baseline_rows() -> list[Row]:
    params = {"frame_bytes": 417}
    return [
        Row("extractor", "ns_per_packet", 2000.0, "ns", params),
        Row("empty", "ns_per_packet", 40.0, "ns", params),
        Row("af_packet_python", "ns_per_packet", 25000.0, "ns", params),
        Row("c_tpacket_v3", "ns_per_packet", 1000.0, "ns", params),
        Row("af_packet_python", "ratio_to_extractor", 12.5, "x", params),
        Row("c_tpacket_v3", "ratio_to_extractor", 0.5, "x", params),
    ]


def _gate(verdict: str) -> dict:
    cases = [
        {
            "case": "standard",
            "verdict": verdict,
            "ratio": 1.3 if verdict == "fail" else 1.0,
            "interval": [1.25, 1.35] if verdict == "fail" else [0.97, 1.03],
            "rounds": 4,
            "spread_pct": 2.0,
            "reference_ns_median": 100.0,
            "current_ns_median": 130.0,
            "reference_ns_rounds": [100.0] * 4,
            "current_ns_rounds": [130.0 if verdict == "fail" else 100.0] * 4,
        }
    ]
    return {
        "verdict": verdict,
        "cases": cases,
        "reference": {"label": "HEAD~1"},
        "current": {"label": "work tree"},
        "threshold_pct": 10.0,
        "statistic": "median paired ratio",
    }


def _verify() -> dict:
    programs = [
        {"name": name, "accepted": True, "stats": {"verified_insns": insns}}
        for name, insns in (("xhdr_extract", 9000), ("xhdr_scan", 300_000))
    ]
    variant = {"key": "xhdr.c/defaults", "variant": "defaults", "accepted": True, "programs": programs}
    variant["stats"] = {"verified_insns": 309_000}
    return {"tool": "xhdr verify", "kernel": "6.1.0", "variants": [variant]}


def _fuzz(classes: int, repros: int = 0) -> dict:
    return {
        "tool": "xhdr fuzz",
        "target": "http",
        "examples": 500,
        "examples_per_second": 80.0,
        "outcome_classes": [f"logged/none/none/{n}" for n in range(classes)] + ["not_http/none/none/0"],
        "repros": [f"fuzz/corpus/{n}" for n in range(repros)],
    }


def _coverage() -> dict:
    """The coverage part of an ``xhdr fuzz --coverage`` summary: labels first hit at these times."""
    return {
        "feedback": False,
        "labels": 78,
        "hit": 60,
        "over_time": [[0.0, 0, 0], [1.5, 20, 40], [30.0, 900, 60]],
    }


def _cache_rows() -> list[Row]:
    """cache_cost's own summarise() on made-up rounds: warm, L2 and last-level cache written over."""
    taken = {
        "warm": ([1400.0, 1420.0], [32.0, 30.0]),
        "l2_evicted": ([2700.0, 2760.0], [200.0, 210.0]),
        "llc_evicted": ([10400.0, 10500.0], [590.0, 600.0]),
    }
    return cache_cost.summarise(
        taken, {"l2_evicted": 1 << 20, "llc_evicted": 32 << 20}, runs=40, frame_bytes=417
    )


def _inputs(directory: Path, gate: str = "fail") -> list[str]:
    """Every kind of input the report reads, written as the commands write them."""
    bench = directory / "bench"
    paths = [
        write_results("kernel_cost", _kernel_rows(), directory=bench),
        write_results("baselines", _baseline_rows(), directory=bench),
        write_results("lab_throughput", _lab_rows(), directory=bench),
        write_results("http_nginx", _nginx_rows(), directory=bench),
        write_results("cache_cost", _cache_rows(), directory=bench),
    ]
    for name, document in (
        ("gate.json", _gate(gate)),
        ("verify.json", _verify()),
        ("fuzz_1.json", _fuzz(3)),
        ("fuzz_2.json", {**_fuzz(5, repros=1), "coverage": _coverage()}),
    ):
        paths.append(bench / name)
        paths[-1].write_text(json.dumps(document))
    return [str(path) for path in paths]


ALL_PLOTS = {
    "cpu_per_logged_request.png",
    "nginx.png",
    "baselines.png",
    "cost_vs_payload.png",
    "cost_by_case.png",
    "caches.png",
    "gate.png",
    "verifier.png",
    "fuzz.png",
    "fuzz_coverage.png",
    "trend.png",
}


def test_report_renders_every_section_with_the_verdict_first(tmp_path: Path) -> None:
    history = tmp_path / "history"
    _history(history)
    out = tmp_path / "report"
    done = _report(*_inputs(tmp_path), "--out", str(out), "--history", str(history))
    assert done.returncode == 0, done.stderr
    assert "FAIL" in done.stderr.splitlines()[0], done.stderr
    document = json.loads((out / "report.json").read_text())
    assert {plot["file"] for plot in document["plots"]} == ALL_PLOTS
    for plot in document["plots"]:
        assert_drawn(out / plot["file"])
        assert plot["metrics"] and all(name in METRICS for name in plot["metrics"]), plot
    assert sorted(p.name for p in out.glob("*.png")) == sorted(ALL_PLOTS), "no stray or empty plot"
    assert document["history_runs"] == 2
    targets = {t["what"]: t for t in document["targets"]}
    assert targets["standard request, ratio to the empty program"]["met"] is False
    assert targets["scan cost per extra payload byte (ns)"]["measured"] == _approx(3.0)
    assert document["linear_fits"]["header_count"]["slope"] == _approx(3.0)
    page = (out / "report.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(ALL_PLOTS) and all(src.startswith("data:image/png;base64,") for src in sources)
    assert "href=" not in page, "the page must not link to anything outside itself"
    # what a reader sees first: the banner (gate FAIL, the fuzz disagreement), then the headline table
    banner, headline, first_plot = (
        page.index("<div class='banner banner-fail'"),
        page.index("other ways to log"),
        page.index("<img"),
    )
    assert banner < headline < first_plot
    top = page[banner:headline]
    assert "A/B gate HEAD~1 → work tree: FAIL" in top and "1 disagreement with the reference" in top
    assert "0 of 3 met" in top and "1 not measured" in top
    # the kernel matrix and the data tables, labelled from the metric table
    assert "Linux 6.1.0" in page and "309,000" in page
    assert "worst_scan_limit" in page and "CPU per logged request (ns) ↓" in page
    assert "c_tpacket_v3 c_tpacket_v3" not in page and "lower is better)" not in page


def test_banner_says_fail_only_for_a_failure(tmp_path: Path) -> None:
    files = [_result("kernel_cost", _kernel_rows())]
    failed = build_report(files, _gate("fail"), [])["banner"]
    assert failed["status"] == "fail" and "FAIL: slower: standard" in failed["line"]
    cold = build_report(files, {**_gate("fail"), "caches": "l2_evicted"}, [])["banner"]
    assert "A/B gate HEAD~1 → work tree, caches l2_evicted" in cold["line"], "a cold gate says so"
    passed = build_report(files, _gate("pass"), [])["banner"]
    assert passed["status"] == "missed", "the gate passed; the issue-9 targets the rows miss remain"
    assert "gate" not in passed["line"] and "targets" in passed["line"]
    inconclusive = build_report(files, _gate("inconclusive"), [], fuzz=[_fuzz(2)])["banner"]
    assert inconclusive["status"] == "missed"
    rejected = _verify()
    rejected["variants"][0]["accepted"] = False
    assert build_report(files, None, [], verify=[rejected])["banner"]["status"] == "fail"
    assert build_report([], None, [])["banner"]["status"] == "no verdict"


@pytest.mark.parametrize(
    ("extractor", "better", "says"),
    [
        ((0.88, 0.9, 0.89, 0.91, 0.9, 0.87), True, "ahead"),
        ((0.7, 0.72, 0.69, 0.71, 0.7, 0.68), False, "behind"),
        ((0.88, 0.72, 0.81, 0.9, 0.7, 0.79), None, "too close to tell"),
    ],
)
def test_the_nginx_row_is_better_or_worse_only_when_its_rounds_interval_says_so(
    extractor: tuple[float, ...], better: bool | None, says: str
) -> None:
    """Against nginx's access log (0.8 of no logging in each of six rounds), the row's verdict and colour are
    the interval's, as the suite's own verdict line is: a median above 1 with rounds on both sides is no win."""
    access_log = (0.8,) * len(extractor)
    rows = _nginx_rows(
        {"extractor": extractor, "extractor_records": extractor, "nginx_access_log": access_log}
    )
    question = "nginx requests/s, relative to nginx's access log in the same round"
    (nginx,) = [
        h
        for h in headline([_result("http_nginx", rows)])
        if h["question"] == question and h["extractor"]["label"] == "extractor"
    ]
    assert nginx["extractor_better"] is better, nginx
    assert f"; {says} (95% interval " in nginx["says"], nginx


def test_headline_holds_the_ratios_of_the_given_rows() -> None:
    files = [
        _result("lab_throughput", _lab_rows()),
        _result("http_nginx", _nginx_rows()),
        _result("baselines", _baseline_rows()),
    ]
    rows = {(h["question"], h["extractor"]["label"], h["other"]["label"]): h for h in headline(files)}
    # lab: extractor 2000 - 1000 + 3000 = 4000 ns per logged request; C capture 1500 - 1000 + 3000 = 3500
    lab = rows["CPU per logged request (lab)", "extractor, native XDP", "C capture (TPACKET_V3)"]
    assert lab["extractor"]["value"] == _approx(4000) and lab["other"]["value"] == _approx(3500)
    assert lab["ratio"] == _approx(4000 / 3500) and lab["extractor_better"] is False
    # without the hook (1200 - 1000): program 2000 - 1200 = 800 and consumer 3000
    question = "CPU per logged request without the XDP hook (lab: program and consumer)"
    bare = rows[question, "extractor, native XDP", "C capture (TPACKET_V3)"]
    assert bare["extractor"]["value"] == _approx(3800) and bare["ratio"] == _approx(3800 / 3500)
    # nginx against its access log: the median of the rounds' own ratios (of two, the geometric mean: the median
    # of the log ratios, harness/core/paired.py), not the ratio of the medians (0.96 / 0.85)
    question = "nginx requests/s, relative to nginx's access log in the same round"
    nginx = rows[question, "extractor", "nginx access log"]
    assert nginx["ratio"] == _approx(math.sqrt(0.95 / 0.8 * 0.97 / 0.9))
    # two rounds give no interval: neither better nor worse, and the row says how many rounds would
    assert nginx["extractor_better"] is None, nginx
    assert nginx["says"].endswith("; too few rounds for an interval (give --rounds 5 or more)"), nginx
    records = rows[question, "extractor, xhdr log --records", "nginx access log"]
    assert records["ratio"] == _approx(math.sqrt(0.97 / 0.8 * 0.99 / 0.9))
    kept = rows["nginx requests/s kept, relative to no logging", "extractor", "C capture (TPACKET_V3)"]
    assert kept["ratio"] == _approx(math.sqrt(0.95 * 0.97) / 1.0)
    assert not [key for key in rows if key[0].startswith("nginx requests/s kept") and "access log" in key[2]]
    parse = rows[
        "parsing one request, same frame", "extractor (test run)", "Python capture (reference parser)"
    ]
    assert parse["ratio"] == _approx(2000 / 25000) and parse["says"] == "extractor: 12.5x less"
    # what logging adds per request: the extractor's program and logger, 1500 + 2000, against the capture's 2000
    added = rows[
        "CPU the logging adds per request under nginx",
        "extractor (XDP program and xhdr log)",
        "C capture (TPACKET_V3)",
    ]
    assert added["extractor"]["value"] == _approx(3500) and added["ratio"] == _approx(3500 / 2000)


def test_cpu_bars_add_up_to_the_suites_totals() -> None:
    """The extractor's bar is hook + program + consumer, a capture's delivery + process, and each sums to the
    suite's own cpu_ns_per_logged_request (the extractor's process CPU is its consumer, counted once)."""
    bars = {
        label: (parts, total)
        for label, parts, total in logged_request_bars([_result("lab_throughput", _lab_rows())])
    }
    assert set(bars["extractor, native XDP"][0]) == {"hook_cost_ns", "program_cost_ns", "logger_cost_ns"}
    assert set(bars["C capture (TPACKET_V3)"][0]) == {"kernel_delivery_cost_ns", "process_cpu_ns_per_request"}
    for label, (parts, total) in bars.items():
        assert sum(parts.values()) == _approx(total), label
    assert bars["extractor, native XDP"][0]["hook_cost_ns"] == _approx(200)


def test_report_without_other_suites_plots_only_the_kernel(tmp_path: Path) -> None:
    files = [_result("kernel_cost", _kernel_rows())]
    document = build_report(files, None, [])
    render(document, files, None, [], [], tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["cost_by_case.png", "cost_vs_payload.png"]
    assert document["headline"] == [], "no other way to log was measured: nothing to compare"


def test_a_users_program_is_plotted_by_its_name_and_held_to_no_target(tmp_path: Path) -> None:
    """Rows of ``xhdr bench --object`` name the program; the plots and the table follow, and the extractor's
    targets are not judged on them."""
    rows = [
        Row("reqline" if r.method == "extractor" else r.method, r.metric, r.value, r.unit, r.params)
        for r in _kernel_rows()
    ]
    files = [_result("kernel_cost", rows)]
    document = build_report(files, None, [])
    assert document["targets"] == [] and document["banner"]["status"] == "no verdict"
    render(document, files, None, [], [], tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["cost_by_case.png", "cost_vs_payload.png"]
    assert_drawn(tmp_path / "cost_by_case.png")
    page = (tmp_path / "report.html").read_text()
    assert "reqline: time per packet" in page and "extractor:" not in page


def _result(suite: str, rows: list[Row]) -> ResultFile:
    return ResultFile(suite, "2026-12-01T00:00:00+00:00", {}, {"max_scan_bytes": 1024}, tuple(rows))


def test_report_rejects_a_foreign_file_in_one_line(tmp_path: Path) -> None:
    foreign = tmp_path / "other.json"
    foreign.write_text(json.dumps({"format": 99, "suite": "x", "rows": []}))
    done = _report(str(foreign), "--out", str(tmp_path / "r"))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "other.json" in done.stderr, done.stderr


def test_a_directory_is_read_as_its_xhdr_documents(tmp_path: Path) -> None:
    """`xhdr report DIR` reads what `xhdr bench --out DIR` wrote, skipping pytest-benchmark's own file there."""
    results = write_results("kernel_cost", _kernel_rows(), directory=tmp_path / "bench").parent
    (results / "pytest-benchmark.json").write_text(json.dumps({"machine_info": {}, "benchmarks": []}))
    done = _report(str(results), "--out", str(tmp_path / "r"), "--history", str(tmp_path / "no-history"))
    assert done.returncode == 0, done.stderr
    document = json.loads((tmp_path / "r" / "report.json").read_text())
    assert {plot["file"] for plot in document["plots"]} == {"cost_vs_payload.png", "cost_by_case.png"}
    empty = tmp_path / "empty"
    empty.mkdir()
    done = _report(str(empty), "--out", str(tmp_path / "r2"))
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and str(empty) in done.stderr, done.stderr


def test_verifier_bars_name_the_commit_and_kernel_only_where_they_differ() -> None:
    """Verify documents of two commits plot as one group of bars per commit (issue 15: per commit)."""
    older, newer = {**_verify(), "commit": "1111111"}, {**_verify(), "commit": "2222222"}
    assert [label for label, _ in verifier_labels([older])] == ["defaults"]
    assert [label for label, _ in verifier_labels([older, newer])] == [
        "defaults  (commit 1111111)",
        "defaults  (commit 2222222)",
    ]
    other_kernel = {**newer, "kernel": "5.10.0"}
    assert [label for label, _ in verifier_labels([older, other_kernel])] == [
        "defaults  (commit 1111111, Linux 6.1.0)",
        "defaults  (commit 2222222, Linux 5.10.0)",
    ]


def test_linear_fit_reports_slope_and_r2() -> None:
    fit = linear_fit([(0, 10), (100, 310), (200, 610), (300, 910)])
    assert fit is not None and fit["slope"] == _approx(3.0) and fit["r2"] == _approx(1.0)
    assert linear_fit([(0, 1), (1, 2)]) is None


def _approx(value: float):
    import pytest

    return pytest.approx(value, rel=1e-6)
