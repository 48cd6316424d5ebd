"""``HeaderEvent``: one logged request, as the kernel emits it and as the reference expects it.

The C side is ``struct xhdr_event`` in bpf/xhdr_event.h. Its buffers are sized by compile-time limits, so
the ctypes mirror is built per configuration by :func:`event_struct`; tests/test_layout.py compares it with
the layout BCC itself derives from the C declaration.
"""

from __future__ import annotations

import ctypes
import dataclasses
import enum
import functools
import ipaddress

from harness.core.config import HASHED_MODES, METHOD_MAX_LEN, ExtractorConfig, HeaderMode
from harness.core.rules import NAME_MAX as RULE_NAME_MAX
from harness.core.rules import Action

SLOTS = 8
TLS_SLOT_SNI, TLS_SLOT_ALPN = 0, 1  # the slots of a TLS event that say where its bytes are (bpf/xhdr.c)


class EventFlag(enum.IntFlag):
    TARGET_TRUNCATED = 1 << 0
    LINE_CUT = 1 << 1
    HEADERS_CUT = 1 << 2
    SCAN_LIMIT = 1 << 3
    TOO_MANY_HEADERS = 1 << 4
    BAD_LINE = 1 << 5
    TRANSFER_ENCODING = 1 << 6
    BAD_CONTENT_LENGTH = 1 << 7
    NAME_SPLIT = 1 << 8
    BARE_LF = 1 << 9
    OBS_FOLD = 1 << 10
    WS_BEFORE_COLON = 1 << 11
    CL_AND_TE = 1 << 12
    TE_NOT_CHUNKED = 1 << 13
    CONTROL_BYTE = 1 << 14
    DROPPED = 1 << 15  # R28: a drop rule dropped the segment that carried the request


class SlotFlag(enum.IntFlag):
    PRESENT = 1 << 0
    TRUNCATED = 1 << 1
    CUT = 1 << 2
    REPEATED = 1 << 3


NO_SLOT_FLAGS = SlotFlag(0)


class EventKind(enum.IntEnum):
    """What an event is about (enum xhdr_kind): a request, a TLS ClientHello (docs/EXTRACTION.md R22), or the
    response to a request (R25)."""

    HTTP = 0
    TLS = 1
    RESPONSE = 2


class TlsFlag(enum.IntFlag):
    """The flags of a TLS event (R22); SCAN_LIMIT is the same bit as a request's."""

    SNI_TRUNCATED = 1 << 0
    ALPN_TRUNCATED = 1 << 1
    HELLO_CUT = 1 << 2
    SCAN_LIMIT = 1 << 3
    TOO_MANY_EXTENSIONS = 1 << 4
    BAD_EXTENSIONS = 1 << 5
    SPLIT_EXTENSION = 1 << 6


TLS_VERSION_NAMES = {0x0300: "ssl3.0", 0x0301: "1.0", 0x0302: "1.1", 0x0303: "1.2", 0x0304: "1.3"}


def tls_version_name(version: int) -> str:
    """``1.3`` for 0x0304 and the other versions by their names; any other value in hex, such as ``0x7f1c``."""
    return TLS_VERSION_NAMES.get(version, f"0x{version:04x}")


def alpn_names(kept: bytes) -> tuple[bytes, ...]:
    """R22: the protocol names the kept bytes of an ALPN list hold, up to a zero length or one that does not fit."""
    names = []
    at = 0
    while at < len(kept):
        length = kept[at]
        if length == 0 or at + 1 + length > len(kept):
            break
        names.append(kept[at + 1 : at + 1 + length])
        at += 1 + length
    return tuple(names)


def flags_json(flags: EventFlag | TlsFlag) -> dict:
    """An event's ``flags``: the names of those set, a key only when one is (a bit without a name is not shown)."""
    names = [flag.name for flag in type(flags) if flags & flag]
    return {"flags": names} if names else {}


