"""What the rules that count by headers counted (docs/EXTRACTION.md R30): the ``aggregates`` map read.

The kernel counts each request such a rule matches once per header it counts by, in the entry of (rule,
endpoint, header, value): keyed by hashes (the value's is SipHash-2-4 with the extractor's key, as hash mode's),
holding the endpoint's path and the value's first bytes for people to read. The map is an LRU map, so the
busiest entries stay.
"""

from __future__ import annotations

import ctypes
import dataclasses

from harness.core.config import ExtractorConfig
from harness.core.latencies import ENDPOINT_BYTES
from harness.core.native import map_entries, map_info
from harness.core.rules import NAME_MAX

SHOWN_VALUE = 32  # XHDR_SHOWN_VALUE: a value's first bytes, kept for display
FNV_OFFSET, FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3


class _Key(ctypes.Structure):
    """struct xhdr_aggregate_key of bpf/xhdr_event.h."""

    _fields_ = [
        ("rule", ctypes.c_uint64),
        ("endpoint", ctypes.c_uint64),
        ("value", ctypes.c_uint64),
        ("slot", ctypes.c_uint32),
        ("zero", ctypes.c_uint32),
    ]


class _Counted(ctypes.Structure):
    """struct xhdr_aggregate of bpf/xhdr_event.h."""

    _fields_ = [
        ("count", ctypes.c_uint64),
        ("path", ctypes.c_uint8 * ENDPOINT_BYTES),
        ("shown", ctypes.c_uint8 * SHOWN_VALUE),
        ("length", ctypes.c_uint16),
        ("present", ctypes.c_uint8),
        ("unused", ctypes.c_uint8 * 5),
    ]


def rule_key(name: str) -> int:
    """The key a rule's counts by header value are kept under: FNV-1a's prime over the words of its zero-padded
    name. User space writes it into the rule (harness.core.rules_map), so it is defined here only."""
    padded = name.encode("ascii").ljust(NAME_MAX, b"\0")
    key = FNV_OFFSET
    for at in range(0, NAME_MAX, 8):
        key = ((key ^ int.from_bytes(padded[at : at + 8], "little")) * FNV_PRIME) & (2**64 - 1)
    return key


@dataclasses.dataclass(frozen=True)
class Aggregate:
    """How many requests a rule matched on one endpoint had one value in one header (``value_hash`` 0 and
    ``present`` False: the header was absent)."""

    rule: str  # its name, or the hash in hex when no rule of the configuration has it (reloaded since)
    endpoint: bytes
    header: str
    value_hash: int
    shown: bytes  # the value's first SHOWN_VALUE bytes
    length: int
    present: bool
    count: int

    def to_json(self) -> dict:
        return {
            "rule": self.rule,
            "endpoint": self.endpoint.decode("latin-1"),
            "header": self.header,
            "value": self.shown.decode("latin-1") if self.present else None,
            "value_length": self.length,
            "value_hash": f"{self.value_hash:016x}",
            "count": self.count,
        }


def read_aggregates(map_fd: int, config: ExtractorConfig) -> list[Aggregate]:
    """Every entry the map holds, the most counted first; rules and headers named by ``config``."""
    if map_info(map_fd).value_size != ctypes.sizeof(_Counted):
        raise RuntimeError(f"the aggregates map's value is not {ctypes.sizeof(_Counted)} bytes")
    names = {rule_key(rule.name): rule.name for rule in config.rules}
    found = [
        Aggregate(
            rule=names.get(key.rule, f"{key.rule:016x}"),
            endpoint=bytes(value.path).rstrip(b"\0"),
            header=config.headers[key.slot].name if key.slot < len(config.headers) else f"slot {key.slot}",
            value_hash=key.value,
            shown=bytes(value.shown)[: min(value.length, config.max_value_len, SHOWN_VALUE)],
            length=value.length,
            present=bool(value.present),
            count=value.count,
        )
        for key, value in map_entries(map_fd, _Key, _Counted)
    ]
    return sorted(found, key=lambda a: (-a.count, a.rule, a.endpoint, a.header, a.shown))
