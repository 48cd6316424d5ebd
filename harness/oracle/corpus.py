"""The built-in corpus: one TOML file per case in harness/oracle/corpus/, input and expectation side by side.

A new case is a new file; nothing registers it. Each file has a ``description``, a ``[frame]`` table (the
fields of :class:`harness.oracle.frames.FrameSpec`, plus the helpers below) and an ``[expect]`` table, or one
``[[expect]]`` table per frame when ``segments`` makes several. A person writes expectations next to
the input so that they keep the reference extractor itself honest; the kernel is then held to the reference.

A case's frames are one TCP flow (docs/EXTRACTION.md R15): it is sent after the SYN that opens the flow at
the first frame's first payload byte (``harness.oracle.frames.opening``; none when the first frame is a SYN itself
or not TCP), and each frame's expectation is the reference's for that sequence (``CorpusCase.expected``,
a ``FlowTracker`` fed the SYN and the frames). The SYN has no ``[expect]``.

``[frame]`` helpers:

- ``payload``: a TOML string (latin-1, so ``\\u00ff`` is byte 0xff), or a list of pieces, each a string or
  ``[string, count]`` (``["GET / HTTP/1.1\\r\\n", ["X-A: 1\\r\\n", 40], "\\r\\n"]``); or ``payload_hex``.
- ``ip_options`` / ``tcp_options``: hex strings.
- ``segments``: send the payload as several TCP segments of the flow, in this order, each
  ``[start, end]`` or ``[start, end, "flags"]``: the payload bytes ``start`` to ``end`` (a Python slice), with
  the frame's ``flags`` or the ones given (scapy letters: ``"R"``, ``"FA"``, ``"S"``...). Payload byte ``i``
  has sequence number ``seq + i`` in every segment (a SYN's own number is the one before its payload), so a
  range that goes back is a retransmission and one that skips ahead is out of order.
- ``kind = "arp"``: an ARP request instead of an IP frame (no other fields).
- ``[frame.client_hello]``: the payload is a TLS record holding a ClientHello (docs/EXTRACTION.md R22), built by
  ``harness.oracle.tls.ClientHello`` (send it to a ``tls_ports`` port, R21, e.g. ``dport = 443``). Its keys are
  the dataclass's fields, every one optional: ``legacy_version``, ``cipher_suites`` (a list of integers),
  ``record_type``, ``record_version``, ``handshake_type``, and the overrides ``record_length``,
  ``handshake_length``, ``extensions_length`` (integers; TOML writes ``0x0303`` too); ``random_hex``,
  ``session_id_hex``, ``compression_hex``, ``trailing_hex`` (hex strings). Without an ``extensions`` key the
  hello has no extensions block at all; ``extensions = []`` is an empty one. Each ``[[frame.client_hello.
  extensions]]`` table, in sending order, is one of ``server_name = NAME``, ``alpn = [NAME, ...]`` (NAME as a
  ``payload``: a string or a list of pieces), ``supported_versions = [0x0304, ...]``, ``padding = N`` (the
  padding extension, N zero bytes), or ``type = N`` with ``data_hex`` (the raw data, default empty);
  ``count = N`` sends it N times. A ``payload`` or ``payload_hex`` beside it is the bytes that follow the
  hello in the flow (the encrypted records, for ``segments``).

``[expect]`` keys: ``outcome`` (counter name, lower-case), ``events`` (count), optionally ``flows_opened``,
``flows_closed``, ``flows_lost`` (the R15 tallies of this frame) and, for the first
event: ``flags`` (the exact event flags), ``method``, ``target``, ``target_length``, ``version``,
``header_lines``, ``vlan_ids``, ``family``; ``targets`` (every event's target, in order); ``headers``, which
lists every configured header expected present (the others must be absent), each as the logged value string
(meaning flags exactly ``present`` and that length) or a table of ``value``, ``flags``, ``length`` and
``hashed`` (the text whose keyed SipHash the slot must hold). For a TLS event (R22), ``flags`` names TLS flags
(``sni_truncated``, ``hello_cut``...) and the first event's ``sni``, ``sni_length``, ``alpn`` (the protocol
names, in order), ``alpn_length`` and ``tls_version`` (an integer, or its name: ``"1.3"``, ``"0x7f1c"``) can
be checked.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.core.config import ExtractorConfig
from harness.core.counters import Counter
from harness.core.driver import with_openings
from harness.core.event import Event, EventFlag, HeaderEvent, HeaderValue, SlotFlag, TlsFlag, tls_version_name
from harness.oracle import tls
from harness.oracle.frames import FrameSpec, arp_frame, build
from harness.oracle.reference import DEFAULT_CONFIG, DEFAULT_KEY, Expected, FlowTracker, siphash24

CORPUS_DIR = Path(__file__).with_name("corpus")
# A realistic 8-header API call: the frame the demo's cost figure, the benchmarks and some tests use.
STANDARD_CASE = "00_standard_api_request"
_HEX_FIELDS = ("ip_options", "tcp_options")
_TUPLE_FIELDS = ("vlan_ids", "vlan_tpids")
_FIRST_EVENT_FIELDS = (
    "method",
    "target",
    "target_length",
    "version",
    "header_lines",
    "vlan_ids",
    "family",
    "sni",
    "sni_length",
    "alpn",
    "alpn_length",
)
# [frame.client_hello] keys: integers as they are, hex strings as bytes (named without "_hex")
_HELLO_INTEGERS = (
    "legacy_version",
    "record_type",
    "record_version",
    "record_length",
    "handshake_type",
    "handshake_length",
    "extensions_length",
)
_HELLO_HEX = ("random", "session_id", "compression", "trailing")
_EXTENSION_KINDS = ("server_name", "alpn", "supported_versions", "padding", "type")
_FLOW_TALLIES = (Counter.FLOWS_OPENED, Counter.FLOWS_CLOSED, Counter.FLOWS_LOST)


class CorpusError(ValueError):
    """A corpus file that cannot be read; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class FrameExpectation:
    """What a person expects one frame to do; unset fields (None) are not checked."""

    outcome: str
    events: int
    flows_opened: int | None = None
    flows_closed: int | None = None
    flows_lost: int | None = None
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
    sni: str | None = None
    sni_length: int | None = None
    alpn: tuple[str, ...] | None = None
    alpn_length: int | None = None
    tls_version: int | str | None = None

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
        for tally in _FLOW_TALLIES:
            wanted = getattr(self, tally.label)
            if wanted is not None and expected.counters[tally] != wanted:
                problems.append(f"{tally.label} {expected.counters[tally]}, expected {wanted}")
        if self.targets is not None:
            actual = tuple(_text(getattr(event, "target", None)) for event in expected.events)
            if actual != self.targets:
                problems.append(f"targets {actual}, expected {self.targets}")
        if expected.events:
            problems.extend(self._first_event_mismatches(expected.events[0], key))
        return problems

    def _first_event_mismatches(self, event: Event, key: bytes) -> list[str]:
        problems = []
        for name in _FIRST_EVENT_FIELDS:
            wanted = getattr(self, name)
            if wanted is None:
                continue
            if not hasattr(event, name):
                problems.append(f"{name} expected {wanted!r}, but the event is a {type(event).__name__}")
                continue
            actual = _text(getattr(event, name))
            if actual != wanted:
                problems.append(f"{name} {actual!r}, expected {wanted!r}")
        if self.tls_version is not None:
            actual = getattr(event, "tls_version", None)
            shown = (
                actual if isinstance(self.tls_version, int) or actual is None else tls_version_name(actual)
            )
            if shown != self.tls_version:
                problems.append(f"tls_version {shown!r}, expected {self.tls_version!r}")
        if self.flags is not None and _names(event.flags) != _upper(self.flags):
            problems.append(f"flags {sorted(_names(event.flags))}, expected {sorted(_upper(self.flags))}")
        if self.headers is not None:
            if isinstance(event, HeaderEvent):
                problems.extend(_header_mismatches(event, self.headers, key))
            else:
                problems.append(f"headers expected, but the event is a {type(event).__name__}")
        return problems


