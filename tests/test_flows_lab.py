"""Flows over real TCP (R14-R18): one keep-alive connection over a narrow wire to a recording server.

The lab's link behaves like a wire (``Lab(wire_mtu=...)``: no segmentation offloads), so every frame is
one TCP segment, and each request is written when the connection is idle, so its segments start at
multiples of the MSS from its first byte. That lets the test put what it wants where a segment starts:
a header section longer than a segment, and request-looking text at the start of every body segment.

The server's record is the oracle: every request it received is logged exactly once, with the configured
headers it carried, and nothing else is logged. Both XDP modes, IPv4 and IPv6. The wire's MTU is 1280, the
smallest IPv6 allows (a link below it loses its IPv6 addresses); the long headers are sized from the MSS.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator

import pytest

from harness.core.counters import Counter, Counts, counts_difference
from harness.core.event import EventFlag, HeaderEvent, SlotFlag
from harness.core.program import Program
from harness.core.wait import wait_until
from harness.core.xdp import XdpMode
from netns.lab import Lab
from netns.nsenter import socket_in
from netns.recorder import RESPONSE_BODY
from netns.servers import RecordingServer

pytestmark = [pytest.mark.kernel, pytest.mark.lab]

WIRE_MTU = 1280
PORT = 80
DEADLINE_S = 5.0
FORGED = "GET /forged HTTP/1.1\r\nHost: forged\r\nX-Request-ID: forged\r\n\r\n"
REFERER = "https://wire.example/"


@dataclasses.dataclass(frozen=True)
class Write:
    """What one send() carries: one request, or several pipelined, each with its X-Request-ID."""

    payload: bytes
    ids: tuple[str, ...]


def request(method: str, target: str, request_id: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: wire.example", f"X-Request-ID: {request_id}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(head: bytes, body: bytes, mss: int) -> bytes:
    """``head`` (a request without its empty line) sent with ``body`` in chunks (R20) of one segment's
    length, so chunk sizes, data and the forged requests in it fall on both sides of segment starts."""
    lines = head + b"Transfer-Encoding: chunked\r\n\r\n"
    for at in range(0, len(body), mss):
        part = body[at : at + mss]
        lines += b"%x;n=%d\r\n" % (len(part), at // mss) + part + b"\r\n"
    return lines + b"0\r\nX-Trailer: t\r\n\r\n"


def forged_body(header_bytes: int, mss: int, size: int) -> bytes:
    """A body with a whole forged request wherever a segment of its request starts (R14, R16)."""
    body = bytearray(b"x" * size)
    start = mss - header_bytes % mss
    for at in range(start, size - len(FORGED), mss):
        body[at : at + len(FORGED)] = FORGED.encode()
    return bytes(body)


def writes(mss: int) -> list[Write]:
    """The connection's traffic, in order; each write waits for the answers to the one before."""
    body_size = 3 * mss
    upload_head = request("POST", "/upload", "real-2", {}, b"?" * body_size)[:-body_size]
    body = forged_body(len(upload_head), mss, body_size)
    long = "p" * (mss + 100)  # a value longer than a segment, before the headers a test looks for
    return [
        # The header section spans two segments; the headers after the long one are in the second (R18).
        Write(request("GET", "/long-header", "real-1", {"X-Pad": long, "User-Agent": "wire/1"}), ("real-1",)),
        # A body of several segments, each starting with a forged request (R16: skipped as body).
        Write(request("POST", "/upload", "real-2", {}, body), ("real-2",)),
        # A request pipelined after a body, in the same segment (R14).
        Write(
            request("POST", "/p1", "real-3", {}, b"hello") + request("GET", "/p2", "real-4", {}),
            ("real-3", "real-4"),
        ),
        # A chunked body of several segments holding forged requests, then a request pipelined after it (R20).
        Write(
            chunked(request("POST", "/chunks", "real-6", {})[:-2], body, mss)
            + request("GET", "/after-chunks", "real-7", {}),
            ("real-6", "real-7"),
        ),
        # A long hashed value split by the segment end: its slot is CUT, the rest of the line skipped (R18).
        Write(
            request("GET", "/cookie", "real-5", {"Cookie": "s=" + long, "User-Agent": "wire/2"}), ("real-5",)
        ),
        # A long logged value split by the segment end: it goes on in the next segment (R18).
        Write(request("GET", "/referer", "real-8", {"Referer": REFERER + long}), ("real-8",)),
    ]


