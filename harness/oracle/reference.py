"""The reference extractor: docs/EXTRACTION.md written as a plain Python parser of frame bytes.

It is the oracle the kernel program is compared with, event by event and counter by counter, so it favours
being obviously right over being fast: each function reads one layer and cites the rule it implements. In
short (the document is the contract; this is a summary):

Frames and counters
    Every frame counts once in ``packets`` and once in one outcome, the first that applies. R1: under 14 bytes
    is malformed. R2: up to two 802.1Q/802.1ad tags are read (a short tag is malformed, a third tag is
    ``vlan_too_deep``); the VLAN id is the low 12 bits of the TCI. R3: only IPv4 and IPv6 go on (else
    ``not_ip``). R4: a broken IPv4 header is malformed, a non-zero fragment offset is ``later_fragment``, a
    protocol other than TCP is ``not_tcp``; the IP end is capped by the total length, so Ethernet padding is
    never payload. R5: the same for IPv6, where any extension header is ``ipv6_ext_header``. R6: a TCP header
    that does not fit before the IP end is malformed, an unwatched destination port is ``port_not_watched``;
    otherwise ``tcp_watched`` counts, the segment's flags act on its flow (R15) and an empty payload is
    ``no_payload``. R7: only the first ``max_scan_bytes`` of the payload (the view) are read, and a longer
    payload marks every event ``SCAN_LIMIT``. R8: a segment its flow lets the parser read (R16) is read from
    its start offset; when no request begins there the outcome is ``not_http`` and the flow is lost,
    otherwise ``http_request`` and ``events`` count once per request logged.

Request line
    R9: ``method SP target SP version (CRLF | LF)``, with a 1..16 tchar method, a target of visible or high
    bytes (``target`` keeps ``max_target_len`` bytes, ``target_length`` counts them all, a longer one is
    ``TARGET_TRUNCATED``) and exactly ``HTTP/1.0`` or ``HTTP/1.1``. Any byte that breaks the grammar means
    "not a request". R10: a line the view cuts after the method's SP, with every byte so far fitting, is still
    logged as ``LINE_CUT``, with no headers, version 0 unless all eight version bytes were seen; this holds
    for every request read, the first of a segment or a later one.

Header section
    R11: lines end at LF, one CR before it is dropped; an empty line (LF or CR LF) completes the request. A CR
    followed by anything else starts a bad non-empty line; a view ending right after a CR at a line start
    leaves that line unknown. Each non-empty line counts in ``header_lines``; one more than
    ``max_header_lines`` sets ``TOO_MANY_HEADERS`` and ends the frame's scan. A view that ends before the
    empty line sets ``HEADERS_CUT``, unless the request goes on in the next segment (R18).

    R12: a field line is ``name ":" value`` with a tchar name; obs-fold, no colon, an empty name or a
    non-tchar before the colon set ``BAD_LINE`` as soon as the offending byte is seen. Names match the
    configured rules ignoring ASCII case.

    R13: the value loses one final CR, then SP/HT at both ends; ``length`` is the trimmed length; a value the
    view cuts is logged from what was seen, with ``CUT``; the first occurrence fills the slot, later ones only
    add ``REPEATED``. Modes: ``value`` keeps ``max_value_len`` bytes (``TRUNCATED`` beyond), ``hash`` keeps a
    keyed SipHash-2-4 of the whole trimmed value, ``auth`` also keeps the scheme (1..16 tchar then SP at the
    start), ``presence`` keeps flags and length only.

Several requests in one frame
    R14: a complete request is followed by its body (R17) and the next request starts after it: past the
    payload's end the flow goes to ``body`` mode, exactly at it the flow stays in ``request`` mode, inside
    the view (fewer than ``max_requests_per_packet`` read) the next request is read there, anywhere else the
    flow is lost. A next request that is not a request loses the flow; the earlier ones stay logged. A
    request logged with ``LINE_CUT``, ``HEADERS_CUT`` or ``TOO_MANY_HEADERS``, or with an unknown body
    length, is the frame's last and loses the flow.

Flows
    R15: a flow is (family, addresses, ports, VLAN ids) with a state ``expect`` and a mode (``request``,
    ``body`` with ``body_left``, ``headers`` with the kept request of R18, ``lost``, R21's ``encrypted``,
    R23's ``hello``); sequence numbers compare modulo 2^32. On a watched segment: RST
    removes the state (``flows_closed``) and the segment goes on without one; SYN without RST sets
    ``request`` at seq + 1 (``flows_opened``), its payload (TCP Fast Open) starting there; an empty payload
    is ``no_payload``; the payload goes to R16; FIN then removes the state (``flows_closed``). Each change to
    ``lost`` counts once in ``flows_lost``; a lost flow is read again only after a new SYN.

    R16: with ``s`` the payload's sequence number and ``n`` its length by the IP header (even when the frame
    is cut shorter): no state is ``mid_stream``, a lost flow ``out_of_sync``, ``s + n <= expect``
    ``retransmitted``, ``s > expect`` ``out_of_order`` (no change); otherwise reading starts at ``expect -
    s``: a body covering the rest of the payload consumes it (``body``), else the requests after the body are
    read (R8), and a start at or past the view's end is ``out_of_sync`` and loses the flow.

    R17: a ``Transfer-Encoding`` line sets ``TRANSFER_ENCODING`` as soon as its colon is seen; a
    ``Content-Length`` line with a trimmed value of 1..16 digits gives the body length, any other value, a
    second such line or a value cut before its LF (by the view or the payload's end) sets
    ``BAD_CONTENT_LENGTH``, which makes the body's end unknown. Neither line: no body. One
    ``Transfer-Encoding`` line whose whole value ends in ``chunked``, without ``Content-Length``: a chunked
    body (R20); any other ``Transfer-Encoding``: unknown.

    R18: a header section cut by the payload's end (the view holds the whole payload by its IP length), after
    a complete request line, read in fewer than ``max_request_segments`` segments, is not logged yet: the
    request is kept as it stands with where the cut fell, the flow goes to ``headers`` mode after the
    payload, and a frame that logs no request and ends so is ``continued``. The next segment the flow reads
    goes on with it from its start offset: at a line start nothing is lost (a lone CR there is the empty line
    if an LF follows, else a bad counted line); in a field name the rest is checked for tchar up to the colon
    (a non-tchar or an LF first is ``BAD_LINE``), the line is not matched and the event gets ``NAME_SPLIT``;
    in the value of a line that filled a ``value`` or ``presence`` slot, the rest up to the LF is read as
    more of the same value (R13 applies to the whole, ``CUT`` only while it is still cut); in the value of a
    ``hash`` or ``auth`` slot (``CUT``, R13) or of a ``Content-Length`` line, or in a line being skipped, the
    rest of the line is skipped. The request is logged where it ends, as that frame's
    request 0 with that frame's ``SCAN_LIMIT`` and the flags, lines and slots of all its segments; still
    cut in its ``max_request_segments``th segment, or cut by the view, it is ``HEADERS_CUT`` and loses the
    flow.

Chunked bodies
    R20: a chunked body is walked byte by byte through its framing (1..16 hex digits, an optional ``;``
    extension, CR LF, data skipped unread, CR LF; a last chunk of size 0, trailer lines, CR LF), at most
    ``CHUNK_STEPS`` steps a segment (a framing byte or a data run each); data may run past the view, framing
    may not. A bad byte, framing past the view or no steps left lose the flow; a payload that ends inside the
    body puts the flow in ``chunked`` mode. In one segment one request's chunked body is walked; a second one
    loses the flow.

TLS
    R21: a port in ``tls_ports`` is watched like an HTTP port (R6, R15, R16), but its flow is read once: the
    bytes at the start offset of its first segment read in ``request`` mode are a ClientHello (outcome
    ``tls_hello``, one TLS event) or not (``not_tls``), and either way the flow goes to ``encrypted`` mode,
    whose segments are ``encrypted`` before R16's sequence checks; TLS never loses a flow by its bytes.
    R22: a record header (type 22, version 3.0 to 3.4, length R) and a handshake header (type 1, length L,
    L + 4 <= R), then the fixed fields (a session id of at most 32 bytes, an even cipher suite list of at
    least 2 bytes, at least one compression method), every one inside the hello and the view, or it is not a
    hello. The extensions are read in order up to their end, at most 32 (``TOO_MANY_EXTENSIONS``); one byte
    where their length goes, or a header or data past their end, is ``BAD_EXTENSIONS``; a header past the
    view stops the reading; extensions ending past the view (or the hello, when their length was not read)
    are ``HELLO_CUT``. The first ``server_name``, ALPN and ``supported_versions`` read give ``sni``
    (``max_target_len`` kept, ``SNI_TRUNCATED``), the ALPN list (``max_value_len`` bytes kept,
    ``ALPN_TRUNCATED``, names read from the kept bytes) and ``tls_version`` (the highest non-GREASE version
    offered, else the legacy_version).
    R23: a hello whose reading stops at the end of its payload (the view being the whole payload) right before
    an extension's header, inside one, or inside an extension's data goes on in the flow's next segment, in
    ``hello`` mode (outcome ``continued``), up to ``max_request_segments`` segments read; an extension of the
    three whose data the cut splits gives nothing (``SPLIT_EXTENSION``); a header the cut splits is finished by
    the next segment's first bytes, or ends the reading when that segment is too short.

Responses
    R24: with ``responses`` on, each request logged in a flow whose state is still there after the segment
    (a FIN removes it first) waits for its response; a SYN starts the count afresh, RST and FIN remove it
    with the state. R25: a frame leaving from a watched HTTP port whose payload starts with a status line
    (``HTTP/1.0`` or ``HTTP/1.1``, SP, three digits, SP or CR) with a final status (not 1xx, but 101) answers
    the oldest waiting request of its flow: one response event on the request's flow with the status, the
    line's version and the request's time, if that request is among the last four logged
    (``responses``), else ``responses_unmatched``, as is a response that no request waits for. Other frames
    leaving count nothing. R26 (latencies per endpoint, kept in a map from kernel times) is not predicted here:
    harness/core/latencies.py says how a response event's latency and its request's target give its bucket.

Rules
    R27: each request logged (not a TLS event) is matched against the configuration's rules in order, the
    first whose conditions (exact, prefix or contains on the method, the target or a value-mode header's
    logged value) all hold being its rule. R28: ``log`` names the rule in the event, ``count`` withholds the
    event (``events_withheld``) and its response's (``responses_withheld``), ``sample`` writes one in ``every``
    of the rule's hits (one CPU's count here),
    ``drop`` writes it and drops the segment (``dropped``, every event of the segment flagged ``DROPPED``).
    R29: the dropped segment's flow is ``blocked``: its later payloads are dropped (outcome ``blocked``), a
    FIN leaves it blocked. R30: a rule's ``count_by`` headers count each match by (rule, endpoint, value) in
    ``FlowTracker.aggregates``.

The flow table is a plain dict: the kernel's LRU eviction at ``max_flows`` (R15) is not modelled, so tests and
the fuzzer keep fewer flows than that alive at once.

Readings chosen where the rules leave room (each is marked "Reading:" in the code below):

- A header line cut by the view after a CR that is not at the line start (``Host\\r`` then the view ends): the
  CR is a non-tchar byte before any colon, so ``BAD_LINE`` is set now (whatever follows, the line is bad).
- A cut line counts in ``header_lines`` as soon as it begins (it is a non-empty line), whether or not its name
  is complete.
- The final-CR rule of R13 applies to a cut value too (``X-A: b\\r`` then the view ends gives ``b``).
- A repeated occurrence that the view cuts sets only ``REPEATED``: the slot keeps the first occurrence, so it
  does not gain ``CUT``.
- R10 with the view ending right after the method's SP logs an empty target (``target_length`` 0).
- R15: ``flows_closed`` counts a state actually removed; an RST or FIN of a flow without state counts nothing.
- R15, R16: sequence numbers compare as the signed 32-bit difference (``a <= b`` when ``int32(a - b) <= 0``),
  so a distance of exactly 2^31 counts as "before".
- R6, R16: "empty payload" is judged on the bytes present (R6's payload); only R16 uses the IP header's
  length ``n``, so a frame cut right after its TCP header is ``no_payload`` whatever ``n`` is.
- R16: a body "goes on past the payload" when it reaches at least the payload's end: a body ending exactly
  with its segment is consumed (outcome ``body``) and leaves the flow in ``request`` mode after the payload,
  as R14 does for a request ending there; the view check applies to the start of the requests after a body.
- R18: a line the cut finds already bad (a non-tchar before the cut, ``Ho st`` or ``Host\\r``; obs-fold; a
  CR-started line) is a line being skipped, so it gets no ``NAME_SPLIT``; a name the cut splits is not
  matched for R17 either (a split ``Content-Length`` or ``Transfer-Encoding`` name says nothing of the body).
- R18: a cut right after a colon is inside the value. The segments counted are those R16 lets the parser
  read (retransmitted and out-of-order ones do not count); a continued request counts toward
  ``max_requests_per_packet`` in the frame where it ends, where it is request 0.
- R15, R18: an RST or FIN removes the kept request with its flow's state; it is never logged.
- R17: ``0`` and leading zeros are valid digits (``0000`` is a body of 0 bytes); the 16-digit limit counts
  the leading zeros.
- R22: of a ``server_name`` list, only the fields read (its length, the first entry's type and length, the
  name) must lie inside the view; the rest of the list need not, as no other entry is read. An extension
  read for its type (its header and data inside the extensions' end) is the first of that type even when
  its data then gives nothing.
- R24, R25: a response is judged on the bytes its frame has; a frame whose payload is shorter than a status
  line's 13 bytes answers nothing, whatever its IP length says.
- ``extract`` answers for one frame as if its flow expected a request exactly at its first payload byte
  (the state a SYN with the previous sequence number leaves, see ``harness.oracle.frames.opening``); a frame with
  SYN has no opening and starts from no state, so SYN with RST is ``mid_stream`` and closes nothing. A frame
  whose header section its payload's end cuts is so ``continued`` (R18), with no event.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import functools
import ipaddress
import struct
from typing import NamedTuple

from harness.core.config import (
    HASHED_MODES,
    METHOD_MAX_LEN,
    SCHEME_MAX_LEN,
    TCHARS,
    ExtractorConfig,
    HeaderMode,
    HeaderRule,
)
from harness.core.counters import OUTCOMES, Counter, zero_counts
from harness.core.event import (
    Event,
    EventFlag,
    Flow,
    HeaderEvent,
    HeaderValue,
    HttpResponse,
    SlotFlag,
    TlsFlag,
    TlsHello,
    alpn_names,
)
from harness.core.latencies import endpoint
from harness.core.rules import CONTAINS_SPAN, METHOD, TARGET, Action, Condition, Match, Rule
from harness.core.testrun import TC_ACT_OK, XDP_DROP, XDP_PASS

SP, LF, CR, HT = 0x20, 0x0A, 0x0D, 0x09
VLAN_TPIDS = (0x8100, 0x88A8)
MAX_VLAN_TAGS = 2
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
IPPROTO_TCP = 6
IPV6_EXTENSION_HEADERS = frozenset({0, 43, 44, 50, 51, 60, 135, 139, 140})
VERSIONS = {b"HTTP/1.0": 10, b"HTTP/1.1": 11}
VERSION_LEN = 8
TCHAR_BYTES = bytes(sorted(TCHARS))
TARGET_BYTES = bytes([*range(0x21, 0x7F), *range(0x80, 0x100)])
CONTROL_BYTES = frozenset([*range(0x20), 0x7F]) - {HT}  # R19 CONTROL_BYTE
DIGITS = b"0123456789"
CONTENT_LENGTH_MAX_DIGITS = 16
HEX_DIGITS = b"0123456789abcdefABCDEF"
CHUNK_SIZE_MAX_DIGITS = 16  # R20
CHUNK_STEPS = 256  # R20: framing bytes and data runs read of one chunked body in one segment
TCP_FIN, TCP_SYN, TCP_RST = 0x01, 0x02, 0x04
SEQ_MASK = (1 << 32) - 1
STATUS_LINE_BYTES = 13  # R25: "HTTP/1.1 200 " or with a CR last
SWITCHING_PROTOCOLS = 101  # R25: the one 1xx status that is a request's final response
WAITING_REQUESTS = 4  # R25: the requests of a flow whose times are kept (XHDR_WAITING in bpf/xhdr.c)
RESPONSE_COUNTERS = (Counter.RESPONSES, Counter.RESPONSES_UNMATCHED)  # R25: what a frame leaving may count
DEFAULT_CONFIG = ExtractorConfig()
DEFAULT_KEY = bytes(16)


@dataclasses.dataclass(frozen=True)
class Expected:
    """What one frame should do to the extractor: counter deltas (every counter, zeros too) and its events;
    ``leaving`` for a frame the responses program reads (R24, R25), which lets every frame go on."""

    counters: dict[Counter, int]
    events: tuple[Event, ...]
    leaving: bool = False
    dropped: bool = False  # R28, R29: a drop rule or a blocked flow drops the frame

    @property
    def verdict(self) -> int:
        """What the program returns: XDP_PASS for a frame arriving (XDP_DROP for one a rule drops), TC_ACT_OK
        for one leaving."""
        if self.leaving:
            return TC_ACT_OK
        return XDP_DROP if self.dropped else XDP_PASS

    @property
    def outcome(self) -> Counter:
        """The one outcome counter an arriving frame moves (R1-R8, R16)."""
        (outcome,) = (counter for counter in OUTCOMES if self.counters[counter])
        return outcome

    @property
    def outcome_label(self) -> str:
        """The outcome's name; for a frame leaving, the response counter it moves, or ``not_a_response``."""
        if not self.leaving:
            return self.outcome.label
        moved = (counter.label for counter in RESPONSE_COUNTERS if self.counters[counter])
        return next(moved, "not_a_response")


