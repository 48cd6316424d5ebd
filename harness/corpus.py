"""The built-in corpus: one TOML file per case in harness/corpus/, input and expectation side by side.

A new case is a new file; nothing registers it. Each file has a ``description``, a ``[frame]`` table (the
fields of :class:`harness.frames.FrameSpec`, plus the helpers below) and an ``[expect]`` table, or one
``[[expect]]`` table per frame when ``split_at`` makes two frames. A person writes expectations next to
the input so that they keep the reference extractor itself honest; the kernel is then held to the reference.

``[frame]`` helpers:

- ``payload``: a TOML string (latin-1, so ``\\u00ff`` is byte 0xff), or a list of pieces, each a string or
  ``[string, count]`` (``["GET / HTTP/1.1\\r\\n", ["X-A: 1\\r\\n", 40], "\\r\\n"]``); or ``payload_hex``.
- ``ip_options`` / ``tcp_options``: hex strings. ``split_at``: send the payload as two segments.
- ``kind = "arp"``: an ARP request instead of an IP frame (no other fields).

``[expect]`` keys: ``outcome`` (counter name, lower-case), ``events`` (count), and optionally, for the first
event: ``flags`` (the exact event flags), ``method``, ``target``, ``target_length``, ``version``,
``header_lines``, ``vlan_ids``, ``family``; ``targets`` (every event's target, in order); ``headers``, which
lists every configured header expected present (the others must be absent), each as the logged value string
(meaning flags exactly ``present`` and that length) or a table of ``value``, ``flags``, ``length`` and
``hashed`` (the text whose keyed SipHash the slot must hold).
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

from harness.counters import Counter
from harness.event import EventFlag, HeaderEvent, HeaderValue, SlotFlag
from harness.frames import FrameSpec, arp_frame, build, split
from harness.reference import DEFAULT_KEY, Expected, siphash24

CORPUS_DIR = Path(__file__).with_name("corpus")
_HEX_FIELDS = ("ip_options", "tcp_options")
_TUPLE_FIELDS = ("vlan_ids", "vlan_tpids")
_FIRST_EVENT_FIELDS = ("method", "target", "target_length", "version", "header_lines", "vlan_ids", "family")


class CorpusError(ValueError):
    """A corpus file that cannot be read; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class FrameExpectation:
    """What a person expects one frame to do; unset fields (None) are not checked."""

    outcome: str
    events: int
    flags: tuple[str, ...] | None = None
    method: str | None = None
    target: str | None = None
    target_length: int | None = None
    version: int | None = None
    header_lines: int | None = None
    vlan_ids: tuple[int, ...] | None = None
    family: int | None = None
    targets: tuple[str, ...] | None = None
    headers: dict[str, str | dict[str, Any]] | None = None

    def mismatches(self, expected: Expected, key: bytes = DEFAULT_KEY) -> list[str]:
        """Every way ``expected`` (reference or kernel) differs from this; empty when it agrees."""
        problems = []
        if expected.outcome.label != self.outcome or expected.counters[Counter.EVENTS] != self.events:
            problems.append(
                f"outcome {expected.outcome.label} with {expected.counters[Counter.EVENTS]} events, "
                f"expected {self.outcome} with {self.events}"
            )
        if len(expected.events) != self.events:
            problems.append(f"{len(expected.events)} events, expected {self.events}")
        if self.targets is not None:
            actual = tuple(event.target.decode("latin-1") for event in expected.events)
            if actual != self.targets:
                problems.append(f"targets {actual}, expected {self.targets}")
        if expected.events:
            problems.extend(self._first_event_mismatches(expected.events[0], key))
        return problems

    def _first_event_mismatches(self, event: HeaderEvent, key: bytes) -> list[str]:
        problems = []
        for name in _FIRST_EVENT_FIELDS:
            wanted = getattr(self, name)
            actual = getattr(event, name)
            if isinstance(actual, bytes):
                actual = actual.decode("latin-1")
            if wanted is not None and actual != wanted:
                problems.append(f"{name} {actual!r}, expected {wanted!r}")
        if self.flags is not None and _names(event.flags) != _upper(self.flags):
            problems.append(f"flags {sorted(_names(event.flags))}, expected {sorted(_upper(self.flags))}")
        if self.headers is not None:
            problems.extend(_header_mismatches(event, self.headers, key))
        return problems