@dataclasses.dataclass(frozen=True)
class HeaderValue:
    """One configured header in one event. An absent header has flags 0 and empty fields."""

    name: str
    mode: HeaderMode
    flags: SlotFlag = NO_SLOT_FLAGS
    length: int = 0
    value: bytes = b""  # value mode: the (truncated) value; auth mode: the scheme; otherwise empty
    hash: int = 0  # hash and auth modes: SipHash-2-4 of the trimmed value

    @property
    def present(self) -> bool:
        return bool(self.flags & SlotFlag.PRESENT)

    def shown(self) -> str:
        """How a person sees it: secrets only as scheme and hash."""
        if not self.present:
            return "-"
        if self.mode in HASHED_MODES:
            scheme = self.value.decode("latin-1") + " " if self.value else ""
            return f"{scheme}#{self.hash:016x}"
        if self.mode is HeaderMode.PRESENCE:
            return f"present ({self.length} bytes)"
        text = self.value.decode("latin-1")
        return text + "..." if self.flags & (SlotFlag.TRUNCATED | SlotFlag.CUT) else text


@dataclasses.dataclass(frozen=True)
class Flow:
    """A TCP flow's addressing (docs/EXTRACTION.md R15): the key of its state, and the fields every event of
    it starts with, whatever the event's kind."""

    family: int
    saddr: str
    daddr: str
    sport: int
    dport: int
    vlan_ids: tuple[int, ...]

    def flow_json(self) -> dict:
        """The addressing every kind of event starts with; ``vlan_ids`` (outer first) only on a tagged flow."""
        return {
            "family": self.family,
            "saddr": self.saddr,
            "daddr": self.daddr,
            "sport": self.sport,
            "dport": self.dport,
            **({"vlan_ids": list(self.vlan_ids)} if self.vlan_ids else {}),
        }


@dataclasses.dataclass(frozen=True)
class HeaderEvent(Flow):
    request_index: int
    method: bytes
    target: bytes
    target_length: int
    version: int
    flags: EventFlag
    header_lines: int
    headers: tuple[HeaderValue, ...]
    # R27, R28: the rule the request matched, by name, and its action; None when no rule matched
    rule: str | None = None
    action: Action | None = None
    # Carried for people and logs, not part of what the reference can predict.
    timestamp_ns: int = dataclasses.field(default=0, compare=False)
    ifindex: int = dataclasses.field(default=0, compare=False)

    def header(self, name: str) -> HeaderValue:
        for value in self.headers:
            if value.name.lower() == name.lower():
                return value
        raise KeyError(name)

    def rule_json(self) -> dict:
        """R27: the rule and its action, keys that only an event whose request matched a rule has."""
        if self.rule is None:
            return {}
        assert self.action is not None
        return {"rule": self.rule, "action": self.action.label}

    def to_json(self) -> dict:
        """A JSON-ready dict, the line ``xhdr log --json`` writes; bytes become latin-1 text so nothing is lost.

        A line says only what the request had: a key whose value would be zero, empty or equal to another's
        is left out (docs/EXTRACTION.md, "Event fields"). With the configuration, which gives each header's
        mode, every field of the event can be read back from it. Half the bytes of a line that spelled out
        every field: at gateway rates the bytes a line takes are most of what logging it costs."""
        present = [value for value in self.headers if value.present]
        lengths = {value.name: value.length for value in present if value.length != len(value.value)}
        hashes = {value.name: f"{value.hash:016x}" for value in present if value.mode in HASHED_MODES}
        header_flags = {
            value.name: [flag.name for flag in SlotFlag if value.flags & flag & ~SlotFlag.PRESENT]
            for value in present
            if value.flags & ~SlotFlag.PRESENT
        }
        return {
            "kind": "http",
            **self.flow_json(),
            **({"request_index": self.request_index} if self.request_index else {}),
            "method": self.method.decode("latin-1"),
            "target": self.target.decode("latin-1"),
            **({"target_length": self.target_length} if self.target_length != len(self.target) else {}),
            "version": self.version,
            **flags_json(self.flags),
            "header_lines": self.header_lines,
            "timestamp_ns": self.timestamp_ns,
            "ifindex": self.ifindex,
            **self.rule_json(),
            "headers": {value.name: value.value.decode("latin-1") for value in present},
            **({"lengths": lengths} if lengths else {}),
            **({"hashes": hashes} if hashes else {}),
            **({"header_flags": header_flags} if header_flags else {}),
        }


