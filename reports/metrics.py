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
)
METRICS: dict[str, Metric] = {metric.name: metric for metric in _TABLE}


def metric(name: str, unit: str = "") -> Metric:
    """The declared metric, or a plain one named after itself for metrics no one declared yet."""
    return METRICS.get(name) or Metric(name, name.replace("_", " "), unit, "lower", "")
