"""The benchmark metrics, declared once: every plot label, table header and gate direction reads this table.

A suite that writes a metric not listed here is still plotted (under its own name and unit); listing it
only gives it a readable label and says which direction is better. A new metric is one line.
"""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    label: str  # axis and table label
    unit: str
    better: Literal["lower", "higher"]
    meaning: str


_TABLE = (
    Metric(
        "ns_per_packet",
        "ns per packet",
        "ns",
        "lower",
        "kernel-reported mean time per run (test run), median of rounds",
    ),
    Metric(
        "ns_per_byte",
        "ns per payload byte",
        "ns/B",
        "lower",
        "ns per packet divided by the TCP payload bytes",
    ),
    Metric(
        "ratio_to_empty",
        "ratio to empty program",
        "x",
        "lower",
        "median of per-round extractor/empty ratios, same run",
    ),
    Metric("spread_pct", "round spread", "%", "lower", "interquartile range of the rounds over their median"),
    Metric("gate_ratio", "current / reference", "x", "lower", "median paired ratio of the regression gate"),
    Metric("packets_per_second", "packets per second", "pps", "higher", "frames received per second (lab)"),
    Metric("cpu_ns_per_packet", "CPU ns per packet", "ns", "lower", "softirq plus user CPU time per packet"),
    Metric("events_lost", "events lost", "events", "lower", "ring-buffer or capture drops during the run"),
    Metric(
        "requests_per_second", "requests per second", "req/s", "higher", "wrk's completed requests per second"
    ),
    Metric(
        "logger_cost_ns",
        "logger CPU ns per request",
        "ns",
        "lower",
        "xhdr log and its consumer, burst start to last line written, per line (lab)",
    ),
    Metric(
        "softirq_cpu_ns_per_request",
        "softirq CPU ns per request",
        "ns",
        "lower",
        "/proc/stat softirq time (tick samples, all CPUs) per request wrk completed",
    ),
    Metric(
        "logger_rss_bytes",
        "logger resident memory",
        "bytes",
        "lower",
        "RSS of xhdr log with its consumer, or of the capture",
    ),
    Metric(
        "events_per_second",
        "consumer events per second",
        "events/s",
        "higher",
        "events one consumer clears from a full ring into lines on a file, per second of wall time",
    ),
    Metric(
        "cpu_ns_per_event",
        "consumer CPU ns per event",
        "ns",
        "lower",
        "the consumer's CPU time (rusage, start-up excluded) per event written",
    ),
    Metric(
        "events_written",
        "events written",
        "events",
        "higher",
        "lines the consumer wrote: all the events produced (params) unless some were lost",
    ),
)
METRICS: dict[str, Metric] = {metric.name: metric for metric in _TABLE}


def metric(name: str, unit: str = "") -> Metric:
    """The declared metric, or a plain one named after itself for metrics no one declared yet."""
    return METRICS.get(name) or Metric(name, name.replace("_", " "), unit, "lower", "")
