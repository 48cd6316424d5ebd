"""Baselines (a) and (b): an AF_PACKET socket in Python, parsed by the reference or by httptools.

Run as ``python -m bench.baselines.pycapture --parser reference|httptools [capture.c's options] ring IFNAME``;
it takes the same options as capture.c and writes the same lines, so the three baselines are started,
stopped and checked the same way. This is "the traditional way": every frame is copied into a Python
bytes object by recvmsg, walked in Python, and handed to a parser.

The reference parser is one ``FlowTracker`` for the whole capture, so it follows flows (R15-R18) as the
extractor does. httptools reads each frame on its own, as the first segment of its flow (what
``reference.extract`` answers), and applies R17's flags; it keeps no flow state.
"""

from __future__ import annotations

import argparse
import ctypes
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from types import FrameType

from bench.baselines import event_line, socket_filter
from harness.core.config import ExtractorConfig, HeaderMode, HeaderRule
from harness.core.event import EventFlag, HeaderEvent, HeaderValue
from harness.oracle.reference import (
    DIGITS,
    FlowTracker,
    FrameEnded,
    ends_in_chunked,
    filled_slot,
    read_layers,
)
from netns.capture import AUXDATA, PACKET_AUXDATA, SOL_PACKET, with_vlan_tag

PACKET_STATISTICS = 6
PACKET_IGNORE_OUTGOING = 23
SO_ATTACH_FILTER = 26
ETH_P_ALL = 0x0003
FRAME_MAX = 65536

FrameParser = Callable[[bytes], list[HeaderEvent]]  # one captured frame, in arrival order, to its events
CONTENT_LENGTH_MAX_DIGITS = 16  # R17


def reference_parser(config: ExtractorConfig, key: bytes) -> FrameParser:
    """Baseline (a): the reference extractor, the whole of docs/EXTRACTION.md in Python, one FlowTracker for
    every frame of the capture (R15-R18 follow the flows across frames).
    """
    tracker = FlowTracker(config, key)
    return lambda frame: list(tracker.feed(frame).events)


def httptools_parser(config: ExtractorConfig, key: bytes) -> FrameParser:
    """Baseline (b): httptools frame by frame (``httptools_events``), no flow state."""
    return lambda frame: httptools_events(frame, config, key) or []


class _Stop(Exception):
    """Raised from a callback to end llhttp's parse: the rules read nothing after this request (R14, R17)."""


class _Message:
    """What httptools reports of one request; header values trimmed by R13 as llhttp leaves some OWS."""

    def __init__(self) -> None:
        self.url = b""
        self.fields: list[tuple[bytes, bytes]] = []
        self.flags = EventFlag(0)
        self.length_lines = 0
        self.coding_lines = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        value = value.strip(b" \t")
        self.fields.append((name, value))
        self._body_field(name.lower(), value)

    def _body_field(self, name: bytes, value: bytes) -> None:
        """R17 on a whole field line (llhttp reports a header once its line ended): TRANSFER_ENCODING (and R19's
        TE_NOT_CHUNKED), or BAD_CONTENT_LENGTH for a second Content-Length or a value that is not 1 to 16 digits.
        """
        if name == b"transfer-encoding":
            self.flags |= EventFlag.TRANSFER_ENCODING
            self.coding_lines += 1
            if self.length_lines:
                self.flags |= EventFlag.CL_AND_TE
            if not ends_in_chunked(value):
                self.flags |= EventFlag.TE_NOT_CHUNKED
        elif name == b"content-length":
            self.length_lines += 1
            if self.flags & EventFlag.TRANSFER_ENCODING:
                self.flags |= EventFlag.CL_AND_TE
            digits = 1 <= len(value) <= CONTENT_LENGTH_MAX_DIGITS and not value.translate(None, DIGITS)
            if self.length_lines > 1 or not digits:
                self.flags |= EventFlag.BAD_CONTENT_LENGTH

    @property
    def body_unknown(self) -> bool:
        """R17, R20: the rules cannot know where its body ends, so it is the last request they read (R14).
        A chunked body is known: llhttp walks it as R20 does."""
        unknown = EventFlag.BAD_CONTENT_LENGTH | EventFlag.TE_NOT_CHUNKED | EventFlag.CL_AND_TE
        return bool(self.flags & unknown) or self.coding_lines > 1