@dataclasses.dataclass(frozen=True)
class CorpusCase:
    """One corpus file: its frames in sending order and one expectation per frame."""

    name: str
    description: str
    frames: list[bytes]
    expect: list[FrameExpectation]


def load_corpus(directory: Path = CORPUS_DIR) -> list[CorpusCase]:
    """Every ``*.toml`` case in ``directory``, sorted by file name."""
    return [load_case(path) for path in sorted(directory.glob("*.toml"))]


def load_case(path: Path) -> CorpusCase:
    """One case file; errors name the file."""
    try:
        raw = tomllib.loads(path.read_text())
        frames = _frames(dict(raw["frame"]))
        expect_raw = raw["expect"]
        expectations = [
            _expectation(table) for table in (expect_raw if isinstance(expect_raw, list) else [expect_raw])
        ]
        if len(expectations) != len(frames):
            raise CorpusError(f"{len(frames)} frames but {len(expectations)} [expect] tables")
        return CorpusCase(path.stem, str(raw["description"]), frames, expectations)
    except (KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as error:
        raise CorpusError(f"corpus case {path.name}: {error!r}") from None


def _frames(table: dict[str, Any]) -> list[bytes]:
    """The frames a [frame] table describes: one, or two when ``split_at`` is given."""
    if table.pop("kind", "ip") == "arp":
        return [arp_frame()]
    split_at = table.pop("split_at", None)
    spec = _spec(table)
    specs = [spec] if split_at is None else list(split(spec, split_at))
    return [build(one) for one in specs]


def _spec(table: dict[str, Any]) -> FrameSpec:
    if "payload_hex" in table:
        table["payload"] = bytes.fromhex(table.pop("payload_hex"))
    else:
        table["payload"] = _payload(table.get("payload", ""))
    for name in _HEX_FIELDS:
        if name in table:
            table[name] = bytes.fromhex(table[name])
    for name in _TUPLE_FIELDS:
        if name in table:
            table[name] = tuple(table[name])
    return FrameSpec(**table)


def _payload(pieces: str | list[Any]) -> bytes:
    """A payload string, or a list of strings and [string, count] repetitions, as latin-1 bytes."""
    if isinstance(pieces, str):
        return pieces.encode("latin-1")
    return b"".join(
        _payload(piece) if isinstance(piece, str) else _payload(piece[0]) * int(piece[1]) for piece in pieces
    )


def _expectation(table: dict[str, Any]) -> FrameExpectation:
    table = dict(table)
    for name in ("flags", "vlan_ids", "targets"):
        if name in table:
            table[name] = tuple(table[name])
    return FrameExpectation(**table)


def _header_mismatches(event: HeaderEvent, wanted: dict[str, Any], key: bytes) -> list[str]:
    """Listed headers must match; every configured header not listed must be absent."""
    listed = {name.lower(): spec for name, spec in wanted.items()}
    problems = []
    for slot in event.headers:
        spec = listed.pop(slot.name.lower(), None)
        if spec is None:
            if slot.flags:
                problems.append(f"header {slot.name}: present ({slot.shown()!r}), expected absent")
            continue
        problems.extend(f"header {slot.name}: {problem}" for problem in _slot_mismatches(slot, spec, key))
    problems.extend(f"header {name}: not a configured header" for name in listed)
    return problems


def _slot_mismatches(slot: HeaderValue, spec: str | dict[str, Any], key: bytes) -> list[str]:
    if isinstance(spec, str):
        spec = {"value": spec, "flags": ["present"], "length": len(spec.encode("latin-1"))}
    problems = []
    if "flags" in spec and _names(slot.flags) != _upper(spec["flags"]):
        problems.append(f"flags {sorted(_names(slot.flags))}, expected {sorted(_upper(spec['flags']))}")
    if "value" in spec and slot.value != spec["value"].encode("latin-1"):
        problems.append(f"value {slot.value!r}, expected {spec['value'].encode('latin-1')!r}")
    if "length" in spec and slot.length != spec["length"]:
        problems.append(f"length {slot.length}, expected {spec['length']}")
    if "hashed" in spec and slot.hash != siphash24(key, spec["hashed"].encode("latin-1")):
        problems.append(f"hash {slot.hash:016x} is not the SipHash of {spec['hashed']!r}")
    return problems


def _names(flags: EventFlag | SlotFlag) -> set[str]:
    return {flag.name for flag in type(flags) if flags & flag}


def _upper(names: list[str] | tuple[str, ...]) -> set[str]:
    return {name.upper() for name in names}
