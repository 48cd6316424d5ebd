"""Test frames, defined once: a ``FrameSpec`` says what a frame is, ``build`` makes its bytes with scapy.

Tests, the corpus and the fuzzer describe frames as specs rather than byte strings, so a case reads as what it
tests ("IPv6, two VLAN tags, this payload") and every frame gets correct checksums from one place. When two
frames should be equal and are not, ``describe_difference`` names the layers and fields that differ instead of
printing two hex dumps.

The addresses repeat netns/addressing.py on purpose: the harness must not import netns.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Literal

from scapy.layers.inet import IP, TCP, UDP, IPOption
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import NoPayload, Packet, Raw

from harness.oracle.reference import TCP_SYN, tcp_segment


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One side of the test link."""

    mac: str
    ipv4: str
    ipv6: str


CLIENT = Endpoint(mac="02:78:68:00:00:01", ipv4="198.18.0.1", ipv6="2001:db8:1::1")
GATEWAY = Endpoint(mac="02:78:68:00:00:02", ipv4="198.18.0.2", ipv6="2001:db8:1::2")

LATER_FRAGMENT_OFFSET = (
    185  # in 8-byte units: 1480 bytes, where a second fragment of a 1500 MTU packet starts
)


@dataclasses.dataclass(frozen=True)
class FrameSpec:
    """A client-to-gateway frame carrying ``payload`` over TCP (or UDP), varied where the rules care; with
    ``reply``, the gateway-to-client frame of the same flow."""

    payload: bytes = b""
    family: Literal[4, 6] = 4
    sport: int = 40000
    dport: int = 80
    vlan_ids: tuple[int, ...] = ()  # outer first; any number, so a third tag can be built
    vlan_tpids: tuple[int, ...] | None = None  # one TPID per tag; default 0x8100 for every tag
    ip_options: bytes = b""  # raw IPv4 options, zero-padded to a multiple of 4
    tcp_options: bytes = b""  # raw TCP options, zero-padded (EOL) to a multiple of 4
    fragment: Literal["none", "first", "later"] = "none"  # IPv4 only: MF with offset 0, or a non-zero offset
    ipv6_ext: bool = False  # IPv6 only: a hop-by-hop header between IPv6 and TCP
    protocol: Literal["tcp", "udp"] = "tcp"
    flags: str = "PA"  # TCP flags in scapy's letters
    seq: int = 1000
    pad: int = 0  # zero bytes after the IP packet (Ethernet padding: never payload)
    truncate_to: int | None = None  # keep only this many bytes of the finished frame
    reply: bool = False  # the gateway answers: addresses and ports swapped (R24, a frame leaving)

    def __post_init__(self) -> None:
        if self.family not in (4, 6):
            raise ValueError(f"family = {self.family!r}; use 4 or 6")
        if self.fragment != "none" and self.family != 4:
            raise ValueError("fragment applies to IPv4 only; use family = 4 or fragment = 'none'")
        if self.ipv6_ext and self.family != 6:
            raise ValueError("ipv6_ext applies to IPv6 only; use family = 6")
        if self.vlan_tpids is not None and len(self.vlan_tpids) != len(self.vlan_ids):
            raise ValueError("vlan_tpids needs one TPID per entry of vlan_ids")


def build(spec: FrameSpec) -> bytes:
    """The frame's bytes, checksums computed by scapy, then padded and truncated as the spec says."""
    frame = bytes(_ethernet(spec) / _network(spec) / _transport(spec) / Raw(spec.payload))
    frame += bytes(spec.pad)
    return frame if spec.truncate_to is None else frame[: spec.truncate_to]


def split(spec: FrameSpec, at: int) -> tuple[FrameSpec, FrameSpec]:
    """One request as two TCP segments: payload[:at], then payload[at:] at the following sequence number."""
    first = dataclasses.replace(spec, payload=spec.payload[:at])
    second = dataclasses.replace(spec, payload=spec.payload[at:], seq=spec.seq + at)
    return first, second


def opening(frame: bytes) -> bytes | None:
    """The SYN that opens ``frame``'s flow so that the flow expects a request at ``frame``'s first payload byte.

    Same Ethernet, VLAN, IP and TCP addressing (and IP/TCP options), TCP flags exactly SYN, sequence number one
    before ``frame``'s, no payload, no Ethernet padding; the IP length fields, the IPv4 header checksum and the
    TCP checksum are recomputed, IPv4's MF flag and TCP's ACK number and urgent pointer are cleared. None when
    ``frame`` is not an IPv4 or IPv6 TCP segment the extractor parses (R1-R6, whatever the port), or when it
    has the SYN flag itself (it opens its own flow, R15). Byte surgery on the layer offsets, no scapy: the
    fuzzer calls it for every example.
    """
    segment = tcp_segment(frame)
    if segment is None or segment.syn:
        return None
    ip, tcp, end = segment.ip_start, segment.tcp_start, segment.payload_start
    syn = bytearray(frame[:end])
    if segment.flow.family == 4:
        struct.pack_into("!H", syn, ip + 2, end - ip)  # total length
        syn[ip + 6] &= 0xDF  # no MF: the SYN is a whole packet (the fragment offset is 0 already, R4)
        struct.pack_into("!H", syn, ip + 10, 0)
        struct.pack_into("!H", syn, ip + 10, _internet_checksum(syn[ip:tcp]))
        pseudo = syn[ip + 12 : ip + 20] + struct.pack("!BBH", 0, 6, end - tcp)
    else:
        struct.pack_into("!H", syn, ip + 4, end - tcp)  # payload length
        pseudo = syn[ip + 8 : ip + 40] + struct.pack("!I3xB", end - tcp, 6)
    struct.pack_into("!II", syn, tcp + 4, (segment.seq - 1) & 0xFFFFFFFF, 0)  # sequence, acknowledgement
    syn[tcp + 12] &= 0xF0  # data offset kept; the reserved bits and NS cleared
    syn[tcp + 13] = TCP_SYN
    struct.pack_into("!HH", syn, tcp + 16, 0, 0)  # checksum (below) and urgent pointer
    struct.pack_into("!H", syn, tcp + 16, _internet_checksum(pseudo + syn[tcp:end]))
    return bytes(syn)