def httptools_events(
    frame: bytes, config: ExtractorConfig, key: bytes, *, strict: bool = False
) -> list[HeaderEvent] | None:
    """Baseline (b): the same L2-L4 walk, then httptools (llhttp) for the requests of the view.

    llhttp is a stream parser, so pipelined requests come out one after the other, a Content-Length body
    skipped; a request it refuses, or one the view cuts, ends the frame, and so does a request whose body
    length the rules call unknown (R17: Transfer-Encoding, a bad or second Content-Length), as R14 says.
    llhttp is stricter than the rules (bare LF, NUL, bytes >= 0x80 in a target, unknown methods, a
    second Content-Length), so it is compared on the requests both call well formed: with ``strict``, a
    frame llhttp refuses anywhere gives None instead of the requests before.
    """
    import httptools

    try:
        flow, payload = read_layers(frame, config)
    except FrameEnded:
        return []
    view = payload[: config.max_scan_bytes]
    messages: list[tuple[_Message, bytes, int]] = []
    current = _Message()

    class Protocol:
        def on_url(self, url: bytes) -> None:
            current.url += url

        def on_header(self, name: bytes, value: bytes) -> None:
            current.on_header(name, value)

        def on_headers_complete(self) -> None:
            nonlocal current
            version = {"1.0": 10, "1.1": 11}.get(parser.get_http_version(), 0)
            messages.append((current, parser.get_method(), version))
            if current.body_unknown:
                raise _Stop
            current = _Message()

    parser = httptools.HttpRequestParser(Protocol())
    try:
        parser.feed_data(view)
    except httptools.HttpParserError as error:
        if strict and not isinstance(error.__context__, _Stop):
            return None
    scan_limit = EventFlag.SCAN_LIMIT if len(payload) > len(view) else EventFlag(0)
    events = []
    for index, (message, method, version) in enumerate(messages[: config.max_requests_per_packet]):
        flags = message.flags | scan_limit
        if len(message.url) > config.max_target_len:
            flags |= EventFlag.TARGET_TRUNCATED
        events.append(
            HeaderEvent(
                family=flow.family,
                saddr=flow.saddr,
                daddr=flow.daddr,
                sport=flow.sport,
                dport=flow.dport,
                vlan_ids=flow.vlan_ids,
                request_index=index,
                method=method,
                target=message.url[: config.max_target_len],
                target_length=len(message.url),
                version=version,
                flags=EventFlag(flags),
                header_lines=len(message.fields),
                headers=_slots(message.fields, config, key),
            )
        )
    return events


def _slots(fields: list[tuple[bytes, bytes]], config: ExtractorConfig, key: bytes) -> tuple[HeaderValue, ...]:
    """R13 on httptools' fields: the first occurrence fills a slot, later ones add REPEATED."""
    slots = []
    for rule in config.headers:
        values = [value for name, value in fields if name.lower() == rule.name.lower().encode()]
        slots.append(_slot(rule, values, config, key))
    return tuple(slots)


def _slot(rule: HeaderRule, values: list[bytes], config: ExtractorConfig, key: bytes) -> HeaderValue:
    """The reference's own slot filling, one occurrence after the other (the second only adds REPEATED)."""
    slot = HeaderValue(rule.name, rule.mode)
    for value in values[:2]:
        slot = filled_slot(slot, value, False, config, key)
    return slot


PARSERS: dict[str, Callable[[ExtractorConfig, bytes], FrameParser]] = {
    "reference": reference_parser,
    "httptools": httptools_parser,
}


# --- capture ----------------------------------------------------------------------------------------


