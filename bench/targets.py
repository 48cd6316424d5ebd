"""The extractor's performance targets (issue 9), defined once: the bench summary, the report's table and
the target lines of its plots all read this table.

Each is a ratio to the empty XDP program measured in the same run (absolute figures drift between runs and
machines, the paired ratio does not), except the scan cost per payload byte, a slope fitted over the frame
size sweep below the scan limit.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Target:
    what: str  # how the report names it
    case: str  # kernel-cost case, or the sweep for a slope
    metric: str  # metric of that case's extractor row, or "ns_per_byte" for a slope
    limit: float  # the figure must be at most this


TARGETS = (
    Target("standard request, ratio to the empty program", "standard", "ratio_to_empty", 15.0),
    Target("worst case (configured headers last), ratio", "worst_last_header_last", "ratio_to_empty", 60.0),
    Target("worst case (header lines fill the view), ratio", "worst_scan_limit", "ratio_to_empty", 60.0),
    Target("scan cost per extra payload byte (ns)", "frame_size", "ns_per_byte", 0.5),
)

STANDARD_RATIO = TARGETS[0].limit
CONSUMER_EVENTS_PER_SECOND = 300_000  # issue 11: xhdr log's consumer, JSON lines on a file, one core
FUZZ_EXAMPLES_PER_SECOND = 2_000  # issue 14: differential examples per second of xhdr fuzz, 2 cores


def summary() -> str:
    """The targets in one line, for a terminal summary."""
    return ", ".join(
        f"{t.case} <= {t.limit:g}{'x' if t.metric == 'ratio_to_empty' else ' ns/B'}" for t in TARGETS
    )