class FrameEnded(Exception):
    """Raised by the layer readers (``read_layers``) to end a frame early with one outcome counter (R1-R6)."""

    def __init__(self, counter: Counter, tcp_watched: bool = False) -> None:
        super().__init__(counter.label)
        self.counter = counter
        self.tcp_watched = tcp_watched


@dataclasses.dataclass(frozen=True)
class Segment:
    """A TCP segment as R1-R6 read it, whatever its port: addressing, flags, sequence number, payload.

    The offsets are the frame's: where the IP header, the TCP header and the payload start.
    """

    flow: Flow
    ip_start: int
    tcp_start: int
    payload_start: int
    tcp_flags: int
    seq: int
    payload: bytes  # the bytes present: up to the IP end, capped by the frame (R4, R5)
    length: (
        int  # n of R16: the payload's length as the IP header gives it, even when the frame is cut shorter
    )

    @property
    def syn(self) -> bool:
        return bool(self.tcp_flags & TCP_SYN)

    @property
    def start(self) -> int:
        """R16: s, the sequence number of the payload's first byte (one more on a SYN)."""
        return (self.seq + self.syn) & SEQ_MASK


def tcp_segment(frame: bytes) -> Segment | None:
    """The TCP segment ``frame`` carries, or None when R1-R6 end the frame before its port is looked at."""
    try:
        return _read_segment(frame)
    except FrameEnded:
        return None


# --- Flows: R15, R16, R18 ----------------------------------------------------------------------------------


class Mode(enum.Enum):
    """R15: what the flow expects at ``expect``."""

    REQUEST = "request"
    BODY = "body"
    CHUNKED = "chunked"  # R20: a chunked body goes on where ``FlowState.chunking`` says
    HEADERS = "headers"  # R18: the header section of ``FlowState.pending`` goes on
    LOST = "lost"
    ENCRYPTED = "encrypted"  # R21: a TLS flow whose first bytes were read; nothing more is
    HELLO = "hello"  # R23: the ClientHello of ``FlowState.hello`` goes on
    BLOCKED = "blocked"  # R29: a drop rule matched one of its requests; every later payload is dropped


class Cut(enum.Enum):
    """R18: where a payload's end fell in a header section, and so how the next segment goes on."""

    LINE_START = "line start"  # at the start of a line: nothing is lost
    LONE_CR = "lone CR"  # right after a CR that starts a line (R11): the empty line if an LF comes next
    NAME = "name"  # inside a field name, every byte a tchar so far: the rest is checked, the line not matched
    VALUE = "value"  # inside a value whose rest is skipped: a hash or auth slot's, a Content-Length line's
    VALUE_GOES_ON = "value that goes on"  # inside a value or presence slot's value: the rest is appended
    SKIPPED = "skipped"  # inside a line being skipped: not configured, bad, or repeated