def _attach_filter(sock: socket.socket, ports: tuple[int, ...]) -> None:
    """SO_ATTACH_FILTER with the baselines' shared classic BPF program (struct sock_fprog)."""
    code = socket_filter(ports)
    array = (ctypes.c_uint8 * (8 * len(code)))()
    for index, (op, jt, jf, k) in enumerate(code):
        struct.pack_into("=HBBI", array, 8 * index, op, jt, jf, k)
    fprog = struct.pack("=HxxxxxxQ", len(code), ctypes.addressof(array))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def capture(ifname: str, parser: FrameParser, config: ExtractorConfig, args: argparse.Namespace) -> None:
    """Reads frames until a signal, ``-c`` packets or ``-t`` seconds; one line per request unless ``-q``."""
    stopped: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopped.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    _attach_filter(sock, config.ports)
    sock.bind((ifname, ETH_P_ALL))
    sock.settimeout(0.1)
    print("ready", file=sys.stderr, flush=True)
    out = sys.stdout
    packets = requests = 0
    deadline = time.monotonic() + args.seconds if args.seconds > 0 else float("inf")
    buffer = bytearray(FRAME_MAX)
    view = memoryview(buffer)
    ancillary_size = socket.CMSG_SPACE(AUXDATA.size)
    drops = 0
    while not stopped and (not args.count or packets + drops < args.count) and time.monotonic() < deadline:
        try:
            size, ancillary, _, _ = sock.recvmsg_into([view], ancillary_size)
        except (TimeoutError, InterruptedError):
            drops += _drops(sock)  # idle: a count that lost packets ends here
            continue
        packets += 1
        events = parser(with_vlan_tag(bytes(view[:size]), ancillary))
        requests += len(events)
        if not args.quiet:
            for event in events:
                out.write(event_line(event) + "\n")
            if events:
                out.flush()
    drops += _drops(sock)
    out.flush()
    print(f"stats packets={packets} requests={requests} drops={drops}", file=sys.stderr, flush=True)


def _drops(sock: socket.socket) -> int:
    """Packets the kernel dropped for a full receive queue since the last call (reading resets them)."""
    return struct.unpack("=II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))[1]


def parse_args(argv: list[str]) -> argparse.Namespace:
    """capture.c's command line, so the harness builds one argument list for all three baselines."""
    parser = argparse.ArgumentParser(prog="pycapture")
    parser.add_argument("--parser", choices=sorted(PARSERS), required=True)
    parser.add_argument("-p", dest="ports", type=int, action="append", required=True)
    parser.add_argument("-H", dest="rules", action="append", required=True)
    parser.add_argument("-k", dest="key", default="00" * 16)
    parser.add_argument("-L", dest="max_header_lines", type=int, default=32)
    parser.add_argument("-V", dest="max_value_len", type=int, default=128)
    parser.add_argument("-T", dest="max_target_len", type=int, default=128)
    parser.add_argument("-S", dest="max_scan_bytes", type=int, default=1536)
    parser.add_argument("-R", dest="max_requests_per_packet", type=int, default=4)
    parser.add_argument("-G", dest="max_request_segments", type=int, default=8)
    parser.add_argument("-F", dest="max_flows", type=int, default=65536)
    parser.add_argument("-c", dest="count", type=int, default=0)
    parser.add_argument("-t", dest="seconds", type=float, default=0.0)
    parser.add_argument("-q", dest="quiet", action="store_true")
    parser.add_argument("source", choices=["ring"])
    parser.add_argument("ifname")
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> ExtractorConfig:
    rules = []
    for rule in args.rules:
        name, _, mode = rule.partition("=")
        rules.append(HeaderRule(name, HeaderMode[(mode or "value").upper()]))
    return ExtractorConfig(
        ports=tuple(args.ports),
        headers=tuple(rules),
        max_header_lines=args.max_header_lines,
        max_value_len=args.max_value_len,
        max_target_len=args.max_target_len,
        max_scan_bytes=args.max_scan_bytes,
        max_requests_per_packet=args.max_requests_per_packet,
        max_request_segments=args.max_request_segments,
        max_flows=args.max_flows,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = config_from(args)
        capture(args.ifname, PARSERS[args.parser](config, bytes.fromhex(args.key)), config, args)
    except OSError as error:
        print(f"pycapture: {args.ifname}: {error.strerror or error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
