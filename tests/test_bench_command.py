"""``xhdr bench`` end to end: a real (small) kernel-cost run through pytest-benchmark, and the gate's CLI.

Only structure and provenance are asserted (what was measured, on what, where it was written), never a
timing: timings are asserted only as paired ratios, in tests/test_bench_gate.py.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.kernel_cost import (
    FRAME_OVERHEAD,
    cases,
    max_repeat,
    sized_request,
    worst_last_header_last,
    worst_scan_limit,
)
from harness.core.config import ExtractorConfig
from harness.core.counters import Counter
from harness.core.event import event_struct
from harness.core.program import Program
from harness.core.rules import CONDITIONS_MAX, MAX_RULES
from harness.core.testrun import test_run
from harness.oracle.differences import event_differences
from harness.oracle.reference import FlowTracker, extract

ROOT = Path(__file__).resolve().parent.parent
XHDR = [sys.executable, "-m", "harness.cli"]


def test_matrix_covers_the_issue() -> None:
    """Frame sizes 64..1500, header counts 0..32, configured headers 1..8, standard and worst cases, a TLS
    ClientHello (issue 16), and rule sets of 1, 8 and the most rules and conditions (issue 12)."""
    full = cases("full")
    groups = {case.group for case in full}
    assert groups == {"standard", "frame_size", "header_count", "configured", "rules", "worst", "tls"}
    rule_sets = [(len(c.config.rules), c.params["conditions"]) for c in full if c.group == "rules"]
    assert rule_sets == [(1, 1), (MAX_RULES, MAX_RULES * 2 - 1), (MAX_RULES, CONDITIONS_MAX)]
    sizes = [len(case.frame) for case in full if case.group == "frame_size"]
    assert min(sizes) == 64 and max(sizes) == 1500
    counts = [case.params["headers"] for case in full if case.group == "header_count"]
    assert min(counts) == 0 and max(counts) == 32
    configured = [len(case.config.headers) for case in full if case.group == "configured"]
    assert sorted(configured) == list(range(1, 9))
    assert {case.name for case in cases("quick")} <= {case.name for case in full}


@pytest.mark.parametrize("size", [64, 100, 512, 1500])
def test_sized_request_has_the_exact_frame_size(size: int) -> None:
    assert len(sized_request(size)) == size


def test_worst_cases_reach_both_limits() -> None:
    """The worst cases must really fill the view and the header-line limit, per the reference extractor."""
    config = ExtractorConfig()
    for frame in (worst_scan_limit(config), worst_last_header_last(config)):
        assert len(frame) - FRAME_OVERHEAD == config.max_scan_bytes
        expected = extract(frame, config)
        assert len(expected.events) == 1
        assert expected.events[0].header_lines == config.max_header_lines
    last = extract(worst_last_header_last(config), config).events[0]
    assert all(slot.present for slot in last.headers), "every configured header must be present"


def test_every_repetition_of_a_case_frame_is_a_request_start() -> None:
    """A case runs one frame many times in a row; each must open its flow again (a SYN with data), or every
    repetition after the first would be `retransmitted` and the figure would time the cheap path (R16)."""
    for case in cases("full"):
        tracker = FlowTracker(case.config)
        first, again = tracker.feed(case.frame), tracker.feed(case.frame)
        logged = Counter.TLS_HELLO if case.group == "tls" else Counter.HTTP_REQUEST
        assert first.outcome is logged and first.counters[Counter.FLOWS_OPENED] == 1, case.name
        assert again == first == extract(case.frame, case.config), case.name


@pytest.mark.kernel
def test_repeated_case_frame_logs_the_references_events_every_run(program: Program) -> None:
    """The kernel agrees: REPEAT runs of one frame in one test run write REPEAT times the reference's events."""
    repeat = 5
    for case in cases("quick", program.config):
        if case.config.headers != program.config.headers:
            continue  # the configured-headers sweep reconfigures maps; the frames are the standard one
        program.take_events()
        test_run(program.fd, case.frame, repeat)
        events = program.take_events()
        expected = extract(case.frame, program.config, program.key).events
        assert len(events) == repeat * len(expected), case.name
        for got, want in zip(events, expected * repeat, strict=True):
            assert not event_differences(got, want), (case.name, event_differences(got, want))


def test_repeat_is_capped_by_the_ring() -> None:
    """A round's events must fit the ring: repeat times the record size never exceeds its capacity."""
    config = ExtractorConfig()
    record = ctypes.sizeof(event_struct(config.max_target_len, config.max_value_len)) + 8
    assert 1 <= max_repeat(config) * record <= config.ringbuf_pages * 4096
    assert max_repeat(config, events_per_run=4) <= max_repeat(config) // 4
    assert max_repeat(ExtractorConfig(ringbuf_pages=1)) < max_repeat(ExtractorConfig(ringbuf_pages=2))


RUN_HERE = ("kernel_cost", "baselines")


@pytest.mark.kernel
def test_quick_bench_writes_results_with_provenance(tmp_path: Path) -> None:
    out, storage = tmp_path / "out", tmp_path / "history"
    done = subprocess.run(
        [
            *XHDR,
            "bench",
            "--quick",
            "-k",
            "standard or frame_64",
            # two suites, the pytest-benchmark one and a module one, in one command; the lab, nginx and
            # consumer suites each take half a minute or more and are run by tests/test_bench_lab.py and
            # tests/test_bench_consumer.py, the fuzz campaigns by tests/test_fuzz.py
            *(arg for suite in RUN_HERE for arg in ("--suite", suite)),
            "--out",
            str(out),
            "--storage",
            f"file://{storage}",
        ],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    assert "[  1/2]" in done.stderr and "standard request: extractor" in done.stdout
    summary = json.loads((out / "kernel_cost.json").read_text())
    assert summary["format"] == 1 and summary["suite"] == "kernel_cost"
    assert {"cpu", "cores", "kernel", "commit"} <= set(summary["machine"])
    assert summary["machine"]["kernel"] and summary["machine"]["commit"] != "unknown"
    assert summary["config"]["max_scan_bytes"] == ExtractorConfig().max_scan_bytes
    metrics = {(row["method"], row["metric"], row["params"]["case"]) for row in summary["rows"]}
    for case in ("standard", "frame_64"):
        for key in (
            ("extractor", "ns_per_packet"),
            ("empty", "ns_per_packet"),
            ("extractor", "ratio_to_empty"),
        ):
            assert (*key, case) in metrics
    native = json.loads((out / "pytest-benchmark.json").read_text())
    infos = [bench["extra_info"] for bench in native["benchmarks"]]
    assert {info["case"] for info in infos} == {"standard", "frame_64"}
    assert all(info["kernel_ns_per_packet"] > info["empty_ns_per_packet"] > 0 for info in infos)
    assert list(storage.glob("*/*.json")), "the run must be saved in pytest-benchmark's storage"
    baselines = json.loads((out / "baselines.json").read_text())
    assert baselines["suite"] == "baselines" and baselines["machine"] == summary["machine"]
    assert {row["method"] for row in baselines["rows"]} >= {"empty", "extractor"}


def test_gate_with_unknown_ref_is_one_line_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [*XHDR, "bench", "--compare", "no-such-ref-xyz", "--out", str(tmp_path)],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "no-such-ref-xyz" in done.stderr, done.stderr