# R18: the modes whose value goes on in the next segment; a hash or auth value does not, since SipHash reads
# 8-byte words and up to 7 bytes of the secret would wait in a map for the next segment (R13)
GOES_ON = (HeaderMode.VALUE, HeaderMode.PRESENCE)


@dataclasses.dataclass(frozen=True)
class FlowState:
    """R15: one flow's state."""

    expect: int
    mode: Mode
    body_left: int = 0
    pending: _Request | None = None  # R18, mode HEADERS: the request kept, ``pending.cut`` where it was cut
    chunking: Chunking | None = None  # R20, mode CHUNKED: where the chunked body is
    hello: Hello | None = None  # R23, mode HELLO: the ClientHello kept, and where its reading goes on


@dataclasses.dataclass
class Waiting:
    """R24: a flow's requests logged since its state was made, and how many of them have had a response;
    R28: which of them, by number from 0, had their events withheld (their responses are withheld too)."""

    requests: int = 0
    answered: int = 0
    withheld: set[int] = dataclasses.field(default_factory=set)


class FlowTracker:
    """The extractor across frames: R1-R30 with the flow states of R15 (no LRU eviction, see the docstring).

    ``feed`` takes the frames that arrive (the XDP program's), ``respond`` those that leave (R24, R25: the
    egress program's).
    """

    def __init__(self, config: ExtractorConfig = DEFAULT_CONFIG, key: bytes = DEFAULT_KEY) -> None:
        self.config = config
        self.key = key
        self.states: dict[Flow, FlowState] = {}
        self.waiting: dict[Flow, Waiting] = {}  # R24: kept with the flow's state, gone with it
        self.rule_hits = [0] * len(config.rules)  # R27: the requests each rule matched (one CPU's count)
        self.aggregates: collections.Counter[AggregateKey] = collections.Counter()  # R30

    def feed(self, frame: bytes) -> Expected:
        """What ``frame`` counts and logs given the flows of the frames fed before; updates the flows."""
        try:
            segment = _read_segment(frame)
        except FrameEnded as outcome:
            return _expected(outcome.counter, tcp_watched=False)
        return self._segment(segment)

    def _segment(self, segment: Segment) -> Expected:
        """R6, R15, R21: a parsed segment; a watched one (HTTP or TLS) acts on its flow, flags first and FIN
        last."""
        if segment.flow.dport not in self.config.ports and segment.flow.dport not in self.config.tls_ports:
            return _expected(Counter.PORT_NOT_WATCHED, tcp_watched=False)
        tallies = dict.fromkeys((Counter.FLOWS_OPENED, Counter.FLOWS_CLOSED, Counter.FLOWS_LOST), 0)
        flow = segment.flow
        if segment.tcp_flags & TCP_RST:
            if self._close(flow):  # Reading: only a state removed counts
                tallies[Counter.FLOWS_CLOSED] += 1
        elif segment.syn:
            self.states[flow] = FlowState(segment.start, Mode.REQUEST)
            self.waiting[flow] = Waiting()  # R24: a new connection's requests
            tallies[Counter.FLOWS_OPENED] += 1
        if segment.payload:
            outcome, events, lost = self._payload(segment)
            tallies[Counter.FLOWS_LOST] += lost
        else:
            outcome, events = Counter.NO_PAYLOAD, ()  # Reading: the bytes present, not the IP length
        requests, dropped, withheld = len(events), outcome is Counter.BLOCKED, ()
        if outcome is Counter.HTTP_REQUEST and self.config.rules:
            events, withheld, dropped = self._judge(events)
            tallies[Counter.EVENTS_WITHHELD], tallies[Counter.DROPPED] = len(withheld), int(dropped)
        state = self.states.get(flow)
        blocked = state is not None and state.mode is Mode.BLOCKED
        if segment.tcp_flags & TCP_FIN and not blocked and self._close(flow):  # R29: a blocked flow stays
            tallies[Counter.FLOWS_CLOSED] += 1
        if dropped and outcome is Counter.HTTP_REQUEST:
            self.states[flow] = FlowState(0, Mode.BLOCKED)  # R29, made anew if the FIN removed the state
            self.waiting[flow] = Waiting()
        elif self.config.responses and flow in self.states and outcome is Counter.HTTP_REQUEST:
            waiting = self.waiting.setdefault(flow, Waiting())  # R24, after FIN's removal
            waiting.withheld.update(waiting.requests + index for index in withheld)
            waiting.requests += requests
        return _expected(
            outcome, tcp_watched=True, events=events, tallies=tallies, requests=requests, dropped=dropped
        )

    def _judge(self, events: tuple[Event, ...]) -> tuple[tuple[Event, ...], tuple[int, ...], bool]:
        """R27, R28: each request's rule and what its action does; (the events sent, the segment's requests
        withheld by their index in it, whether the segment is dropped). A drop anywhere in the segment marks
        every event sent for it."""
        sent, withheld, dropped = [], [], False
        for index_in_segment, event in enumerate(events):
            assert isinstance(event, HeaderEvent)
            index = rule_of(event, self.config.rules)
            if index is None:
                sent.append(event)
                continue
            rule = self.config.rules[index]
            before = self.rule_hits[index]
            self.rule_hits[index] += 1
            for header in rule.count_by:  # R30, whatever the action
                value = event.header(header)
                shown = value.value if value.present else None
                self.aggregates[AggregateKey(rule.name, endpoint(event.target), value.name, shown)] += 1
            if rule.action is Action.COUNT or (rule.action is Action.SAMPLE and before % rule.every):
                withheld.append(index_in_segment)
                continue
            dropped = dropped or rule.action is Action.DROP
            sent.append(dataclasses.replace(event, rule=rule.name, action=rule.action))
        if dropped:
            sent = [dataclasses.replace(event, flags=event.flags | EventFlag.DROPPED) for event in sent]
        return tuple(sent), tuple(withheld), dropped

    def _close(self, flow: Flow) -> bool:
        """R15: removes the flow's state, and with it its waiting requests (R24); whether there was one."""
        self.waiting.pop(flow, None)
        return self.states.pop(flow, None) is not None

    def respond(self, frame: bytes) -> Expected:
        """R24, R25: what a frame leaving the interface counts and logs; only its response counters move.

        A segment from a watched HTTP port whose payload, as far as the frame has it, starts with a final
        status line answers the oldest request of its flow without one, if that request's time is still kept
        (the last WAITING_REQUESTS requests are); an interim one (1xx but 101) answers none and counts nothing.
        """
        counters = zero_counts()
        no_event = Expected(counters=counters, events=(), leaving=True)  # the counters as they are at return
        try:
            segment = _read_segment(frame)
        except FrameEnded:
            return no_event
        status_line = _status_line(segment.payload)
        if segment.flow.sport not in self.config.ports or status_line is None:
            return no_event
        status, version = status_line
        if status < 200 and status != SWITCHING_PROTOCOLS:
            return no_event
        seen = segment.flow
        flow = Flow(seen.family, seen.daddr, seen.saddr, seen.dport, seen.sport, seen.vlan_ids)
        waiting = self.waiting.get(flow, Waiting()) if flow in self.states else None
        if waiting is None or waiting.answered == waiting.requests:
            counters[Counter.RESPONSES_UNMATCHED] = 1
            return no_event
        answers = waiting.answered
        waiting.answered += 1
        if waiting.requests - answers > WAITING_REQUESTS:
            counters[Counter.RESPONSES_UNMATCHED] = 1
            return no_event
        if answers in waiting.withheld:
            counters[Counter.RESPONSES_WITHHELD] = 1  # R28: as its request's event
            return no_event
        counters[Counter.RESPONSES] = 1
        response = HttpResponse(**dataclasses.asdict(flow), status=status, version=version, answers=answers)
        return Expected(counters=counters, events=(response,), leaving=True)

    def _payload(self, segment: Segment) -> tuple[Counter, tuple[Event, ...], int]:
        """R16, R18, R21: (outcome, events, flows lost) of a non-empty payload; updates the flow's state.

        In ``headers`` mode R16 reads the segment as in ``request`` mode, and the kept request goes on from
        the start offset (R18). A TLS flow is read once, from the start offset of its first segment read
        (R21), and is ``encrypted`` after that.
        """
        state = self.states.get(segment.flow)
        if state is None:
            return Counter.MID_STREAM, (), 0
        if state.mode is Mode.BLOCKED:
            return Counter.BLOCKED, (), 0  # R29: dropped, whatever it holds
        if state.mode is Mode.LOST:
            return Counter.OUT_OF_SYNC, (), 0
        if state.mode is Mode.ENCRYPTED:
            return Counter.ENCRYPTED, (), 0  # R21: before R16's sequence checks, so nothing is judged
        s, n = segment.start, segment.length
        if _serial_diff(s + n, state.expect) <= 0:
            return Counter.RETRANSMITTED, (), 0
        if _serial_diff(s, state.expect) > 0:
            return Counter.OUT_OF_ORDER, (), 0
        offset = _serial_diff(state.expect, s)  # 0 <= offset < n here
        end = (s + n) & SEQ_MASK
        view = segment.payload[: self.config.max_scan_bytes]  # R7
        if state.hello is not None:  # R23: mode HELLO, first the rest of an extension's data
            skip_end = offset + state.hello.skip
            if skip_end >= n:
                kept = dataclasses.replace(state.hello, skip=skip_end - n)
                self.states[segment.flow] = FlowState(end, Mode.HELLO, hello=kept)
                return Counter.CONTINUED, (), 0
            offset = skip_end
        elif state.mode is Mode.BODY:
            body_end = offset + state.body_left
            if body_end >= n:  # Reading: a body that reaches the payload's end consumes it
                left = body_end - n
                self.states[segment.flow] = FlowState(end, Mode.BODY if left else Mode.REQUEST, left)
                return Counter.BODY, (), 0
            offset = body_end
        elif state.chunking is not None:  # R20: mode CHUNKED
            walk = walk_chunks(view, offset, n, state.chunking)
            if walk.end is None and walk.goes_on is None:
                self.states[segment.flow] = FlowState(state.expect, Mode.LOST)
                return Counter.OUT_OF_SYNC, (), 1
            if walk.end is None or walk.end == n:  # R20: the body goes on, or ends with the payload
                mode = Mode.REQUEST if walk.end == n else Mode.CHUNKED
                self.states[segment.flow] = FlowState(end, mode, chunking=walk.goes_on)
                return Counter.BODY, (), 0
            offset = walk.end
        if offset >= len(view):
            self.states[segment.flow] = FlowState(state.expect, Mode.LOST)
            return Counter.OUT_OF_SYNC, (), 1
        if segment.flow.dport in self.config.tls_ports:
            return self._tls_bytes(segment, view, offset, state.hello)
        # R18. Reading: only segments read here count toward max_request_segments (not retransmitted ones)
        resumed = state.pending.resumed() if state.mode is Mode.HEADERS and state.pending else None
        requests, after, pending, chunking = _read_requests(view, offset, n, self.config, self.key, resumed)
        if pending is not None:
            self.states[segment.flow] = FlowState(end, Mode.HEADERS, pending=pending)  # R18: it goes on
        elif after is None:
            self.states[segment.flow] = FlowState(state.expect, Mode.LOST)
        elif chunking is not None:
            self.states[segment.flow] = FlowState(end, Mode.CHUNKED, chunking=chunking)  # R20: it goes on
        elif after > n:
            self.states[segment.flow] = FlowState(end, Mode.BODY, after - n)  # R14: the body goes on
        else:
            self.states[segment.flow] = FlowState(end, Mode.REQUEST)  # R14: exactly at the payload's end
        lost = int(after is None and pending is None)
        if not requests:
            return (Counter.CONTINUED if pending else Counter.NOT_HTTP), (), lost  # R18, R8
        scan_limit = EventFlag.SCAN_LIMIT if len(segment.payload) > len(view) else EventFlag(0)
        config = self.config
        events = tuple(
            request.event(segment.flow, index, config, scan_limit) for index, request in enumerate(requests)
        )
        return Counter.HTTP_REQUEST, events, lost

    def _tls_bytes(
        self, segment: Segment, view: bytes, offset: int, kept: Hello | None
    ) -> tuple[Counter, tuple[Event, ...], int]:
        """R21-R23: a TLS flow's bytes read from ``offset`` in ``view``: its first ones, or the rest of the
        ClientHello ``kept`` from its last segment. One TLS event for a whole ClientHello (R22), or
        ``continued`` while it goes on (R23), or ``not_tls``; none loses the flow, which is ``encrypted`` once
        the hello is done or refused.
        """
        end = (segment.start + segment.length) & SEQ_MASK
        reading = read_hello(view, offset, segment.length, self.config, kept)
        if reading is None:
            self.states[segment.flow] = FlowState(end, Mode.ENCRYPTED)
            return Counter.NOT_TLS, (), 0
        if reading.goes_on:
            self.states[segment.flow] = FlowState(end, Mode.HELLO, hello=reading.hello)
            return Counter.CONTINUED, (), 0
        self.states[segment.flow] = FlowState(end, Mode.ENCRYPTED)
        scan_limit = TlsFlag.SCAN_LIMIT if len(segment.payload) > len(view) else TlsFlag(0)  # R7
        return Counter.TLS_HELLO, (reading.hello.event(segment.flow, self.config, scan_limit),), 0