@pytest.fixture(params=list(XdpMode), ids=[mode.value for mode in XdpMode])
def wire(request: pytest.FixtureRequest, program: Program) -> Iterator[tuple[Lab, XdpMode]]:
    mode: XdpMode = request.param
    with Lab(wire_mtu=WIRE_MTU) as lab:
        lab.attach(program.fd, mode)
        yield lab, mode


def converse(lab: Lab, family: int) -> list[Write]:
    """Opens one connection, makes every write and reads its answers, then closes it (FIN)."""
    address = lab.gateway.endpoint.ipv4 if family == 4 else lab.gateway.endpoint.ipv6
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    with socket_in(lab.client.netns, af, socket.SOCK_STREAM) as conn:
        conn.settimeout(DEADLINE_S)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.connect((address, PORT))
        mss = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
        assert mss < WIRE_MTU, f"MSS {mss}: the wire MTU did not take"
        sent = writes(mss)
        for write in sent:
            conn.sendall(write.payload)
            answers = b""
            while answers.count(RESPONSE_BODY) < len(write.ids):
                chunk = conn.recv(65536)
                assert chunk, "the server closed the connection"
                answers += chunk
    return sent


@pytest.mark.parametrize("family", [4, 6])
def test_a_connection_is_logged_request_by_request(
    wire: tuple[Lab, XdpMode], program: Program, family: int
) -> None:
    lab, mode = wire
    server = RecordingServer(lab, port=PORT)
    program.take_events()
    before = program.counters()
    sent = converse(lab, family)
    ids = sorted(request_id for write in sent for request_id in write.ids)
    events: list[HeaderEvent] = []

    def logged() -> Counts | None:
        events.extend(program.take_events())
        delta = counts_difference(program.counters(), before)
        return delta if len(events) >= len(ids) and delta[Counter.FLOWS_CLOSED] >= 1 else None

    delta = wait_until(logged, DEADLINE_S, f"{len(ids)} events ({mode.value}, IPv{family})")
    shown = {counter.label: value for counter, value in delta.items() if value}

    recorded = sorted(dict(entry["headers"])["X-Request-ID"] for entry in server.requests())
    assert recorded == ids, "the server did not receive exactly the requests sent"
    by_id = {event.header("X-Request-ID").value.decode(): event for event in events}
    assert sorted(by_id) == ids and len(events) == len(ids), f"logged {sorted(by_id)}, sent {ids}"
    assert delta[Counter.HTTP_REQUEST] == delta[Counter.EVENTS] == len(ids), shown
    for name in ("FLOWS_LOST", "MID_STREAM", "OUT_OF_SYNC", "OUT_OF_ORDER", "NOT_HTTP", "EVENTS_LOST"):
        assert delta[Counter[name]] == 0, shown
    assert delta[Counter.FLOWS_OPENED] == delta[Counter.FLOWS_CLOSED] == 1, shown
    assert delta[Counter.BODY] >= 2, shown  # the forged body's later segments
    assert delta[Counter.CONTINUED] == 3, shown  # the three long header sections

    for event in events:
        assert event.flags & (EventFlag.HEADERS_CUT | EventFlag.LINE_CUT) == 0, event
        assert event.header("Host").value == b"wire.example", event
    long_header = by_id["real-1"]
    assert long_header.target == b"/long-header"
    assert long_header.header("User-Agent").value == b"wire/1"
    assert long_header.header_lines == 4
    assert [by_id[i].target for i in ("real-3", "real-4")] == [b"/p1", b"/p2"]
    assert by_id["real-6"].flags == EventFlag.TRANSFER_ENCODING
    assert by_id["real-7"].target == b"/after-chunks"
    cookie = by_id["real-5"]
    assert cookie.header("User-Agent").value == b"wire/2"
    assert cookie.header("Cookie").flags == SlotFlag.PRESENT | SlotFlag.CUT
    referer = by_id["real-8"].header("Referer")
    (sent_referer,) = (
        line[len(b"Referer: ") :] for line in sent[-1].payload.split(b"\r\n") if b"Referer" in line
    )
    assert referer.flags == SlotFlag.PRESENT | SlotFlag.TRUNCATED, referer
    assert referer.length == len(sent_referer)
    assert referer.value == sent_referer[: program.config.max_value_len]