@dataclasses.dataclass(frozen=True)
class TlsHello(Flow):
    """One TLS ClientHello (R21-R23): what a TLS port's flow offered before its bytes were encrypted."""

    sni: bytes  # the first MAX_TARGET_LEN bytes of the server name
    sni_length: int
    alpn: tuple[bytes, ...]  # the protocol names in the kept bytes of the ALPN list
    alpn_length: int
    tls_version: int
    flags: TlsFlag
    timestamp_ns: int = dataclasses.field(default=0, compare=False)
    ifindex: int = dataclasses.field(default=0, compare=False)
    request_index: int = 0

    def to_json(self) -> dict:
        return {
            "kind": "tls",
            **self.flow_json(),
            "sni": self.sni.decode("latin-1"),
            "sni_length": self.sni_length,
            "alpn": [name.decode("latin-1") for name in self.alpn],
            "alpn_length": self.alpn_length,
            "tls_version": tls_version_name(self.tls_version),
            **flags_json(self.flags),
            "timestamp_ns": self.timestamp_ns,
            "ifindex": self.ifindex,
        }


@dataclasses.dataclass(frozen=True)
class HttpResponse(Flow):
    """R24, R25: the final response to a logged request, on the request's flow (its client is ``saddr``)."""

    status: int
    version: int  # of the status line: 10 or 11
    # When the response left and when its request was logged; together, the request's latency in the kernel.
    timestamp_ns: int = dataclasses.field(default=0, compare=False)
    request_ns: int = dataclasses.field(default=0, compare=False)
    ifindex: int = dataclasses.field(default=0, compare=False)
    # The reference's word on which request it answers: its number in the flow, from 0 (None from the kernel).
    answers: int | None = dataclasses.field(default=None, compare=False)

    @property
    def latency_us(self) -> int:
        """Whole microseconds from the request to its response (on one monotonic clock; 0 if a record says
        less): the kernel's latency of the request, without the client's network."""
        return max(0, self.timestamp_ns - self.request_ns) // 1000

    def to_json(self) -> dict:
        return {
            "kind": "response",
            **self.flow_json(),
            "status": self.status,
            "version": self.version,
            "latency_us": self.latency_us,
            "request_timestamp_ns": self.request_ns,
            "timestamp_ns": self.timestamp_ns,
            "ifindex": self.ifindex,
        }


Event = HeaderEvent | TlsHello | HttpResponse


class _Slot(ctypes.Structure):
    _fields_ = [
        ("hash", ctypes.c_uint64),
        ("length", ctypes.c_uint16),
        ("value_len", ctypes.c_uint16),
        ("value_off", ctypes.c_uint16),
        ("flags", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8),
    ]


@functools.cache
def event_struct(max_target_len: int, max_value_len: int) -> type[ctypes.Structure]:
    """The ctypes twin of struct xhdr_event for these buffer sizes."""

    class Event(ctypes.Structure):
        _fields_ = [
            ("timestamp_ns", ctypes.c_uint64),
            ("saddr", ctypes.c_uint8 * 16),
            ("daddr", ctypes.c_uint8 * 16),
            ("ifindex", ctypes.c_uint32),
            ("sport", ctypes.c_uint16),
            ("dport", ctypes.c_uint16),
            ("vlan_ids", ctypes.c_uint16 * 2),
            ("target_length", ctypes.c_uint16),
            ("flags", ctypes.c_uint16),
            ("family", ctypes.c_uint8),
            ("version", ctypes.c_uint8),
            ("method_len", ctypes.c_uint8),
            ("vlan_count", ctypes.c_uint8),
            ("request_index", ctypes.c_uint8),
            ("header_lines", ctypes.c_uint8),
            ("data_len", ctypes.c_uint16),
            ("tls_version", ctypes.c_uint16),
            ("alpn_length", ctypes.c_uint16),
            ("kind", ctypes.c_uint8),
            ("reserved", ctypes.c_uint8),
            ("status", ctypes.c_uint16),
            ("request_ns", ctypes.c_uint64),
            ("rule_off", ctypes.c_uint16),
            ("rule_len", ctypes.c_uint8),
            ("action", ctypes.c_uint8),
            ("unused", ctypes.c_uint8 * 4),
            ("slots", _Slot * SLOTS),
            ("method", ctypes.c_uint8 * METHOD_MAX_LEN),
            ("data", ctypes.c_uint8 * (max_target_len + SLOTS * max_value_len + RULE_NAME_MAX)),
        ]

    Event.__name__ = f"Event_t{max_target_len}_v{max_value_len}"
    return Event


