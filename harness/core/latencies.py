"""The response latencies the kernel counts per endpoint (docs/EXTRACTION.md R26): the ``latencies`` map read.

The responses program counts each response in a bucket of its endpoint: bucket ``b`` holds latencies of
``2**(b-1)`` to ``2**b - 1`` microseconds (bucket 0 those under one, the last every longer one too). The map
is keyed by a hash of the endpoint's path and holds the path beside the counts, so it reads without the events.
"""

from __future__ import annotations

import ctypes
import dataclasses

from harness.core.native import map_entries, map_info

LATENCY_BUCKETS = 32  # XHDR_LATENCY_BUCKETS in bpf/xhdr.c
ENDPOINT_BYTES = 64  # 8 * XHDR_ENDPOINT_WORDS


class _Counted(ctypes.Structure):
    """struct endpoint_latencies of bpf/xhdr.c."""

    _fields_ = [("path", ctypes.c_uint8 * ENDPOINT_BYTES), ("count", ctypes.c_uint64 * LATENCY_BUCKETS)]


def endpoint(target: bytes) -> bytes:
    """R26: the endpoint of a request whose logged target is ``target``: its bytes before any '?', at most
    ENDPOINT_BYTES."""
    return target.split(b"?", 1)[0][:ENDPOINT_BYTES]


def latency_bucket(microseconds: int) -> int:
    """R26: the bucket of a latency: the number of bits it takes, at most the last bucket."""
    return min(microseconds.bit_length(), LATENCY_BUCKETS - 1)


@dataclasses.dataclass(frozen=True)
class EndpointLatencies:
    """One endpoint's responses, by latency bucket."""

    path: bytes
    counts: tuple[int, ...]

    @property
    def responses(self) -> int:
        return sum(self.counts)

    def percentile_us(self, share: float) -> int:
        """The upper bound (microseconds) of the bucket that holds the ``share`` (0 to 1) quantile: a figure
        at most twice the true one."""
        wanted, seen = share * self.responses, 0
        for bucket, count in enumerate(self.counts):
            seen += count
            if count and seen >= wanted:
                return (1 << bucket) - 1 if bucket else 0
        return 0


def read_latencies(map_fd: int) -> dict[bytes, EndpointLatencies]:
    """Every endpoint the map holds, by path; the lookups go through libbpf, one per entry."""
    if map_info(map_fd).value_size != ctypes.sizeof(_Counted):
        raise RuntimeError(f"the latencies map's value is not {ctypes.sizeof(_Counted)} bytes")
    found: dict[bytes, EndpointLatencies] = {}
    for _, value in map_entries(map_fd, ctypes.c_uint64, _Counted):
        path = bytes(value.path).rstrip(b"\0")
        found[path] = EndpointLatencies(path, tuple(value.count))
    return found