@dataclasses.dataclass(frozen=True)
class CorpusCase:
    """One corpus file: its frames (one flow) in sending order and one expectation per frame."""

    name: str
    description: str
    frames: list[bytes]
    expect: list[FrameExpectation]

    def expected(self, config: ExtractorConfig = DEFAULT_CONFIG, key: bytes = DEFAULT_KEY) -> list[Expected]:
        """The reference's expectation of each frame, sent as the kernel gets it: after the flow's opening."""
        return flow_expectations([self.frames], config, key)


def flow_expectations(
    flows: Sequence[Sequence[bytes]], config: ExtractorConfig = DEFAULT_CONFIG, key: bytes = DEFAULT_KEY
) -> list[Expected]:
    """What the reference expects of the flows' frames when each flow follows its opening SYN.

    One ``FlowTracker`` sees exactly the sequence ``harness.core.driver.feed_flows`` sends (``with_openings``),
    so the expectation of every frame depends on the frames before it as the kernel's state does.
    """
    sent, positions = with_openings(flows)
    tracker = FlowTracker(config, key)
    expected = [tracker.feed(frame) for frame in sent]
    return [expected[position] for position in positions]


def load_corpus(directory: Path = CORPUS_DIR) -> list[CorpusCase]:
    """Every ``*.toml`` case in ``directory``, sorted by file name."""
    return [load_case(path) for path in sorted(directory.glob("*.toml"))]


