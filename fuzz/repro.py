"""Repro files: a shrunk disagreement saved so it can be read by a person and replayed by a test forever after.

Each repro is two files in fuzz/corpus/ sharing a name: ``<name>.json`` holds the example item, the
configuration and hash key it ran under, the compile flags and the differences; ``<name>.pcap`` holds the same
frames for Wireshark or tcpdump. The item is one of the campaign's two kinds (``fuzz.differential``):

- ``"kind": "frame"`` (the default, as in files written before flows): ``frame_hex`` is the frame, replayed
  right after the SYN that opens its flow; ``kernel``, ``reference`` and ``layers`` describe it;
- ``"kind": "flow"``: ``reset_hex`` and ``frames``, each frame with its ``frame_hex``, ``layers``, ``kernel``
  and ``reference`` outcomes; ``disagreeing_frame`` is the index of the first frame the two sides disagree on;
  ``leaving`` lists the frames the server sends, replayed through the responses program (R24, R25; none in
  files written before it). The pcap holds the reset, then the frames.

The hex is the source of truth for replay. tests/test_fuzz.py globs the folder: a new file is a new test.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scapy.layers.l2 import Ether
from scapy.utils import rdpcap, wrpcap

from fuzz.differential import Disagreement
from fuzz.strategies import Flow, Item, sent
from harness.core.config import ExtractorConfig, HeaderMode, HeaderRule
from harness.core.counters import Counter
from harness.core.driver import Outcome
from harness.core.event import Event
from harness.core.rules import parse_rules, rule_table
from harness.oracle.reference import Expected

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"


@dataclasses.dataclass(frozen=True)
class Repro:
    """One saved disagreement, as replay needs it."""

    path: Path
    item: Item
    config: ExtractorConfig
    key: bytes
    cflags: tuple[str, ...]
    record: dict[str, Any]


def config_to_json(config: ExtractorConfig) -> dict[str, Any]:
    """An ExtractorConfig as plain JSON (header modes by name)."""
    raw = dataclasses.asdict(config)
    raw["ports"] = list(config.ports)
    raw["tls_ports"] = list(config.tls_ports)
    raw["headers"] = [{"name": rule.name, "mode": rule.mode.name.lower()} for rule in config.headers]
    raw["rules"] = [rule_table(rule) for rule in config.rules]
    return raw


def config_from_json(raw: dict[str, Any]) -> ExtractorConfig:
    """The inverse of ``config_to_json``."""
    fields = dict(raw)
    fields["ports"] = tuple(raw["ports"])
    if "tls_ports" in raw:  # repros saved before R21 have none: the default then
        fields["tls_ports"] = tuple(raw["tls_ports"])
    fields["headers"] = tuple(
        HeaderRule(entry["name"], HeaderMode[entry["mode"].upper()]) for entry in raw["headers"]
    )
    fields["rules"] = parse_rules(raw.get("rules", []))  # repros saved before R27 have none
    return ExtractorConfig(**fields)


def _events_json(events: tuple[Event, ...]) -> list[dict[str, Any]]:
    records = []
    for event in events:
        record = event.to_json()
        del record["timestamp_ns"], record["ifindex"]  # not part of the comparison
        records.append(record)
    return records


def _counters_json(counters: dict[Counter, int]) -> dict[str, int]:
    return {counter.label: value for counter, value in counters.items() if value}


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    """What the kernel did with the frame."""
    return {
        "verdict": outcome.verdict,
        "counters": _counters_json(outcome.counters),
        "events": _events_json(outcome.events),
    }


def expected_json(expected: Expected) -> dict[str, Any]:
    """What the reference expected."""
    return {"counters": _counters_json(expected.counters), "events": _events_json(expected.events)}


def layers(frame: bytes) -> list[str]:
    """The frame's layers as scapy dissects them, one summary line per layer."""
    packet = Ether(frame)
    lines = []
    while packet:
        lines.append(packet.mysummary() if type(packet).__name__ != "Raw" else f"Raw {bytes(packet)!r}")
        packet = packet.payload
    return lines


def _frame_json(frame: bytes, outcome: Outcome, expected: Expected) -> dict[str, Any]:
    """One frame as a person reads it: hex, layers, what the kernel did and what the reference expected."""
    return {
        "frame_hex": frame.hex(),
        "layers": layers(frame),
        "kernel": outcome_json(outcome),
        "reference": expected_json(expected),
    }


def _item_json(found: Disagreement) -> dict[str, Any]:
    """The item's part of the record: a frame's keys at the top level, a flow's frames in a list."""
    if not isinstance(found.item, Flow):
        return {"kind": "frame", **_frame_json(found.frame, found.outcome, found.expected)}
    frames = zip(found.item.frames, found.outcomes, found.expectations, strict=True)
    return {
        "kind": "flow",
        "reset_hex": found.item.reset.hex(),
        "frames": [_frame_json(*frame) for frame in frames],
        "disagreeing_frame": found.index,
        "leaving": sorted(found.item.leaving),
    }


def save(
    found: Disagreement,
    config: ExtractorConfig,
    key: bytes,
    directory: Path = CORPUS_DIR,
    *,
    cflags: tuple[str, ...] = (),
    found_by: dict[str, Any] | None = None,
) -> Path:
    """Writes ``fuzz-<digest>.json`` and ``.pcap`` for one shrunk disagreement (``write_pair``); returns the
    JSON path."""
    record = {
        "description": found.differences[0],
        **_item_json(found),
        "config": config_to_json(config),
        "key_hex": key.hex(),
        "cflags": list(cflags),
        "found_by": found_by or {},
        "differences": found.differences,
    }
    return write_pair(directory, "fuzz", sent(found.item), record)


def write_pair(directory: Path, prefix: str, frames: Sequence[bytes], record: dict[str, Any]) -> Path:
    """``<prefix>-<digest>.json`` (``record`` and when it was found) and the same name's ``.pcap`` of
    ``frames``, in ``directory``; returns the JSON's path. The name is the digest of the frames, so finding the
    same example again overwrites rather than duplicates."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{prefix}-{hashlib.sha256(b''.join(frames)).hexdigest()[:12]}.json"
    found = {"found": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    path.write_text(json.dumps(record | found, indent=2) + "\n", encoding="utf-8")
    wrpcap(str(path.with_suffix(".pcap")), [Ether(frame) for frame in frames])
    return path


def _item(record: dict[str, Any]) -> Item:
    """The example item a record holds (a file without ``kind`` holds a frame)."""
    if record.get("kind", "frame") == "frame":
        return bytes.fromhex(record["frame_hex"])
    frames = tuple(bytes.fromhex(frame["frame_hex"]) for frame in record["frames"])
    return Flow(bytes.fromhex(record["reset_hex"]), frames, frozenset(record.get("leaving", ())))


def load(path: Path) -> Repro:
    """Reads one repro JSON file."""
    record = json.loads(path.read_text(encoding="utf-8"))
    return Repro(
        path=path,
        item=_item(record),
        config=config_from_json(record["config"]),
        key=bytes.fromhex(record["key_hex"]),
        cflags=tuple(record.get("cflags", ())),
        record=record,
    )


def pcap_frames(path: Path) -> tuple[bytes, ...]:
    """The frames of a repro's pcap file, to check they match the hex (``fuzz.strategies.sent``)."""
    return tuple(bytes(packet) for packet in rdpcap(str(path.with_suffix(".pcap"))))


def load_all(directory: Path = CORPUS_DIR) -> list[Repro]:
    """Every repro in the folder, by name."""
    return [load(path) for path in sorted(directory.glob("*.json"))]