def _internet_checksum(data: bytes | bytearray) -> int:
    """RFC 1071: the ones' complement of the ones' complement sum of 16-bit words."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def arp_frame() -> bytes:
    """An ARP request from the client for the gateway: the not_ip case (R3)."""
    request = ARP(op="who-has", hwsrc=CLIENT.mac, psrc=CLIENT.ipv4, pdst=GATEWAY.ipv4)
    return bytes(Ether(src=CLIENT.mac, dst="ff:ff:ff:ff:ff:ff") / request)


def describe_difference(a: bytes, b: bytes) -> str:
    """The layers and fields where two Ethernet frames differ, one per line; empty when the frames are equal.

    Layers are paired by type and occurrence (the second Dot1Q with the second Dot1Q), so an extra VLAN tag
    shows as one missing layer rather than every later layer differing.
    """
    if a == b:
        return ""
    lines = [f"lengths: {len(a)} != {len(b)}"] if len(a) != len(b) else []
    layers_a, layers_b = _layers(Ether(a)), _layers(Ether(b))
    if list(layers_a) != list(layers_b):
        lines.append(f"layers: {'/'.join(layers_a)} != {'/'.join(layers_b)}")
    for key in dict.fromkeys([*layers_a, *layers_b]):
        lines.extend(_layer_difference(key, layers_a.get(key), layers_b.get(key)))
    return "\n".join(lines) or "the frames differ only in bytes scapy does not show"


def _ethernet(spec: FrameSpec) -> Packet:
    """Ethernet and the VLAN tags, each EtherType/TPID set explicitly so 802.1ad outer tags work."""
    tpids = spec.vlan_tpids if spec.vlan_tpids is not None else (0x8100,) * len(spec.vlan_ids)
    inner_type = 0x0800 if spec.family == 4 else 0x86DD
    types = (*tpids, inner_type)
    source, destination = _sides(spec)
    packet: Packet = Ether(src=source.mac, dst=destination.mac, type=types[0])
    for index, vlan in enumerate(spec.vlan_ids):
        packet = packet / Dot1Q(vlan=vlan, type=types[index + 1])
    return packet


def _sides(spec: FrameSpec) -> tuple[Endpoint, Endpoint]:
    """(source, destination) of the frame."""
    return (GATEWAY, CLIENT) if spec.reply else (CLIENT, GATEWAY)


def _network(spec: FrameSpec) -> Packet:
    source, destination = _sides(spec)
    if spec.family == 6:
        header = IPv6(src=source.ipv6, dst=destination.ipv6)
        return header / IPv6ExtHdrHopByHop() if spec.ipv6_ext else header
    fragment = {"none": {}, "first": {"flags": "MF"}, "later": {"frag": LATER_FRAGMENT_OFFSET}}[spec.fragment]
    options = [IPOption(_padded(spec.ip_options))] if spec.ip_options else []
    return IP(src=source.ipv4, dst=destination.ipv4, options=options, **fragment)


def _transport(spec: FrameSpec) -> Packet:
    sport, dport = (spec.dport, spec.sport) if spec.reply else (spec.sport, spec.dport)
    if spec.protocol == "udp":
        return UDP(sport=sport, dport=dport)
    options = _padded(spec.tcp_options)
    header = TCP(sport=sport, dport=dport, flags=spec.flags, seq=spec.seq, dataofs=5 + len(options) // 4)
    # scapy's options field wants parsed tuples; parsing the raw bytes through a TCP header gets them.
    header.options = TCP(bytes(header)[:20] + options).options if options else []
    return header


def _padded(options: bytes) -> bytes:
    return options + bytes(-len(options) % 4)


def _layers(packet: Packet) -> dict[str, Packet]:
    """The layers of a packet keyed 'Dot1Q', 'Dot1Q#2', ... in order."""
    layers: dict[str, Packet] = {}
    while not isinstance(packet, NoPayload):
        name = type(packet).__name__
        count = sum(1 for key in layers if key.split("#")[0] == name)
        layers[f"{name}#{count + 1}" if count else name] = packet
        packet = packet.payload
    return layers


def _layer_difference(name: str, left: Packet | None, right: Packet | None) -> list[str]:
    """The differing fields of two layers of the same type, as 'Layer.field: a != b'."""
    if left is None or right is None:
        return [f"{name}: only in the {'second' if left is None else 'first'} frame"]
    if isinstance(left, Raw):
        return _raw_difference(name, left.load, right.load)
    lines = []
    for field in left.fields_desc:
        value_a, value_b = left.getfieldval(field.name), right.getfieldval(field.name)
        if value_a != value_b:
            lines.append(
                f"{name}.{field.name}: {field.i2repr(left, value_a)} != {field.i2repr(right, value_b)}"
            )
    return lines


def _raw_difference(name: str, a: bytes, b: bytes) -> list[str]:
    """Payloads compared as text around the first differing byte, which is what a person looks for."""
    if a == b:
        return []
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    window = slice(max(0, at - 16), at + 16)
    return [f"{name}: {len(a)} and {len(b)} bytes, first difference at {at}: {a[window]!r} != {b[window]!r}"]