def standard_frame() -> bytes:
    """The first frame of the standard case (STANDARD_CASE), as the corpus holds it (not a SYN)."""
    return load_case(CORPUS_DIR / f"{STANDARD_CASE}.toml").frames[0]


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
    """The frames a [frame] table describes: one, or one per entry of ``segments``."""
    if table.pop("kind", "ip") == "arp":
        return [arp_frame()]
    segments = table.pop("segments", None)
    spec = _spec(table)
    specs = [spec] if segments is None else [_segment(spec, *entry) for entry in segments]
    return [build(one) for one in specs]


def _segment(spec: FrameSpec, start: int, end: int, flags: str | None = None) -> FrameSpec:
    """Payload bytes ``start:end`` of ``spec`` as one segment: byte ``i`` keeps sequence number seq + i."""
    if not 0 <= start <= end <= len(spec.payload):
        raise ValueError(f"segment [{start}, {end}] is not inside the {len(spec.payload)}-byte payload")
    flags = spec.flags if flags is None else flags
    syn = "S" in flags  # the SYN takes the sequence number before its payload (R16)
    return dataclasses.replace(spec, payload=spec.payload[start:end], flags=flags, seq=spec.seq + start - syn)


def _spec(table: dict[str, Any]) -> FrameSpec:
    if "payload_hex" in table:
        table["payload"] = bytes.fromhex(table.pop("payload_hex"))
    else:
        table["payload"] = _payload(table.get("payload", ""))
    if "client_hello" in table:
        table["payload"] = client_hello(table.pop("client_hello")).to_bytes() + table["payload"]
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


def client_hello(table: dict[str, Any]) -> tls.ClientHello:
    """A ``[frame.client_hello]`` table as the ClientHello it describes (the module docstring lists the keys)."""
    table = dict(table)
    fields: dict[str, Any] = {name: int(table.pop(name)) for name in _HELLO_INTEGERS if name in table}
    fields.update(
        {name: bytes.fromhex(table.pop(f"{name}_hex")) for name in _HELLO_HEX if f"{name}_hex" in table}
    )
    if "cipher_suites" in table:
        fields["cipher_suites"] = tuple(int(suite) for suite in table.pop("cipher_suites"))
    extensions = table.pop("extensions", None)  # none: no extensions block at all
    fields["extensions"] = (
        None
        if extensions is None
        else tuple(each for entry in extensions for each in _extension(dict(entry)))
    )
    if table:
        raise ValueError(f"[frame.client_hello] has unknown keys {sorted(table)}")
    return tls.ClientHello(**fields)


def _extension(entry: dict[str, Any]) -> list[tls.Extension]:
    """One ``[[frame.client_hello.extensions]]`` table: its (type, data), ``count`` times."""
    count = int(entry.pop("count", 1))
    kinds = [name for name in _EXTENSION_KINDS if name in entry]
    if len(kinds) != 1:
        raise ValueError(
            f"an extension needs exactly one of {', '.join(_EXTENSION_KINDS)}; got {sorted(entry)}"
        )
    if "server_name" in entry:
        extension = (tls.SERVER_NAME, tls.server_name(_payload(entry.pop("server_name"))))
    elif "alpn" in entry:
        extension = (tls.ALPN, tls.alpn(*(_payload(name) for name in entry.pop("alpn"))))
    elif "supported_versions" in entry:
        extension = (tls.SUPPORTED_VERSIONS, tls.supported_versions(*entry.pop("supported_versions")))
    elif "padding" in entry:
        extension = (tls.PADDING, bytes(int(entry.pop("padding"))))
    else:
        extension = (int(entry.pop("type")), bytes.fromhex(entry.pop("data_hex", "")))
    if entry:
        raise ValueError(f"an extension has unknown keys {sorted(entry)}")
    return [extension] * count


def _expectation(table: dict[str, Any]) -> FrameExpectation:
    table = dict(table)
    for name in ("flags", "vlan_ids", "targets", "alpn"):
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


def _text(value: Any) -> Any:
    """Bytes (and tuples of bytes) as the latin-1 text a case writes; anything else as it is."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, tuple):
        return tuple(_text(each) for each in value)
    return value


def _names(flags: EventFlag | SlotFlag | TlsFlag) -> set[str]:
    return {flag.name for flag in type(flags) if flags & flag}


def _upper(names: list[str] | tuple[str, ...]) -> set[str]:
    return {name.upper() for name in names}
