"""The lab benchmarks' plumbing counts what it claims to count (short runs; the figures are not judged).

A throughput or logging figure is only as good as its bookkeeping: every frame trafgen sends must reach the
gateway, and every one must end up either handled or counted as lost, for the extractor (the lines
``xhdr log`` wrote plus its events_lost) as for the C baseline (requests plus socket drops). For real HTTP,
nginx's own access log must hold every request wrk completed.
"""

from __future__ import annotations

import os

import pytest

from bench import http_nginx
from bench.lab_throughput import bpf_stats, lab_frame, measure, trafgen_config
from harness.core.config import ExtractorConfig
from harness.core.cost import empty_program_fd
from netns.lab import Lab

FRAMES = 20_000
MIN_LOG_BYTES = 100  # the standard request's log line or record holds its target and eight headers


@pytest.mark.lab
@pytest.mark.kernel
def test_every_frame_is_received_and_either_handled_or_counted_lost(lab: Lab) -> None:
    config, key = ExtractorConfig(), os.urandom(16)
    with empty_program_fd() as empty_fd, bpf_stats():
        path = trafgen_config(lab, lab_frame())
        for mode in ("none", "extractor-native", "extractor-native-records", "c_tpacket_v3"):
            sample = measure(lab, path, mode, FRAMES, empty_fd, config, key)
            assert sample.received == FRAMES, mode
            assert sample.kernel_ns > 0 and sample.pps > 0, mode
            if mode != "none":
                assert sample.handled > 0 and sample.handled + sample.lost == FRAMES, mode
                assert sample.process_ns > 0, mode
                # each leg writes its log to a file, the capture as xhdr log: a line or record per request
                assert sample.output_bytes >= sample.handled * MIN_LOG_BYTES, mode
            if mode.startswith("extractor-"):
                assert sample.prog_ns > 0, "bpf_stats should time the attached program"


@pytest.mark.lab
@pytest.mark.kernel
@pytest.mark.parametrize("method", http_nginx.ACCESS_LOG_LEGS)
def test_nginx_access_log_holds_every_request_wrk_completed(lab: Lab, method: str) -> None:
    """Also behind the empty program (``access_log_empty_xdp``), which then ran for every request."""
    with empty_program_fd() as empty_fd, bpf_stats():
        figures = http_nginx.measure(lab, method, 1, ExtractorConfig(), empty_fd)
    assert figures["requests"] > 0 and figures["requests_per_second"] > 0
    if method in http_nginx.EMPTY_XDP_LEGS:
        assert figures["xdp_program_runs_per_request"] >= 1, figures
    else:
        assert "xdp_program_runs_per_request" not in figures, figures
    assert figures["requests"] <= figures["logged"] <= figures["requests"] + http_nginx.CONNECTIONS
    assert figures["latency_p50_us"] <= figures["latency_p99_us"]
    # wrk sends one request over and over, so every line of the log is as long as the first
    assert lab.workdir is not None
    with (lab.workdir / "access.log").open("rb") as log:
        assert figures["log_bytes_per_request"] == len(log.readline())


@pytest.mark.lab
@pytest.mark.kernel
def test_nginx_legs_with_an_xdp_program_time_its_runs(lab: Lab) -> None:
    with empty_program_fd() as empty_fd, bpf_stats():
        figures = http_nginx.measure(lab, "empty_xdp", 1, ExtractorConfig(), empty_fd)
    assert figures["requests"] > 0
    assert figures["xdp_program_ns_per_request"] > 0, "bpf_stats should time the attached program"
    # every request wrk completed came in a segment of its own, which ran the program at least once
    assert figures["xdp_program_runs_per_request"] >= 1, figures