def _status_line(payload: bytes) -> tuple[int, int] | None:
    """R25: (status, version) of the status line ``payload`` starts with: ``HTTP/1.0`` or ``HTTP/1.1``, SP,
    three digits, then SP or CR; None when it does not start with one."""
    if (
        len(payload) < STATUS_LINE_BYTES
        or payload[:7] != b"HTTP/1."
        or payload[7:8] not in (b"0", b"1")
        or payload[8:9] != b" "
        or not all(byte in DIGITS for byte in payload[9:12])
        or payload[12:13] not in (b" ", b"\r")
    ):
        return None
    return int(payload[9:12]), 10 if payload[7:8] == b"0" else 11


def _serial_diff(a: int, b: int) -> int:
    """R15: a - b modulo 2^32 as a signed 32-bit number (RFC 1982); a <= b when it is <= 0.

    Reading: a distance of exactly 2^31 is negative, as C's ``(s32)(a - b)`` makes it.
    """
    return ((a - b + (1 << 31)) & SEQ_MASK) - (1 << 31)


def extract(frame: bytes, config: ExtractorConfig = DEFAULT_CONFIG, key: bytes = DEFAULT_KEY) -> Expected:
    """What the extractor must count and log for ``frame`` under ``config`` with SipHash ``key``.

    Reading: the frame's flow expects a request exactly at its first payload byte, as right after the SYN
    that opened it: a ``FlowTracker`` fed ``harness.oracle.frames.opening(frame)`` and then ``frame`` says the same of
    ``frame``. A frame with an RST removes that state first, so it is ``mid_stream``. A frame with SYN has no
    opening: it opens its flow itself, starting from no state (so SYN with RST is ``mid_stream`` and closes
    nothing).
    """
    try:
        segment = _read_segment(frame)
    except FrameEnded as outcome:
        return _expected(outcome.counter, tcp_watched=False)
    tracker = FlowTracker(config, key)
    if not segment.syn:
        tracker.states[segment.flow] = FlowState(segment.start, Mode.REQUEST)
    return tracker._segment(segment)


def _expected(
    outcome: Counter,
    *,
    tcp_watched: bool,
    events: tuple[Event, ...] = (),
    tallies: dict[Counter, int] | None = None,
    requests: int | None = None,
    dropped: bool = False,
) -> Expected:
    """The counter deltas of one frame; the ring buffer is assumed never full, so events_lost stays 0.
    ``requests``: those read, when rules withheld some of their events (R28)."""
    counters = zero_counts()
    counters[Counter.PACKETS] = 1
    read = len(events) if requests is None else requests
    counters[outcome] = read if outcome is Counter.HTTP_REQUEST else 1  # R8; R21: one TLS_HELLO
    counters[Counter.TCP_WATCHED] = int(tcp_watched)
    counters[Counter.EVENTS] = len(events)
    counters.update(tallies or {})
    return Expected(counters=counters, events=events, dropped=dropped)


# --- Rules: R27-R30 ----------------------------------------------------------------------------------------


class AggregateKey(NamedTuple):
    """R30: what a count by header is kept under; ``value`` is the value as logged, None for an absent header."""

    rule: str
    endpoint: bytes
    header: str
    value: bytes | None


def rule_of(event: HeaderEvent, rules: tuple[Rule, ...]) -> int | None:
    """R27: the index of the first rule whose conditions all hold for the request, or None."""
    for index, rule in enumerate(rules):
        if all(_holds(event, condition) for condition in rule.conditions):
            return index
    return None


def _holds(event: HeaderEvent, condition: Condition) -> bool:
    """R27: a condition holds on the bytes the event holds of its field; an absent header holds none."""
    pattern = condition.pattern
    if condition.field == METHOD:
        held, whole = event.method, len(event.method)
    elif condition.field == TARGET:
        held, whole = event.target, event.target_length
    else:
        value = event.header(condition.field)
        if not value.present:
            return False
        held, whole = value.value, value.length
    if condition.match is Match.EXACT:
        return whole == len(pattern) and held == pattern
    if condition.match is Match.PREFIX:
        return held.startswith(pattern)
    return pattern in held[:CONTAINS_SPAN]


# --- Frames: R1-R6 -----------------------------------------------------------------------------------------


def read_layers(frame: bytes, config: ExtractorConfig) -> tuple[Flow, bytes]:
    """R1-R6 without flows: the flow and the payload of a segment to an HTTP port, or raises ``FrameEnded``
    (a TLS port, R21, is ``port_not_watched`` here: the baselines parse HTTP only).

    Kept for the per-frame baselines (bench/baselines/pycapture.py) and tests that only need the payload.
    """
    segment = _read_segment(frame)
    if segment.flow.dport not in config.ports:
        raise FrameEnded(Counter.PORT_NOT_WATCHED)
    if not segment.payload:
        raise FrameEnded(Counter.NO_PAYLOAD, tcp_watched=True)
    return segment.flow, segment.payload


def _read_segment(frame: bytes) -> Segment:
    """Walks Ethernet, VLAN, IP and TCP up to the port check of R6; raises ``FrameEnded`` on the way."""
    ethertype, offset, vlan_ids = _ethernet(frame)
    if ethertype == ETHERTYPE_IPV4:
        family, saddr, daddr, l4_start, ip_end, declared_end = 4, *_ipv4(frame, offset)
    elif ethertype == ETHERTYPE_IPV6:
        family, saddr, daddr, l4_start, ip_end, declared_end = 6, *_ipv6(frame, offset)
    else:
        raise FrameEnded(Counter.NOT_IP)  # R3
    sport, dport, tcp_flags, seq, payload_start = _tcp(frame, l4_start, ip_end)
    return Segment(
        flow=Flow(family, saddr, daddr, sport, dport, vlan_ids),
        ip_start=offset,
        tcp_start=l4_start,
        payload_start=payload_start,
        tcp_flags=tcp_flags,
        seq=seq,
        payload=frame[payload_start:ip_end],
        length=declared_end - payload_start,
    )


def _ethernet(frame: bytes) -> tuple[int, int, tuple[int, ...]]:
    """R1, R2: the EtherType after at most two VLAN tags, where the network header starts, the VLAN ids."""
    if len(frame) < 14:
        raise FrameEnded(Counter.MALFORMED)
    ethertype, offset = _u16(frame, 12), 14
    vlan_ids: list[int] = []
    while ethertype in VLAN_TPIDS and len(vlan_ids) < MAX_VLAN_TAGS:
        if len(frame) < offset + 4:
            raise FrameEnded(Counter.MALFORMED)
        vlan_ids.append(_u16(frame, offset) & 0x0FFF)
        ethertype, offset = _u16(frame, offset + 2), offset + 4
    if ethertype in VLAN_TPIDS:
        raise FrameEnded(Counter.VLAN_TOO_DEEP)
    return ethertype, offset, tuple(vlan_ids)


