"""``xhdr report``: PNGs, report.json and one self-contained report.html from result files.

The inputs are written with bench/results.py's own writer (rows of the shape each suite writes), so the
report is tested against the format both benchmark halves share; a suite that did not run has no plot.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image

from bench.results import Row, write_results
from reports.figures import linear_fit

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


def test_report_renders_pngs_and_self_contained_html(tmp_path: Path) -> None:
    results = write_results("kernel_cost", _kernel_rows(), directory=tmp_path / "bench")
    baseline = write_results(
        "baselines",
        [
            Row("af_packet_python", "ns_per_packet", 25000.0, "ns", {"frame_bytes": 417}),
            Row("c_tpacket_v3", "ns_per_packet", 1800.0, "ns", {"frame_bytes": 417}),
        ],
        directory=tmp_path / "bench",
    )
    history = tmp_path / "history"
    _history(history)
    out = tmp_path / "report"
    done = _report(str(results), str(baseline), "--out", str(out), "--history", str(history))
    assert done.returncode == 0, done.stderr
    expected = {
        "cost_vs_frame_size.png",
        "cost_vs_header_count.png",
        "cost_by_case.png",
        "baselines.png",
        "trend.png",
    }
    for name in expected:
        assert (out / name).read_bytes().startswith(PNG_MAGIC), name
        assert_drawn(out / name)
    assert not (out / "gate.png").exists(), "no gate ran: no gate plot"
    document = json.loads((out / "report.json").read_text())
    assert set(document["plots"]) == expected
    assert document["history_runs"] == 2
    standard = {t["what"]: t for t in document["targets"]}
    assert standard["standard request, ratio to the empty program"]["met"] is False
    assert standard["scan cost per extra payload byte (ns)"]["measured"] == _approx(3.0)
    assert document["linear_fits"]["header_count"]["slope"] == _approx(3.0)
    page = (out / "report.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(expected) and all(src.startswith("data:image/png;base64,") for src in sources)
    assert "href=" not in page, "the page must not link to anything outside itself"
    assert "worst_scan_limit" in page and "c_tpacket_v3" in page and "ns per payload byte" in page


def test_report_without_other_suites_plots_only_the_kernel(tmp_path: Path) -> None:
    results = write_results("kernel_cost", _kernel_rows(), directory=tmp_path)
    done = _report(str(results), "--out", str(tmp_path / "r"), "--history", str(tmp_path / "none"))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "r").glob("*.png")) == [
        "cost_by_case.png",
        "cost_vs_frame_size.png",
        "cost_vs_header_count.png",
    ]


def test_report_rejects_a_foreign_file_in_one_line(tmp_path: Path) -> None:
    foreign = tmp_path / "other.json"
    foreign.write_text(json.dumps({"format": 99, "suite": "x", "rows": []}))
    done = _report(str(foreign), "--out", str(tmp_path / "r"))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "other.json" in done.stderr, done.stderr


def test_linear_fit_reports_slope_and_r2() -> None:
    fit = linear_fit([(0, 10), (100, 310), (200, 610), (300, 910)])
    assert fit is not None and fit["slope"] == _approx(3.0) and fit["r2"] == _approx(1.0)
    assert linear_fit([(0, 1), (1, 2)]) is None


def _approx(value: float):
    import pytest

    return pytest.approx(value, rel=1e-6)
