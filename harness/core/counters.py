"""The extractor's counters: one table, in the order of enum xhdr_counter in bpf/xhdr_event.h."""

from __future__ import annotations

import enum
from collections.abc import Sequence


class Counter(enum.IntEnum):
    """Index into the per-CPU counter array. Outcome counters partition ``PACKETS`` (docs/EXTRACTION.md)."""

    PACKETS = 0
    MALFORMED = 1
    VLAN_TOO_DEEP = 2
    NOT_IP = 3
    LATER_FRAGMENT = 4
    IPV6_EXT_HEADER = 5
    NOT_TCP = 6
    PORT_NOT_WATCHED = 7
    TCP_WATCHED = 8
    NO_PAYLOAD = 9
    NOT_HTTP = 10
    HTTP_REQUEST = 11
    EVENTS = 12
    EVENTS_LOST = 13
    MID_STREAM = 14
    OUT_OF_SYNC = 15
    RETRANSMITTED = 16
    OUT_OF_ORDER = 17
    BODY = 18
    FLOWS_OPENED = 19
    FLOWS_CLOSED = 20
    FLOWS_LOST = 21
    CONTINUED = 22
    TLS_HELLO = 23
    NOT_TLS = 24
    ENCRYPTED = 25
    RESPONSES = 26  # R25: response events, from the egress program (no frame of PACKETS)
    RESPONSES_UNMATCHED = 27  # R25: final responses that answer no request the flow has waiting
    EVENTS_WITHHELD = 28  # R28: requests a count or sample rule kept from the ring (no event)
    DROPPED = 29  # R28: segments a drop rule dropped (their requests are logged)
    BLOCKED = 30  # R29: segments of a blocked flow, dropped
    RESPONSES_WITHHELD = 31  # R28: responses to requests a count or sample rule withheld (no event)

    @property
    def label(self) -> str:
        return self.name.lower()


# Every frame ends in exactly one of these; the rest (packets, tcp_watched, events, events_lost, events_withheld,
# dropped, the flows_* counters of R15 and the responses_* of R25 and R28) are tallies.
OUTCOMES = frozenset(
    {
        Counter.MALFORMED,
        Counter.VLAN_TOO_DEEP,
        Counter.NOT_IP,
        Counter.LATER_FRAGMENT,
        Counter.IPV6_EXT_HEADER,
        Counter.NOT_TCP,
        Counter.PORT_NOT_WATCHED,
        Counter.NO_PAYLOAD,
        Counter.MID_STREAM,
        Counter.OUT_OF_SYNC,
        Counter.RETRANSMITTED,
        Counter.OUT_OF_ORDER,
        Counter.BODY,
        Counter.CONTINUED,
        Counter.NOT_HTTP,
        Counter.HTTP_REQUEST,
        Counter.TLS_HELLO,
        Counter.NOT_TLS,
        Counter.ENCRYPTED,
        Counter.BLOCKED,
    }
)

Counts = dict[Counter, int]


def counts_of(values: Sequence[int]) -> Counts:
    """The ``counters`` map's values (summed over CPUs, in map order) by name."""
    return dict(zip(Counter, values, strict=True))


def zero_counts() -> Counts:
    return {counter: 0 for counter in Counter}


def counts_difference(after: Counts, before: Counts) -> Counts:
    """What moved between two readings, so tests need not reset maps between cases."""
    return {counter: after[counter] - before[counter] for counter in Counter}