def decode_event(raw: bytes, config: ExtractorConfig) -> Event:
    """Turns the bytes of one ring-buffer record into a HeaderEvent, a TlsHello or an HttpResponse, by its kind.

    A record ends where its data[] is used up (data_len), so it is usually shorter than the struct.
    """
    struct_type = event_struct(config.max_target_len, config.max_value_len)
    data_offset = struct_type.data.offset
    if len(raw) < data_offset:
        raise ValueError(
            f"a {len(raw)}-byte ring-buffer record is shorter than an event's {data_offset}-byte head"
        )
    record = struct_type.from_buffer_copy(
        raw[: ctypes.sizeof(struct_type)].ljust(ctypes.sizeof(struct_type), b"\0")
    )
    data = raw[data_offset : data_offset + record.data_len]
    family = record.family
    address_len = 4 if family == 4 else 16

    def address(raw_address) -> str:
        return str(ipaddress.ip_address(bytes(raw_address[:address_len])))

    # What both kinds carry: the flow's fields, and when and where the event was made.
    common = {
        "family": family,
        "saddr": address(record.saddr),
        "daddr": address(record.daddr),
        "sport": record.sport,
        "dport": record.dport,
        "vlan_ids": tuple(record.vlan_ids[: record.vlan_count]),
        "timestamp_ns": record.timestamp_ns,
        "ifindex": record.ifindex,
    }
    if record.kind == EventKind.RESPONSE:
        return HttpResponse(
            **common, status=record.status, version=record.version, request_ns=record.request_ns
        )
    if record.kind == EventKind.TLS:
        # Slots 0 and 1 say where the SNI and the ALPN list are in data[]: a ClientHello over several
        # segments appends them in the order its extensions come (R23).
        sni, alpn = record.slots[TLS_SLOT_SNI], record.slots[TLS_SLOT_ALPN]
        return TlsHello(
            **common,
            sni=data[sni.value_off : sni.value_off + min(sni.value_len, config.max_target_len)],
            sni_length=record.target_length,
            alpn=alpn_names(
                data[alpn.value_off : alpn.value_off + min(alpn.value_len, config.max_value_len)]
            ),
            alpn_length=record.alpn_length,
            tls_version=record.tls_version,
            flags=TlsFlag(record.flags),
        )
    headers = []
    for index, rule in enumerate(config.headers):
        slot = record.slots[index]
        headers.append(
            HeaderValue(
                name=rule.name,
                mode=rule.mode,
                flags=SlotFlag(slot.flags),
                length=slot.length,
                value=data[slot.value_off : slot.value_off + slot.value_len],
                hash=slot.hash,
            )
        )
    return HeaderEvent(
        **common,
        request_index=record.request_index,
        method=bytes(record.method[: record.method_len]),
        target=data[: min(record.target_length, config.max_target_len)],
        target_length=record.target_length,
        version=record.version,
        flags=EventFlag(record.flags),
        header_lines=record.header_lines,
        headers=tuple(headers),
        rule=data[record.rule_off : record.rule_off + record.rule_len].decode("latin-1")
        if record.rule_len
        else None,
        action=Action(record.action) if record.rule_len else None,
    )
