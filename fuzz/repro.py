"""Repro files: a shrunk disagreement saved so it can be read by a person and replayed by a test forever after.

Each repro is two files in fuzz/corpus/ sharing a name: ``<name>.json`` holds the frame as hex (the source of
truth for replay), the configuration and hash key it ran under, the compile flags, what the kernel did, what
the reference expected, the differences and the frame's layers as scapy reads them; ``<name>.pcap`` holds the
same frame for Wireshark or tcpdump. tests/test_fuzz.py globs the folder: a new file is a new test.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from pathlib import Path
from typing import Any

from scapy.layers.l2 import Ether
from scapy.utils import rdpcap, wrpcap

from fuzz.differential import Disagreement
from harness.config import ExtractorConfig, HeaderMode, HeaderRule
from harness.counters import Counter
from harness.driver import Outcome
from harness.event import HeaderEvent
from harness.reference import Expected

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"


@dataclasses.dataclass(frozen=True)
class Repro:
    """One saved disagreement, as replay needs it."""

    path: Path
    frame: bytes
    config: ExtractorConfig
    key: bytes
    cflags: tuple[str, ...]
    record: dict[str, Any]


def config_to_json(config: ExtractorConfig) -> dict[str, Any]:
    """An ExtractorConfig as plain JSON (header modes by name)."""
    raw = dataclasses.asdict(config)
    raw["ports"] = list(config.ports)
    raw["headers"] = [{"name": rule.name, "mode": rule.mode.name.lower()} for rule in config.headers]
    return raw


def config_from_json(raw: dict[str, Any]) -> ExtractorConfig:
    """The inverse of ``config_to_json``."""
    fields = dict(raw)
    fields["ports"] = tuple(raw["ports"])
    fields["headers"] = tuple(
        HeaderRule(entry["name"], HeaderMode[entry["mode"].upper()]) for entry in raw["headers"]
    )
    return ExtractorConfig(**fields)


def _events_json(events: tuple[HeaderEvent, ...]) -> list[dict[str, Any]]:
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


def save(
    found: Disagreement,
    config: ExtractorConfig,
    key: bytes,
    directory: Path = CORPUS_DIR,
    *,
    cflags: tuple[str, ...] = (),
    found_by: dict[str, Any] | None = None,
) -> Path:
    """Writes ``<name>.json`` and ``<name>.pcap`` for one shrunk disagreement; returns the JSON path.

    The name is the frame's digest, so finding the same frame again overwrites rather than duplicates.
    """
    directory.mkdir(parents=True, exist_ok=True)
    name = "fuzz-" + hashlib.sha256(found.frame).hexdigest()[:12]
    path = directory / f"{name}.json"
    record = {
        "description": found.differences[0],
        "frame_hex": found.frame.hex(),
        "layers": layers(found.frame),
        "config": config_to_json(config),
        "key_hex": key.hex(),
        "cflags": list(cflags),
        "found": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "found_by": found_by or {},
        "kernel": outcome_json(found.outcome),
        "reference": expected_json(found.expected),
        "differences": found.differences,
    }
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    wrpcap(str(path.with_suffix(".pcap")), [Ether(found.frame)])
    return path


def load(path: Path) -> Repro:
    """Reads one repro JSON file."""
    record = json.loads(path.read_text(encoding="utf-8"))
    return Repro(
        path=path,
        frame=bytes.fromhex(record["frame_hex"]),
        config=config_from_json(record["config"]),
        key=bytes.fromhex(record["key_hex"]),
        cflags=tuple(record.get("cflags", ())),
        record=record,
    )


def pcap_frame(path: Path) -> bytes:
    """The single frame of a repro's pcap file, to check it matches the hex."""
    (packet,) = rdpcap(str(path.with_suffix(".pcap")))
    return bytes(packet)


def load_all(directory: Path = CORPUS_DIR) -> list[Repro]:
    """Every repro in the folder, by name."""
    return [load(path) for path in sorted(directory.glob("*.json"))]
