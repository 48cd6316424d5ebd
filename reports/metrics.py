"""The benchmark metrics, declared once: every plot label, table header, unit and direction reads this table.

Every metric a suite writes (bench/) is declared here; tests/test_metrics.py finds the metrics the suites
write in their code and fails on one that is missing, and the report draws only declared metrics
(``METRICS[name]`` raises on any other). A new metric is one line.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

Better = Literal["lower", "higher", "neither"]


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    label: str  # axis and table label, without the unit
    unit: str
    better: Better  # "neither": a count that describes the workload, not a score
    meaning: str

    @property
    def direction(self) -> str:
        return {"lower": "lower is better", "higher": "higher is better"}.get(
            self.better, "a count, no direction"
        )

    @property
    def axis(self) -> str:
        """``label (unit), lower is better``: what an axis shows and which way is good."""
        unit = f" ({self.unit})" if self.unit else ""
        return f"{self.label}{unit}, {self.direction}" if self.better != "neither" else f"{self.label}{unit}"


def _m(name: str, label: str, unit: str, better: Better, meaning: str) -> Metric:
    return Metric(name, label, unit, better, meaning)


_TABLE = (
    # kernel_cost (BPF_PROG_TEST_RUN, bench/kernel_cost.py) and the user-space baselines (bench/baselines/)
    _m("ns_per_packet", "time per packet", "ns", "lower", "kernel-reported mean time per test run, or a user-space parser's time per frame; median of rounds"),
    _m("ns_per_byte", "time per payload byte", "ns/B", "lower", "ns per packet divided by the TCP payload bytes"),
    _m("ratio_to_empty", "program / empty program", "x", "lower", "median of per-round ratios of the measured program to the empty one, same run"),
    _m("spread_pct", "round spread", "%", "lower", "interquartile range of the rounds over their median"),
    _m("ratio_to_extractor", "baseline / extractor", "x", "higher", "the baseline's time per frame over the extractor's: how many times the extractor's cost the baseline pays"),
    _m("ratio_to_c_baseline", "extractor / C baseline", "x", "lower", "the extractor's cost over the C TPACKET_V3 baseline's (same frame, or CPU per logged request in the lab)"),
    # the cache suite (bench/cache_cost.py)
    _m("ns_per_run", "time per run", "ns", "lower", "kernel-reported time of one test run (its two clock reads included), after the caches were left as the row's caches say; median of rounds"),
    _m("cache_penalty_ns", "time the cold caches add", "ns", "lower", "the measured program's (the extractor's or a user's) extra time per run over warm caches, less the empty program's, per round; median of rounds"),
    # the A/B gate (bench/ab_gate.py)
    _m("gate_ratio", "current / reference", "x", "lower", "median paired ratio of the regression gate"),
    # lab_throughput (trafgen bursts through the lab, bench/lab_throughput.py)
    _m("packets_per_second", "packets received per second", "pps", "higher", "frames the gateway received per second of the burst"),
    _m("kernel_cpu_ns_per_packet", "kernel CPU per packet", "ns", "lower", "sender plus softirq CPU time per frame sent"),
    _m("process_cpu_ns_per_request", "process (parse and write)", "ns", "lower", "xhdr log with its consumer, or the capture process, per request it handled"),
    _m("requests_handled", "requests handled", "requests", "neither", "lines xhdr log wrote or requests the baseline logged (should equal the frames sent)"),
    _m("events_lost", "events lost", "events", "lower", "ring-buffer drops (extractor, consumer) or socket drops (captures) during the run"),
    _m("softirq_ticks", "softirq ticks", "ticks", "lower", "/proc/stat softirq ticks during the burst (all CPUs)"),
    _m("bpf_run_ns_per_packet", "XDP program run time per packet", "ns", "lower", "the attached program's own run time (bpf_stats) per run"),
    _m("hook_cost_ns", "hook", "ns", "lower", "kernel CPU per frame with the empty program attached, less with nothing attached"),
    _m("program_cost_ns", "program", "ns", "lower", "kernel CPU per frame with the extractor attached, less with the empty program"),
    _m("logger_cost_ns", "consumer (xhdr log)", "ns", "lower", "xhdr log and its consumer, burst start to last line written, per line"),
    _m("kernel_delivery_cost_ns", "delivery", "ns", "lower", "kernel CPU per frame with the capture running, less with nothing attached (copy to the socket)"),
    _m("cpu_ns_per_logged_request", "CPU per logged request", "ns", "lower", "all CPU the logging method adds, kernel and process, per request logged"),
    _m("program_and_logger_ns", "program and consumer", "ns", "lower", "the extractor's program and xhdr log per logged request, without the hook any XDP program pays (issue 11's measure)"),
    _m("program_and_logger_to_c_baseline", "program and consumer / C baseline", "x", "lower", "program and consumer per logged request over the C TPACKET_V3 baseline's CPU per logged request"),
    # http_nginx (wrk against nginx through the lab, bench/http_nginx.py)
    _m("requests_per_second", "requests per second", "req/s", "higher", "wrk's completed requests per second"),
    _m("requests", "requests completed", "requests", "neither", "requests wrk completed in the run"),
    _m("rps_ratio_to_no_logging", "requests/s relative to no logging", "x", "higher", "median over rounds of requests/s over the same round's run without logging"),
    _m("rps_ratio_round", "requests/s relative to no logging, one round", "x", "higher", "one round's requests/s over that round's run without logging"),
    _m("rps_ratio_to_access_log", "requests/s relative to nginx's access log", "x", "higher", "median over rounds of requests/s over the same round's run with nginx's own access log (issue 11's target: above 1)"),
    _m("rps_ratio_to_access_log_round", "requests/s relative to nginx's access log, one round", "x", "higher", "one round's requests/s over that round's run with nginx's own access log"),
    _m("rps_ratio_to_access_log_on_hook", "requests/s relative to nginx's access log behind the same hook", "x", "higher", "median over rounds of requests/s over the same round's run with nginx's access log and the empty XDP program attached: what each way of logging adds behind the hook both pay"),
    _m("rps_ratio_to_access_log_on_hook_round", "requests/s relative to nginx's access log behind the same hook, one round", "x", "higher", "one round's requests/s over that round's run with nginx's access log and the empty XDP program attached"),
    _m("latency_p50_us", "latency p50", "us", "lower", "wrk's median request latency"),
    _m("latency_p75_us", "latency p75", "us", "lower", "wrk's 75th percentile request latency"),
    _m("latency_p90_us", "latency p90", "us", "lower", "wrk's 90th percentile request latency"),
    _m("latency_p99_us", "latency p99", "us", "lower", "wrk's 99th percentile request latency"),
    _m("logged", "requests logged", "requests", "neither", "lines the log holds (should equal requests completed, up to one per connection more)"),
    _m("requests_not_logged", "requests not logged", "requests", "lower", "requests wrk completed that the log lacks, summed over rounds"),
    _m("responses_logged", "responses logged", "requests", "neither", "response lines the log holds with responses on (should equal the requests logged)"),
    _m("logger_cpu_ns_per_request", "logger CPU per request", "ns", "lower", "the logging process (xhdr log with its consumer, or the capture) per request logged"),
    _m("nginx_cpu_ns_per_request", "nginx CPU per request", "ns", "lower", "nginx's rusage per request wrk completed (its own access log included)"),
    _m("softirq_cpu_ns_per_request", "softirq CPU per request", "ns", "lower", "/proc/stat softirq time (tick samples, all CPUs) per request wrk completed"),
    _m("xdp_program_ns_per_request", "XDP program run time per request", "ns", "lower", "the attached program's own run time (bpf_stats) per request wrk completed"),
    _m("xdp_program_runs_per_request", "XDP program runs per request", "runs", "neither", "times the attached program ran (bpf_stats) per request wrk completed: the request's segment, and bare ACKs or anything else the interface received"),
    _m("log_bytes_per_request", "log bytes per request", "bytes", "lower", "bytes the log grew by per request it logged: nginx's access log, xhdr log's output (its responses' lines included), the capture's lines"),
    _m("logger_rss_bytes", "logger resident memory", "bytes", "lower", "RSS of xhdr log with its consumer, or of the capture"),
    _m("map_memory_bytes", "BPF map memory", "bytes", "lower", "kernel memory charged to the extractor's maps (memlock in xhdr log's fdinfo)"),
    # consumer (bench/consumer.py)
    _m("events_per_second", "consumer events per second", "events/s", "higher", "events one consumer clears from a full ring into lines on a file, per second of wall time"),
    _m("cpu_ns_per_event", "consumer CPU per event", "ns", "lower", "the consumer's CPU time (rusage, start-up excluded) per event written"),
    _m("events_written", "events written", "events", "neither", "lines the consumer wrote: all the events produced (params) unless some were lost"),
    # fuzz throughput (bench/fuzz_throughput.py): the xhdr fuzz command's own summary
    _m("compared_per_second", "differential examples per second", "examples/s", "higher", "items xhdr fuzz compared with the reference per second of wall time: frames, flows and byte-level mutants"),
    _m("time_share", "share of the campaign's time", "%", "neither", "the part of xhdr fuzz's wall time one stage took (params: stage)"),
    # read by the report from `xhdr verify --json` and `xhdr fuzz --json` documents
    _m("verified_insns", "verified instructions", "insns", "lower", "instructions the verifier processed (its complexity limit is 1,000,000 per program)"),
    _m("outcome_classes", "outcome classes reached", "classes", "higher", "distinct outcome/event flags/slot flags/events combinations a fuzz campaign produced"),
    _m("labels_hit", "labelled branches hit", "labels", "higher", "labels of bpf/xhdr_cover.h a coverage build of the extractor counted at least once in a fuzz campaign"),
    _m("examples_per_second", "fuzz examples per second", "examples/s", "higher", "examples a fuzz campaign ran per second of wall time"),
)  # fmt: skip
METRICS: dict[str, Metric] = {metric.name: metric for metric in _TABLE}


def describe(name: str, unit: str = "") -> Metric:
    """The declared metric; for a row of a newer or older suite naming an undeclared one, a plain stand-in
    (used only by the data tables, never by a plot, which reads ``METRICS[name]``)."""
    return METRICS.get(name) or Metric(name, name.replace("_", " "), unit, "neither", "not declared")


# How the report names the methods the suites measure (a row's ``method``); others keep their own name.
METHODS = {
    "extractor": "extractor",
    "extractor_text": "extractor, xhdr log --text",
    "extractor_records": "extractor, xhdr log --records",
    "extractor_responses": "extractor with responses (TC egress)",
    "empty": "empty XDP program",
    "empty_xdp": "empty XDP program",
    "nothing_attached": "nothing attached",
    "no_logging": "no logging",
    "nginx_access_log": "nginx access log",
    "access_log_empty_xdp": "nginx access log, empty XDP program attached",
    "c_tpacket_v3": "C capture (TPACKET_V3)",
    "af_packet_httptools": "Python capture (httptools)",
    "af_packet_python": "Python capture (reference parser)",
    "consumer": "consumer",
}


def method_label(name: str) -> str:
    return METHODS.get(name, name.replace("_", " "))


# The nginx suite's legs its extractor legs are compared with round by round, and the metric of each comparison:
# nginx's access log (issue 11's target), and the same behind the empty XDP program, so both sides pay the hook.
# Each round's own ratio is the metric's name with ``_round`` after it.
ACCESS_LOG_COMPARISONS = {
    "nginx_access_log": "rps_ratio_to_access_log",
    "access_log_empty_xdp": "rps_ratio_to_access_log_on_hook",
}
