"""Benchmark 2: the same frame through the extractor and through each user-space parser, side by side.

The extractor's figure is BPF_PROG_TEST_RUN's (event written to the ring buffer included) next to the
empty program's; the baselines' figures are their parsers on the same bytes in a loop, from frame to
extracted fields (C: capture.c's bench mode; Python: the reference's FlowTracker and httptools under
time.perf_counter). The frame is a SYN with data, so every repetition opens its flow and is parsed.
The cost of getting the frame to user space and of consuming events is benchmark 3's (bench/lab_throughput.py),
measured over the lab with the kernel's accounting.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bench.baselines import c_parse_ns
from bench.baselines.pycapture import httptools_parser, reference_parser
from bench.kernel_cost import benchmark_frame
from bench.results import Row, write_results
from harness.core.config import ExtractorConfig
from harness.core.cost import measure_cost
from harness.core.program import Program
from harness.oracle.corpus import STANDARD_CASE

SUITE = "baselines"


def python_parse_ns(parse: Callable[[], object], repeat: int, rounds: int) -> float:
    """Median over rounds of the mean time of ``repeat`` calls, in ns."""
    figures = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for _ in range(repeat):
            parse()
        figures.append((time.perf_counter_ns() - started) / repeat)
    return statistics.median(figures)


def run(quick: bool, progress: Callable[[str], None] = print) -> Path:
    """Benchmark 2 on the standard request; writes reports/out/bench/baselines.json and returns its path."""
    config, key = ExtractorConfig(), os.urandom(16)
    frame = benchmark_frame()  # a SYN with data: every test-run repetition is parsed
    rounds, repeat = (5, 2_000) if quick else (20, 20_000)
    params = {"frame_bytes": len(frame), "case": STANDARD_CASE, "rounds": rounds}
    progress("extractor and empty program (test run)")
    with Program(config, key=key) as program:
        cost = measure_cost(program, frame, rounds=rounds, repeat=200)
    progress("C parser")
    c_ns = statistics.median(c_parse_ns(frame, config, key, repeat * 50) for _ in range(rounds))
    progress("Python parsers")
    python_repeat = max(repeat // 20, 100)
    reference, httptools = reference_parser(config, key), httptools_parser(config, key)
    reference_ns = python_parse_ns(lambda: reference(frame), python_repeat, rounds)
    httptools_ns = python_parse_ns(lambda: httptools(frame), python_repeat, rounds)
    figures = {
        "empty": cost.empty_ns,
        "extractor": cost.extractor_ns,
        "c_tpacket_v3": c_ns,
        "af_packet_python": reference_ns,
        "af_packet_httptools": httptools_ns,
    }
    rows = [Row(method, "ns_per_packet", value, "ns", params) for method, value in figures.items()]
    rows += [
        Row(method, "ratio_to_extractor", value / cost.extractor_ns, "x", params)
        for method, value in figures.items()
        if method not in ("empty", "extractor")
    ]
    rows.append(Row("extractor", "ratio_to_c_baseline", cost.extractor_ns / c_ns, "x", params))
    return write_results(SUITE, rows, config)


if __name__ == "__main__":
    import sys

    print(run(quick="--quick" in sys.argv))