def _ipv4(frame: bytes, start: int) -> tuple[str, str, int, int, int]:
    """R4: source, destination, TCP start, IP end and declared IP end (by the header) of IPv4 with TCP."""
    if len(frame) < start + 20 or frame[start] >> 4 != 4:
        raise FrameEnded(Counter.MALFORMED)
    header_len = (frame[start] & 0x0F) * 4
    total_len = _u16(frame, start + 2)
    if header_len < 20 or len(frame) < start + header_len or total_len < header_len:
        raise FrameEnded(Counter.MALFORMED)
    if _u16(frame, start + 6) & 0x1FFF:
        raise FrameEnded(Counter.LATER_FRAGMENT)
    if frame[start + 9] != IPPROTO_TCP:
        raise FrameEnded(Counter.NOT_TCP)
    saddr, daddr = (_address(frame[at : at + 4]) for at in (start + 12, start + 16))
    declared_end = start + total_len
    return saddr, daddr, start + header_len, min(len(frame), declared_end), declared_end


def _ipv6(frame: bytes, start: int) -> tuple[str, str, int, int, int]:
    """R5: source, destination, TCP start, IP end and declared IP end of IPv6 whose next header is TCP."""
    if len(frame) < start + 40 or frame[start] >> 4 != 6:
        raise FrameEnded(Counter.MALFORMED)
    next_header = frame[start + 6]
    if next_header in IPV6_EXTENSION_HEADERS:
        raise FrameEnded(Counter.IPV6_EXT_HEADER)
    if next_header != IPPROTO_TCP:
        raise FrameEnded(Counter.NOT_TCP)
    saddr, daddr = (_address(frame[at : at + 16]) for at in (start + 8, start + 24))
    declared_end = start + 40 + _u16(frame, start + 4)
    return saddr, daddr, start + 40, min(len(frame), declared_end), declared_end


def _tcp(frame: bytes, start: int, ip_end: int) -> tuple[int, int, int, int, int]:
    """R6: ports, flags, sequence number and payload start of a TCP header that fits before the IP end."""
    if start + 20 > ip_end:
        raise FrameEnded(Counter.MALFORMED)
    header_len = (frame[start + 12] >> 4) * 4
    if header_len < 20 or start + header_len > ip_end:
        raise FrameEnded(Counter.MALFORMED)
    sport, dport = _u16(frame, start), _u16(frame, start + 2)
    seq = int.from_bytes(frame[start + 4 : start + 8], "big")
    return sport, dport, frame[start + 13], seq, start + header_len


def _u16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "big")


def _address(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


# --- Requests: R8-R14, R17, R18 ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _RequestLine:
    """A request line as far as the view shows it; ``end`` is None when the view cut it (R10)."""

    method: bytes
    target: bytes  # every target byte seen, before truncation to max_target_len
    version: int
    end: int | None


@dataclasses.dataclass
class _Request:
    """One request being read: the request line plus what the header section adds to it."""

    line: _RequestLine
    slots: list[HeaderValue]
    flags: EventFlag = dataclasses.field(default_factory=lambda: EventFlag(0))
    header_lines: int = 0
    content_length: int | None = None  # R17: from the first Content-Length line, when its value is valid
    content_length_lines: int = 0
    transfer_encoding_lines: int = 0
    chunked: bool = False  # R20: the last Transfer-Encoding value was seen whole and ends in chunked
    cut: Cut | None = None  # R18: where the view's end fell in the header section, when it did
    segments: int = 1  # R18: how many segments its header section was read from, this one included
    last_cr: bool = False  # R19: the segment that cut it ended with a CR
    split: tuple[int, bytes] | None = None  # R18, Cut.VALUE_GOES_ON: the slot and its raw value seen so far

    def resumed(self) -> _Request:
        """R18: a copy to go on with in the flow's next segment (the kept one is never changed)."""
        return dataclasses.replace(self, slots=list(self.slots), segments=self.segments + 1)

    def body(self) -> int | Chunking | None:
        """R17, R20: the body's length in bytes, a chunked body's start, or None when its end is unknown."""
        unknown = EventFlag.BAD_CONTENT_LENGTH | EventFlag.CL_AND_TE | EventFlag.TE_NOT_CHUNKED
        if self.flags & unknown or self.transfer_encoding_lines > 1:
            return None
        if self.flags & EventFlag.TRANSFER_ENCODING:
            return Chunking() if self.chunked else None
        return self.content_length or 0

    def event(self, flow: Flow, index: int, config: ExtractorConfig, extra: EventFlag) -> HeaderEvent:
        """The event the kernel writes for this request (R9 target truncation, R14 request_index)."""
        flags = self.flags | extra
        if len(self.line.target) > config.max_target_len:
            flags |= EventFlag.TARGET_TRUNCATED
        if self.line.end is None:
            flags |= EventFlag.LINE_CUT
        return HeaderEvent(
            **dataclasses.asdict(flow),
            request_index=index,
            method=self.line.method,
            target=self.line.target[: config.max_target_len],
            target_length=len(self.line.target),
            version=self.line.version,
            flags=flags,
            header_lines=self.header_lines,
            headers=tuple(self.slots),
        )


class _Reading(NamedTuple):
    """What the requests of one segment came to (R14, R18)."""

    requests: list[_Request]  # the requests to log, in order
    after: int | None  # where the next request starts, at or past the payload's end; None: no request does
    pending: _Request | None = None  # R18: the last request read, kept because its header section goes on
    chunking: Chunking | None = None  # R20: the last request's chunked body goes on past the payload's end


def _read_requests(
    view: bytes,
    start: int,
    length: int,
    config: ExtractorConfig,
    key: bytes,
    resumed: _Request | None = None,
) -> _Reading:
    """R8, R10, R14, R17, R18: the requests read from ``start`` (inside the view), in order, and where the
    request after them starts: a payload offset at or past ``length`` (the payload's end), or None when the
    flow is lost or the last request goes on in the next segment (``pending``).

    ``resumed`` is a request whose header section the flow's previous segment cut (R18): it is read on from
    ``start``, as the segment's request 0. Reading: it counts toward ``max_requests_per_packet`` like any
    request of the segment.
    """
    requests: list[_Request] = []
    position, request, walked = start, resumed, False
    while True:
        if request is None:
            line = _request_line(view, position)
            if line is None:
                return _Reading(requests, None)  # R8 (the first request: not_http) or R14: the flow is lost
            request = _Request(line, [HeaderValue(rule.name, rule.mode) for rule in config.headers])
            if line.end is not None and view[line.end - 2] != CR:
                request.flags |= EventFlag.BARE_LF  # R19: the request line ends in LF alone
            if line.end is None:
                requests.append(request)
                return _Reading(requests, None)  # R10: no fields, no HEADERS_CUT; R14, R18: the flow is lost
            position = line.end
        end = _header_section(view, position, request, config, key)
        if end is None and request.cut is not None:  # the view ended inside the header section
            if len(view) == length and request.segments < config.max_request_segments:
                request.last_cr = view.endswith(b"\r")
                return _Reading(requests, None, request)  # R18: the payload's end cut it; it goes on
            request.flags |= EventFlag.HEADERS_CUT  # R11; R18: by the view, or in its last segment
        requests.append(request)
        body = request.body()
        if end is None or body is None:
            return _Reading(requests, None)  # R14: HEADERS_CUT, TOO_MANY_HEADERS or an unknown body (R17)
        if isinstance(body, Chunking):
            if walked:  # R20: one chunked body per segment is walked after its request
                return _Reading(requests, None)
            walked = True
            walk = walk_chunks(view, end, length, body)
            if walk.end is None:  # R20: lost, or the body goes on past the payload's end
                return _Reading(requests, None if walk.goes_on is None else length, chunking=walk.goes_on)
            position = walk.end
        else:
            position = end + body
        if position >= length:
            return _Reading(requests, position)  # R14: the body goes past the payload, or both end there
        if position >= len(view) or len(requests) == config.max_requests_per_packet:
            return _Reading(requests, None)  # R14: in the payload but past the view, or MAX_REQUESTS reached
        request = None


def _request_line(view: bytes, start: int) -> _RequestLine | None:
    """R9, R10: the request line starting at ``start``, or None when the bytes seen break the grammar."""
    space = start + _run_length(view, start, TCHAR_BYTES, METHOD_MAX_LEN)
    if space == start or space == len(view) or view[space] != SP:
        return None  # empty method, a non-token byte, a 17th character, or no SP in the view
    method = view[start:space]
    target_end = space + 1 + _run_length(view, space + 1, TARGET_BYTES, len(view))
    target = view[space + 1 : target_end]
    if target_end == len(view):
        return _RequestLine(method, target, 0, None)  # Reading: may be an empty target (view ends at the SP)
    if view[target_end] != SP or not target:
        return None
    return _version_and_end(view, target_end + 1, method, target)


def _version_and_end(view: bytes, start: int, method: bytes, target: bytes) -> _RequestLine | None:
    """R9, R10: the version and the CR LF or LF that end the request line."""
    seen = view[start : start + VERSION_LEN]
    if not any(version.startswith(seen) for version in VERSIONS):
        return None
    if len(seen) < VERSION_LEN:
        return _RequestLine(method, target, 0, None)
    version = VERSIONS[seen]
    after = start + VERSION_LEN
    ending = view[after : after + 2]
    if ending in (b"", b"\r"):
        return _RequestLine(method, target, version, None)
    if ending[0] == LF:
        return _RequestLine(method, target, version, after + 1)
    if ending == b"\r\n":
        return _RequestLine(method, target, version, after + 2)
    return None


def _run_length(data: bytes, start: int, allowed: bytes, limit: int) -> int:
    """How many bytes from ``start`` (at most ``limit``) are all in ``allowed``."""
    window = data[start : start + limit]
    rest = window.lstrip(allowed)
    return len(window) - len(rest)


def _is_token(data: bytes) -> bool:
    """Whether every byte is a tchar (true for b"")."""
    return not data.translate(None, TCHAR_BYTES)


def _header_section(
    view: bytes, position: int, request: _Request, config: ExtractorConfig, key: bytes
) -> int | None:
    """R11, R18: reads header lines from ``position`` up to the empty line; returns where the header section
    ends, or None when it does not end in the view: TOO_MANY_HEADERS stopped it, or the view ended inside it
    (then ``request.cut`` says where; the caller decides between HEADERS_CUT and R18).

    A request whose header section the flow's previous segment cut (``request.cut`` set) goes on inside the
    line that cut split (R18).
    """
    resume, request.cut = request.cut, None
    if resume is Cut.LONE_CR:
        if view[position] == LF:
            return position + 1  # R18: the lone CR and this LF are the empty line
        if request.header_lines == config.max_header_lines:
            request.flags |= EventFlag.TOO_MANY_HEADERS  # R11: a non-empty line begins
            return None
        request.header_lines += 1
        # R11, R12: a line whose first byte, the CR, is not a tchar; _rest_of_line finds it was no line's end
        request.flags |= EventFlag.BAD_LINE
        position = _rest_of_line(view, position, request, Cut.SKIPPED, config, key)
    elif resume is not None and resume is not Cut.LINE_START:
        position = _rest_of_line(view, position, request, resume, config, key)
    while request.cut is None:
        rest = view[position : position + 2]
        if rest == b"":
            request.cut = Cut.LINE_START
        elif rest == b"\r":
            request.cut = Cut.LONE_CR  # R11: an unknown line, not counted
        elif rest == b"\r\n":
            return position + 2  # the empty line: the request is complete
        elif rest[0] == LF:
            request.flags |= EventFlag.BARE_LF  # R19: the empty line is an LF alone
            return position + 1
        elif request.header_lines == config.max_header_lines:
            request.flags |= EventFlag.TOO_MANY_HEADERS
            return None
        else:
            request.header_lines += 1  # Reading: a line counts as soon as it begins, even if the view cuts it
            position = _field_line(view, position, request, config, key)
    return None


def _field_line(view: bytes, start: int, request: _Request, config: ExtractorConfig, key: bytes) -> int:
    """R12, R13, R17: reads one non-empty header line, updates the request, returns the next line's start (the
    view's end when the view cuts the line, with ``request.cut`` set: R18).
    """
    line_end = view.find(b"\n", start)
    cut = line_end == -1
    line = view[start:] if cut else view[start:line_end]
    next_line = len(view) if cut else line_end + 1
    name, bad = _field_name(line, cut)
    if bad:
        request.flags |= EventFlag.BAD_LINE
    request.flags |= _ambiguities(line, 0) | _control_byte(line)
    if not cut and view[line_end - 1] != CR:
        request.flags |= EventFlag.BARE_LF
    if name is None:
        if cut:  # R18. Reading: a line bad before the cut is being skipped (no NAME_SPLIT); else in the name
            request.cut = Cut.SKIPPED if bad else Cut.NAME
        return next_line
    value = _trimmed_value(line[len(name) + 1 :])
    index = _slot_numbers(config.headers).get(name.lower())
    fills = index is not None and not request.slots[index].present
    if index is not None:
        request.slots[index] = filled_slot(request.slots[index], value, cut, config, key)
    content_length = _body_field(request, name, value, cut)
    if cut:  # R18: right after the colon or inside the value
        request.cut = Cut.VALUE if fills or content_length else Cut.SKIPPED
        if fills and config.headers[index].mode in GOES_ON:
            request.cut, request.split = Cut.VALUE_GOES_ON, (index, line[len(name) + 1 :])
    return next_line


def _rest_of_line(
    view: bytes, start: int, request: _Request, cut: Cut, config: ExtractorConfig, key: bytes
) -> int:
    """R18: the rest, from ``start``, of a line that the previous segment's end split where ``cut`` says;
    returns the next line's start (the view's end when the view cuts the line again, with ``request.cut``
    set).

    The rest of a name is checked for tchar up to the colon (a non-tchar byte or an LF first sets
    ``BAD_LINE``) and the line is never matched (``NAME_SPLIT``); the rest of a value or presence slot's
    value is appended to what came before and the slot filled again from the whole; the rest of any other
    line is skipped.
    Reading: a name so split is not matched for R17 either, so a split ``Content-Length`` or
    ``Transfer-Encoding`` name says nothing about the body.
    """
    line_end = view.find(b"\n", start)
    line = view[start:] if line_end == -1 else view[start:line_end]
    if line_end != -1 and not (view[line_end - 1] == CR if line_end > start else request.last_cr):
        request.flags |= EventFlag.BARE_LF  # R19: the CR of an LF first in the segment ends the one before
    if request.last_cr and view[start] != LF:
        request.flags |= EventFlag.CONTROL_BYTE  # R19: the CR that ended the last segment ended no line
    request.flags |= _control_byte(line)
    if cut is Cut.NAME:
        request.flags |= EventFlag.NAME_SPLIT
        request.flags |= _ambiguities(line, 1)
        colon = line.find(b":")
        if not _is_token(line if colon == -1 else line[:colon]) or (colon == -1 and line_end != -1):
            request.flags |= EventFlag.BAD_LINE  # a non-tchar byte (CR too) before the colon, or the LF
            cut = Cut.SKIPPED
        elif colon != -1:
            cut = Cut.SKIPPED  # the name ends here; the line is skipped unmatched
    if cut is Cut.VALUE_GOES_ON and request.split is not None:
        index, raw = request.split
        raw += line
        request.split = (index, raw) if line_end == -1 else None
        unfilled = HeaderValue(config.headers[index].name, config.headers[index].mode)
        request.slots[index] = filled_slot(unfilled, _trimmed_value(raw), line_end == -1, config, key)
    if line_end == -1:
        request.cut = cut
        return len(view)
    return line_end + 1


def _body_field(request: _Request, name: bytes, value: bytes, cut: bool) -> bool:
    """R17: what a field line tells about the body's length (``value`` trimmed as in R13, ``cut`` when the
    line's LF was not seen); True for a ``Content-Length`` line.
    """
    lowered = name.lower()
    if lowered == b"transfer-encoding":
        request.flags |= EventFlag.TRANSFER_ENCODING  # as soon as its colon is seen
        request.transfer_encoding_lines += 1
        request.chunked = not cut and ends_in_chunked(value)  # R20
        if request.content_length_lines:
            request.flags |= EventFlag.CL_AND_TE  # R19
        if not cut and not ends_in_chunked(value):
            request.flags |= EventFlag.TE_NOT_CHUNKED  # R19
        return False
    if lowered != b"content-length":
        return False
    if request.flags & EventFlag.TRANSFER_ENCODING:
        request.flags |= EventFlag.CL_AND_TE  # R19
    request.content_length_lines += 1
    digits = 1 <= len(value) <= CONTENT_LENGTH_MAX_DIGITS and not value.translate(None, DIGITS)
    if cut or request.content_length_lines > 1 or not digits:
        request.flags |= EventFlag.BAD_CONTENT_LENGTH  # Reading: leading zeros count as digits
    else:
        request.content_length = int(value)
    return True


def ends_in_chunked(value: bytes) -> bool:
    """R19: a trimmed Transfer-Encoding value whose last coding is ``chunked`` (any case): its last 7 bytes,
    after a comma, SP or HT or at the value's start."""
    return value[-7:].lower() == b"chunked" and (len(value) == 7 or value[-8:-7] in (b",", b" ", b"\t"))


def _ambiguities(line: bytes, before: int) -> EventFlag:
    """R19: OBS_FOLD for a line that starts with SP or HT; WS_BEFORE_COLON for SP or HT right after the run of
    tchar a line starts with, when the line (or, ``before`` > 0, the previous segment) holds at least one.
    """
    run = _run_length(line, 0, TCHAR_BYTES, len(line))
    if run == len(line) or line[run] not in (SP, HT):
        return EventFlag(0)
    return EventFlag.WS_BEFORE_COLON if run + before else EventFlag.OBS_FOLD


def _control_byte(line: bytes) -> EventFlag:
    """R19: CONTROL_BYTE for a control byte other than HT in ``line`` (without its LF) that is not its end: a
    CR last in it is that end, or, when the view cut the line there, judged with the next segment (R18)."""
    body = line[:-1] if line.endswith(b"\r") else line
    return EventFlag.CONTROL_BYTE if CONTROL_BYTES.intersection(body) else EventFlag(0)


def _field_name(line: bytes, cut: bool) -> tuple[bytes | None, bool]:
    """R12: (name, bad) for one header line; name is None when the line is bad or its colon not seen yet.

    ``line`` excludes the LF but may end in CR: a CR can only sit before the colon in a bad line, and a
    complete colon-less line is bad anyway, so the final CR needs no special case here.
    """
    colon = line.find(b":")
    name = line if colon == -1 else line[:colon]
    if not _is_token(name):
        return None, True  # obs-fold (SP/HT first), whitespace or CR before the colon. Reading: also when cut
    if colon == -1:
        return None, not cut  # a colon-less line is bad once its LF is seen; a cut one is not known yet
    if colon == 0:
        return None, True  # empty name
    return name, False


@functools.cache
def _slot_numbers(rules: tuple[HeaderRule, ...]) -> dict[bytes, int]:
    """R12: lower-cased configured name -> slot, so a field name matches ignoring ASCII case."""
    return {rule.name.encode("ascii").lower(): index for index, rule in enumerate(rules)}


def _trimmed_value(raw: bytes) -> bytes:
    """R13: one final CR dropped (Reading: also when the view cut the line), then SP/HT trimmed both sides."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw.strip(b" \t")


def filled_slot(
    slot: HeaderValue, value: bytes, cut: bool, config: ExtractorConfig, key: bytes
) -> HeaderValue:
    """R13: the slot after one more occurrence of its header (``cut``: the view ended inside its value)."""
    if slot.flags & SlotFlag.REPEATED:
        return slot
    if slot.present:
        return dataclasses.replace(slot, flags=slot.flags | SlotFlag.REPEATED)  # Reading: never adds CUT
    flags = SlotFlag.PRESENT | (SlotFlag.CUT if cut else SlotFlag(0))
    kept, digest = b"", 0
    if slot.mode is HeaderMode.VALUE:
        kept = value[: config.max_value_len]
        if len(value) > config.max_value_len:
            flags |= SlotFlag.TRUNCATED
    elif slot.mode in HASHED_MODES:
        digest = siphash24(key, value)
        kept = auth_scheme(value) if slot.mode is HeaderMode.AUTH else b""
    return dataclasses.replace(slot, flags=flags, length=len(value), value=kept, hash=digest)


def auth_scheme(value: bytes) -> bytes:
    """R13 auth mode: the 1..16 tchar at the start of the trimmed value when an SP follows them, else b""."""
    end = _run_length(value, 0, TCHAR_BYTES, SCHEME_MAX_LEN)
    return value[:end] if end and value[end : end + 1] == b" " else b""


# --- Chunked bodies: R20 ----------------------------------------------------------------------------------


class ChunkPhase(enum.Enum):
    """R20: what the next byte of a chunked body must be."""

    SIZE_START = "size start"  # the first hex digit of a chunk size
    SIZE = "size"  # another hex digit, ";" or CR
    EXTENSION = "extension"  # any byte but LF, up to a CR
    SIZE_LF = "size LF"
    DATA = "data"  # ``number`` bytes of chunk data, whatever they are
    DATA_CR = "data CR"
    DATA_LF = "data LF"
    TRAILER_START = "trailer start"  # CR (the empty line), or the first byte of a trailer line
    TRAILER = "trailer"  # any byte but LF, up to a CR
    TRAILER_LF = "trailer LF"
    END_LF = "end LF"  # the LF of the empty line that ends the body
    ENDED = "ended"  # past that LF


@dataclasses.dataclass(frozen=True)
class Chunking:
    """R20: where a chunked body is: the phase, and the size read so far (``number`` in SIZE, EXTENSION and
    SIZE_LF, with ``digits`` hex digits) or the data bytes still to come (``number`` in DATA)."""

    phase: ChunkPhase = ChunkPhase.SIZE_START
    number: int = 0
    digits: int = 0


class ChunkWalk(NamedTuple):
    """What R20 made of one segment's part of a chunked body; both None: the flow is lost."""

    end: int | None  # the payload offset right after the body's last LF
    goes_on: Chunking | None  # the body goes on past the payload's end, from there


def walk_chunks(view: bytes, start: int, length: int, chunking: Chunking) -> ChunkWalk:
    """R20: reads a chunked body from ``start`` in a payload of ``length`` bytes (``view`` of it seen).

    Each framing byte and each run of chunk data is one step; data may run past the view to the payload's end,
    framing bytes must be in the view. The body is lost at a byte the grammar does not allow there, a
    framing byte past the view, or when CHUNK_STEPS steps do not reach the body's or the payload's end.
    """
    position = start
    for step in range(CHUNK_STEPS + 1):
        if position == length:
            return ChunkWalk(None, chunking)
        if step == CHUNK_STEPS or position >= len(view) and chunking.phase is not ChunkPhase.DATA:
            return ChunkWalk(None, None)
        if chunking.phase is ChunkPhase.DATA:
            run = min(chunking.number, length - position)
            position += run
            left = chunking.number - run
            chunking = Chunking(ChunkPhase.DATA, left) if left else Chunking(ChunkPhase.DATA_CR)
            continue
        after = _chunk_byte(chunking, view[position])
        position += 1
        if after is None:
            return ChunkWalk(None, None)
        if after.phase is ChunkPhase.ENDED:
            return ChunkWalk(position, None)
        chunking = after
    raise AssertionError("unreachable: the last step returns")


# R20: phases whose next byte is fixed: (that byte, the phase after it).
_CHUNK_FIXED = {
    ChunkPhase.DATA_CR: (CR, ChunkPhase.DATA_LF),
    ChunkPhase.DATA_LF: (LF, ChunkPhase.SIZE_START),
    ChunkPhase.TRAILER_LF: (LF, ChunkPhase.TRAILER_START),
    ChunkPhase.END_LF: (LF, ChunkPhase.ENDED),
}


def _chunk_byte(chunking: Chunking, byte: int) -> Chunking | None:
    """R20: the state after one framing byte (phase ENDED after the last), None where the grammar breaks."""
    phase, number = chunking.phase, chunking.number
    if phase in _CHUNK_FIXED:
        needed, after = _CHUNK_FIXED[phase]
        return Chunking(after) if byte == needed else None
    if phase in (ChunkPhase.SIZE_START, ChunkPhase.SIZE) and byte in HEX_DIGITS:
        if chunking.digits == CHUNK_SIZE_MAX_DIGITS:
            return None
        return Chunking(ChunkPhase.SIZE, number * 16 + int(chr(byte), 16), chunking.digits + 1)
    if phase is ChunkPhase.SIZE and byte == ord(";"):
        return Chunking(ChunkPhase.EXTENSION, number)
    if phase is ChunkPhase.SIZE_LF and byte == LF:
        return Chunking(ChunkPhase.DATA, number) if number else Chunking(ChunkPhase.TRAILER_START)
    if phase is ChunkPhase.TRAILER_START and byte == CR:
        return Chunking(ChunkPhase.END_LF)
    # The lines whose bytes are anything but LF up to a CR: an extension, a trailer.
    if phase in (ChunkPhase.SIZE, ChunkPhase.EXTENSION) and byte == CR:
        return Chunking(ChunkPhase.SIZE_LF, number)
    if phase is ChunkPhase.TRAILER and byte == CR:
        return Chunking(ChunkPhase.TRAILER_LF)
    if phase is ChunkPhase.EXTENSION and byte != LF:
        return chunking
    if phase in (ChunkPhase.TRAILER_START, ChunkPhase.TRAILER) and byte != LF:
        return Chunking(ChunkPhase.TRAILER)
    return None


# --- TLS: R21-R23 ---------------------------------------------------------------------------------------

TLS_HANDSHAKE = 22  # R22: the record's content type
TLS_CLIENT_HELLO = 1  # R22: the handshake's type
TLS_HEADERS_LEN = 9  # R22: record header (type, version, length) and handshake header (type, 3-byte length)
TLS_RANDOM_LEN = 32
TLS_SESSION_ID_MAX = 32
TLS_MAX_EXTENSIONS = 32
TLS_MAX_VERSIONS = 8
EXT_SERVER_NAME, EXT_ALPN, EXT_SUPPORTED_VERSIONS = 0, 16, 43
TLS_HOST_NAME = 0


class _Extension(NamedTuple):
    """R22: where the data of the first extension read of a type lies: view offsets ``[start, end)``;
    ``end`` may lie past the view, whose end the reader of its fields checks."""

    start: int
    end: int


NO_TLS_FLAGS = TlsFlag(0)


class _Ended(enum.Enum):
    """R22, R23: why the reading of a hello's extensions stopped in a segment."""

    ALL = "all"  # at the extensions' end
    VIEW = "view"  # at the view's end, before or inside an extension's header or in its data: it may go on
    OTHER = "other"  # BAD_EXTENSIONS, TOO_MANY_EXTENSIONS, the extensions' length not read, or a header not finished


@dataclasses.dataclass(frozen=True)
class Hello:
    """R22, R23: a ClientHello as read so far, over one segment or more.

    The event's fields, and for a hello that goes on in the next segment (R23) where its reading stands:
    ``skip`` bytes from the next segment's start to the next extension's header, ``ext_left`` bytes of
    extensions from there, the types already met (only the first of each counts) and the extensions read;
    or, when the segment ended inside an extension's header, ``head``, its first bytes (the rest start the
    next segment, ``skip`` is 0 and ``ext_left`` counts from there).
    """

    tls_version: int  # the legacy_version until supported_versions offers more
    sni: bytes = b""  # the whole server name; the event keeps its first max_target_len bytes
    alpn_list: bytes = b""  # the whole ALPN list; the event keeps its first max_value_len bytes
    flags: TlsFlag = NO_TLS_FLAGS
    found: frozenset[int] = frozenset()
    read: int = 0
    segments: int = 0  # segments it was read in before the one being read
    skip: int = 0
    ext_left: int = 0
    head: bytes = b""

    def event(self, flow: Flow, config: ExtractorConfig, extra: TlsFlag) -> TlsHello:
        flags = self.flags | extra
        if len(self.sni) > config.max_target_len:
            flags |= TlsFlag.SNI_TRUNCATED
        if len(self.alpn_list) > config.max_value_len:
            flags |= TlsFlag.ALPN_TRUNCATED
        return TlsHello(
            **dataclasses.asdict(flow),
            sni=self.sni[: config.max_target_len],
            sni_length=len(self.sni),
            alpn=alpn_names(self.alpn_list[: config.max_value_len]),
            alpn_length=len(self.alpn_list),
            tls_version=self.tls_version,
            flags=flags,
        )


class HelloReading(NamedTuple):
    """What one segment made of a ClientHello (``read_hello``): the hello so far, whether it goes on in the
    flow's next segment (R23), and what the flow keeps then."""

    hello: Hello
    goes_on: bool


def read_hello(
    view: bytes, start: int, length: int, config: ExtractorConfig, kept: Hello | None
) -> HelloReading | None:
    """R22, R23: the ClientHello at ``start`` in ``view`` (a payload of ``length`` bytes by its IP header), or
    the one ``kept`` from the flow's last segment read on from its next extension's header at ``start``.
    None when a new hello's bytes are not one.

    The fixed fields must lie inside the hello and the view (``_hello_start``); past them, what the view
    cuts is HELLO_CUT, or goes on in the next segment (R23), and what breaks the grammar gives nothing or
    BAD_EXTENSIONS, never "not a hello".
    """
    if kept is None:
        fixed = _hello_start(view, start)
        if fixed is None:
            return None
        stop, legacy_version, after = fixed
        hello = Hello(tls_version=legacy_version)
        ended, flags, position, stop = _extensions_start(view, after, stop)
        hello = dataclasses.replace(hello, flags=flags)
    else:
        hello, ended, position, stop = kept, None, start, start + kept.ext_left
    found: dict[int, _Extension] = {}
    if kept is not None and kept.head:
        ended, flags, position = _finish_header(view, start, stop, kept, found)
        hello = dataclasses.replace(hello, flags=hello.flags | flags, read=hello.read + (ended is None))
    if ended is None:
        ended, flags, position, read = _extensions(view, position, stop, hello.read, hello.found, found)
        hello = dataclasses.replace(
            hello, flags=hello.flags | flags, read=read, found=hello.found | set(found)
        )
    hello = _hello_fields(view, found, hello)
    if ended is _Ended.VIEW and len(view) == length and hello.segments + 1 < config.max_request_segments:
        split = any(extension.end > len(view) for extension in found.values())
        resume = max(position, length)  # inside a header, its first bytes are kept and the rest comes next
        going_on = dataclasses.replace(
            hello,
            flags=hello.flags | (TlsFlag.SPLIT_EXTENSION if split else TlsFlag(0)),
            segments=hello.segments + 1,
            skip=resume - length,
            ext_left=stop - resume,
            head=view[position:length],
        )
        return HelloReading(going_on, goes_on=True)
    if stop > len(view):
        hello = dataclasses.replace(
            hello, flags=hello.flags | TlsFlag.HELLO_CUT
        )  # fields from the bytes seen
    return HelloReading(hello, goes_on=False)


def _hello_start(view: bytes, start: int) -> tuple[int, int, int] | None:
    """R22: (where the hello ends, its legacy_version, where its extensions start) after checking the record
    and handshake headers and the fixed fields; None when the bytes are not a ClientHello.

    Each field's bytes must lie before ``limit``, the nearer of the hello's end and the view's end; a length
    field is read only once its own bytes are known to be there.
    """
    if start + TLS_HEADERS_LEN > len(view):
        return None
    record_type, major, minor = view[start], view[start + 1], view[start + 2]
    if record_type != TLS_HANDSHAKE or major != 3 or minor > 4 or view[start + 5] != TLS_CLIENT_HELLO:
        return None
    hello_length = int.from_bytes(view[start + 6 : start + 9], "big")
    if hello_length + 4 > _u16(view, start + 3):
        return None  # the hello spreads over several records, which R22 does not read
    hello = start + TLS_HEADERS_LEN
    hello_end = hello + hello_length
    limit = min(hello_end, len(view))
    at = hello + 2 + TLS_RANDOM_LEN  # legacy_version, random
    if at + 1 > limit or view[at] > TLS_SESSION_ID_MAX:
        return None
    at += 1 + view[at]
    if at + 2 > limit:
        return None
    suites = _u16(view, at)
    if suites < 2 or suites % 2:
        return None
    at += 2 + suites
    if at + 1 > limit or view[at] < 1:
        return None  # no compression method at all
    at += 1 + view[at]
    if at > limit:
        return None
    return hello_end, _u16(view, hello), at


def _extensions_start(view: bytes, at: int, hello_end: int) -> tuple[_Ended | None, TlsFlag, int, int]:
    """R22: the extensions' length at ``at``, right after the fixed fields: (why there is nothing to read, or
    None; flags; the first extension's header; where the extensions end, or the hello when their length was
    not read).
    """
    if at >= hello_end:
        return _Ended.ALL, TlsFlag(0), at, hello_end  # no extensions block
    if at + 2 > hello_end:
        return _Ended.OTHER, TlsFlag.BAD_EXTENSIONS, at, hello_end  # one byte where the length goes
    if at + 2 > len(view):
        return _Ended.OTHER, TlsFlag(0), at, hello_end  # the view ends before the length: HELLO_CUT
    return None, TlsFlag(0), at + 2, min(at + 2 + _u16(view, at), hello_end)


def _extensions(
    view: bytes, position: int, stop: int, read: int, met: frozenset[int], found: dict[int, _Extension]
) -> tuple[_Ended, TlsFlag, int, int]:
    """R22, R23: reads extensions from ``position`` up to ``stop``, ``read`` of them read before and the types
    ``met`` counted already; the first extension of each other type goes into ``found``. Returns why the
    reading stopped, its flags, where it stopped and the extensions read in all.

    The checks on each extension go in the rule's order, so that a block cut by the view and broken past
    the cut says HELLO_CUT (the caller's) and not BAD_EXTENSIONS: what the view does not show is not judged.
    """
    while True:
        if position >= stop:
            return _Ended.ALL, TlsFlag(0), position, read
        if read == TLS_MAX_EXTENSIONS:
            flags = TlsFlag.TOO_MANY_EXTENSIONS if position < len(view) else TlsFlag(0)
            return _Ended.OTHER, flags, position, read
        if position + 4 > stop:
            return _Ended.OTHER, TlsFlag.BAD_EXTENSIONS, position, read  # a header past the extensions' end
        if position + 4 > len(view):
            return _Ended.VIEW, TlsFlag(0), position, read
        data = position + 4
        after = data + _u16(view, position + 2)
        if after > stop:
            return _Ended.OTHER, TlsFlag.BAD_EXTENSIONS, position, read  # its data runs past: not read
        read += 1
        _note_extension(found, met, _u16(view, position), _Extension(data, after))
        position = after


def _finish_header(
    view: bytes, start: int, stop: int, kept: Hello, found: dict[int, _Extension]
) -> tuple[_Ended | None, TlsFlag, int]:
    """R23: the extension header the last segment ended inside, its first bytes ``kept.head``, finished with the
    bytes at ``start``: (None when the reading goes on, else why it stopped; flags; where it goes on). A
    segment too short to finish it stops the reading as a view that ends does (not going on again)."""
    data = start + 4 - len(kept.head)
    if data > len(view):
        return _Ended.OTHER, TlsFlag(0), start
    header = kept.head + view[start:data]
    after = data + _u16(header, 2)
    if after > stop:
        return _Ended.OTHER, TlsFlag.BAD_EXTENSIONS, start
    _note_extension(found, kept.found, _u16(header, 0), _Extension(data, after))
    return None, TlsFlag(0), after


def _note_extension(
    found: dict[int, _Extension], met: frozenset[int], kind: int, extension: _Extension
) -> None:
    """R22: an extension read; the first of each type a field comes from, not ``met`` in an earlier segment,
    goes into ``found``."""
    if kind in (EXT_SERVER_NAME, EXT_ALPN, EXT_SUPPORTED_VERSIONS) and kind not in met:
        found.setdefault(kind, extension)


def _hello_fields(view: bytes, found: dict[int, _Extension], hello: Hello) -> Hello:
    """R22: what the extensions found in this segment give the hello."""
    name = _server_name(view, found.get(EXT_SERVER_NAME))
    if name is not None:
        hello = dataclasses.replace(hello, sni=name)
    protocols = _alpn_list(view, found.get(EXT_ALPN))
    if protocols is not None:
        hello = dataclasses.replace(hello, alpn_list=protocols)
    offered = _highest_version(_offered_versions(view, found.get(EXT_SUPPORTED_VERSIONS)))
    if offered:  # else the legacy_version stays, also when the highest offered is 0
        hello = dataclasses.replace(hello, tls_version=offered)
    return hello


def _server_name(view: bytes, extension: _Extension | None) -> bytes | None:
    """R22: the name of a server_name extension's first entry when it is a host_name and every field read
    (the list's length, the entry's type and length, the name) lies inside the list, the list inside the
    extension, and the fields inside the view; None otherwise.

    Reading: the list itself need not lie inside the view, only the fields read of it (the kernel reads no
    other entry).
    """
    if extension is None or extension.start + 5 > len(view):
        return None
    list_end = extension.start + 2 + _u16(view, extension.start)
    entry = extension.start + 2
    if list_end > extension.end or entry + 3 > list_end or view[entry] != TLS_HOST_NAME:
        return None
    name_end = entry + 3 + _u16(view, entry + 1)
    if name_end > list_end or name_end > len(view):
        return None
    return view[entry + 3 : name_end]


def _alpn_list(view: bytes, extension: _Extension | None) -> bytes | None:
    """R22: an ALPN extension's protocol list, when it lies inside the extension and the view; else None."""
    if extension is None or extension.start + 2 > len(view):
        return None
    list_end = extension.start + 2 + _u16(view, extension.start)
    if list_end > extension.end or list_end > len(view):
        return None
    return view[extension.start + 2 : list_end]


def _offered_versions(view: bytes, extension: _Extension | None) -> tuple[int, ...]:
    """R22: the first TLS_MAX_VERSIONS versions of a supported_versions extension whose list (an even
    length byte, then the versions) lies inside the extension and the view; () otherwise."""
    if extension is None or extension.start + 1 > len(view):
        return ()
    size = view[extension.start]
    end = extension.start + 1 + size
    if size % 2 or end > extension.end or end > len(view):
        return ()
    count = min(size // 2, TLS_MAX_VERSIONS)
    return tuple(_u16(view, extension.start + 1 + 2 * index) for index in range(count))


def is_grease(version: int) -> bool:
    """R22: a GREASE value, one of RFC 8701's sixteen: two equal bytes of the form 0x?A."""
    return version & 0x0F0F == 0x0A0A and version >> 8 == version & 0xFF


def _highest_version(versions: tuple[int, ...]) -> int:
    """R22: the highest version offered that is not GREASE; 0 when there is none (the caller then takes the
    hello's legacy_version, as it does when the highest is 0)."""
    return max((version for version in versions if not is_grease(version)), default=0)


# --- SipHash-2-4 -------------------------------------------------------------------------------------------

_MASK64 = (1 << 64) - 1


@functools.lru_cache(maxsize=4096)
def siphash24(key: bytes, data: bytes) -> int:
    """SipHash-2-4 with 64-bit output (Aumasson & Bernstein), k0/k1 little-endian from the 16-byte key (R13).

    Cached because a run sends the same few secrets in many frames, and pure-Python SipHash is the slowest
    step of the reference (about 0.3 ms for a 1,500-byte value).
    """
    if len(key) != 16:
        raise ValueError(f"SipHash key must be 16 bytes, got {len(key)}")
    k0, k1 = struct.unpack("<QQ", key)
    v = (k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573)
    whole = len(data) - len(data) % 8
    blocks = [*struct.unpack(f"<{whole // 8}Q", data[:whole])]
    blocks.append(int.from_bytes(data[whole:], "little") | (len(data) & 0xFF) << 56)
    for block in blocks:
        v0, v1, v2, v3 = _sip_rounds(v[0], v[1], v[2], v[3] ^ block, 2)
        v = (v0 ^ block, v1, v2, v3)
    v0, v1, v2, v3 = _sip_rounds(v[0], v[1], v[2] ^ 0xFF, v[3], 4)
    return v0 ^ v1 ^ v2 ^ v3


def _sip_rounds(v0: int, v1: int, v2: int, v3: int, count: int) -> tuple[int, int, int, int]:
    """``count`` SipRounds on the state (v0, v1, v2, v3), 64-bit arithmetic."""
    for _ in range(count):
        v0 = (v0 + v1) & _MASK64
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _MASK64
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK64
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK64
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def _rotl(x: int, bits: int) -> int:
    return ((x << bits) | (x >> (64 - bits))) & _MASK64
