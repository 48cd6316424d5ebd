"""Real HTTP clients through the live extractor: what the kernel logged equals what the server received.

Crafted frames (tests/test_extractor_corpus.py) prove the rules; this proves the real thing. curl and
Python's http.client open real TCP connections over IPv4 and IPv6 from the lab's client namespace to a
recording server in the gateway namespace, with the extractor attached to the gateway's veth end in
native and in generic XDP mode. The server's own record of each request is the oracle, not what the test
meant to send, so a client's own habits (curl's Host and User-Agent, http.client's header case) are
checked too. Secrets must leave the kernel only as a scheme and a keyed hash.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from harness.core.config import HeaderMode
from harness.core.counters import Counter, Counts, counts_difference
from harness.core.event import EventFlag, HeaderEvent, SlotFlag
from harness.core.program import Program
from harness.core.wait import wait_until
from harness.core.xdp import XdpMode, attached_mode
from harness.oracle.reference import siphash24
from netns.clients import curl, http_client
from netns.lab import Lab
from netns.servers import RecordingServer

pytestmark = [pytest.mark.kernel, pytest.mark.lab]

EVENT_DEADLINE_S = 5.0
VERSIONS = {"HTTP/1.0": 10, "HTTP/1.1": 11}


@dataclasses.dataclass(frozen=True)
class Call:
    """One real request: which client, over which IP version, to which port, and with what.

    ``headers`` are sent in order; ``X-Request-ID``, ``Authorization`` and ``Cookie`` are added per run
    with fresh random values (see :func:`with_secrets`), so no two requests and no two runs share them.
    """

    client: str  # "curl" or "http.client"
    family: int
    port: int
    method: str
    target: str
    headers: dict[str, str]
    body: bytes | None = None
    auth: bool = True
    cookie: bool = True

    @property
    def body_segments(self) -> int:
        """Segments that carry only body bytes, as observed on this stack (each counts as ``body``, R16).

        http.client (3.11) writes the header block and the body with two send() calls, and Nagle holds the
        small second one until the first is acknowledged, so the body always travels alone. curl writes a
        small body in the same send() as its headers, so the body follows the request in one segment.
        """
        return int(self.client == "http.client" and self.body is not None)


FULL = {
    "Host": "shop.example",
    "User-Agent": "xhdr-test/1.0 (+https://example.org/bot)",
    "X-Forwarded-For": "203.0.113.7, 198.51.100.23",
    "Referer": "https://shop.example/cart?step=2",
    "X-API-Version": "2024-06-01",
}

# One table: a new case is a new row. Together the rows cover both clients, both IP versions, both
# watched ports, bodies, unusual header-name case, optional whitespace and absent headers.
CALLS = (
    Call("curl", 4, 80, "GET", "/index.html", FULL),
    # curl's own Host ("198.18.0.2"-style) and User-Agent ("curl/7.x"): only the server knows them.
    Call("curl", 6, 80, "GET", "/api/items?limit=10&sort=-price", {"X-Forwarded-For": "2001:db8:ff::7"}),
    Call("curl", 4, 8080, "PUT", "/v2/things/42", FULL, body=b'{"name": "forty-two"}', auth=False),
    Call("curl", 6, 8080, "HEAD", "/health", {"Referer": "https://status.example/"}, cookie=False),
    Call(
        "http.client",
        4,
        80,
        "POST",
        "/api/orders",
        {name.lower(): value for name, value in FULL.items()} | {"Content-Length": "13"},
        body=b"item=7&qty=20",
    ),
    # Optional whitespace around values: the server and the extractor must both trim it.
    Call("http.client", 6, 80, "GET", "/", {"HOST": "  api.example\t", "x-api-version": "3   "}),
    Call("http.client", 6, 8080, "DELETE", "/v2/things/42?force=1", FULL, cookie=False),
    Call("http.client", 4, 8080, "OPTIONS", "*", {"Host": "shop.example"}, auth=False, cookie=False),
)


@dataclasses.dataclass(frozen=True)
class Sent:
    """A call with its per-run secrets filled in."""

    call: Call
    request_id: str
    headers: dict[str, str]
    token: str | None
    cookie_secret: str | None


def with_secrets(index: int, call: Call) -> Sent:
    """Adds a unique X-Request-ID and, where the row asks for them, a random bearer token and session cookie."""
    request_id = f"req-{index}-{secrets.token_hex(8)}"
    headers = {"X-Request-ID": request_id, **call.headers}
    token = secrets.token_urlsafe(24) if call.auth else None
    cookie_secret = secrets.token_hex(16) if call.cookie else None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if cookie_secret:
        headers["Cookie"] = f"session={cookie_secret}; theme=dark"
    return Sent(call, request_id, headers, token, cookie_secret)


def send(lab: Lab, servers: dict[int, RecordingServer], sent: Sent) -> None:
    """Makes the request with the row's client and checks the server answered."""
    call = sent.call
    server = servers[call.port]
    if call.client == "curl":
        response = curl(
            lab, server.url(call.target, family=call.family), sent.headers, method=call.method, data=call.body
        )
    else:
        address = lab.gateway.endpoint.ipv4 if call.family == 4 else lab.gateway.endpoint.ipv6
        response = http_client(
            lab, address, call.port, call.method, call.target, sent.headers, body=call.body
        )
    assert response.status == 200, f"{call.client} {call.method} {call.target}: status {response.status}"


@pytest.fixture(params=list(XdpMode), ids=[mode.value for mode in XdpMode])
def attached(request: pytest.FixtureRequest, program: Program) -> Iterator[tuple[Lab, XdpMode]]:
    """A fresh lab with the session's extractor attached to the gateway's veth end in one XDP mode.

    The session program is reused (compiling one costs about 4 s); its earlier events are drained and
    its counters are compared as deltas, so earlier tests cannot leak into this one.
    """
    mode: XdpMode = request.param
    with Lab() as lab:
        lab.attach(program.fd, mode)
        assert attached_mode(lab.gateway.ifname, lab.gateway.netns) == mode.reported
        yield lab, mode


def test_real_clients_are_logged_as_the_server_received_them(
    attached: tuple[Lab, XdpMode], program: Program
) -> None:
    lab, mode = attached
    servers = {port: RecordingServer(lab, port=port) for port in (80, 8080)}
    program.take_events()  # whatever earlier tests left in the ring buffer
    before = program.counters()

    sent = [with_secrets(index, call) for index, call in enumerate(CALLS)]
    for one in sent:
        send(lab, servers, one)
    count = len(sent)

    events: list[HeaderEvent] = []

    def all_logged() -> Counts | None:
        """Every event, and every connection's FIN (which can trail the last event) seen."""
        events.extend(program.take_events())
        delta = counts_difference(program.counters(), before)
        done = (
            len(events) >= count and delta[Counter.EVENTS] >= count and delta[Counter.FLOWS_CLOSED] >= count
        )
        return delta if done else None

    delta = wait_until(
        all_logged, EVENT_DEADLINE_S, f"{count} events from {lab.gateway.ifname} ({mode.value})"
    )
    shown = {counter.label: value for counter, value in delta.items() if value}
    assert delta[Counter.HTTP_REQUEST] == delta[Counter.EVENTS] == len(events) == count, shown
    assert delta[Counter.EVENTS_LOST] == 0, shown
    # One connection per request, opened by its SYN and closed by the client's FIN (R15); nothing lost.
    assert delta[Counter.FLOWS_OPENED] == delta[Counter.FLOWS_CLOSED] == count, shown
    assert delta[Counter.FLOWS_LOST] == 0, shown
    # Every request line and header block arrived in one segment; only bodies sent on their own are body.
    assert delta[Counter.BODY] == sum(one.call.body_segments for one in sent), shown
    # Nothing else carried payload: each segment was a request, a body, or empty (the SYN, the FIN and
    # bare ACKs: at least those three per connection).
    others = (Counter.HTTP_REQUEST, Counter.BODY, Counter.NO_PAYLOAD)
    assert delta[Counter.PACKETS] == sum(delta[counter] for counter in others), shown
    assert delta[Counter.NO_PAYLOAD] >= 3 * count, shown

    # Request by request, keyed by X-Request-ID on both sides (client ports may repeat across IPv4 and IPv6).
    ids = sorted(one.request_id for one in sent)
    recorded = {
        recorded_headers(entry)["x-request-id"]: entry
        for server in servers.values()
        for entry in server.requests()
    }
    assert sorted(recorded) == ids, "the servers did not record exactly the requests sent"
    logged = {event.header("X-Request-ID").value.decode("latin-1"): event for event in events}
    assert sorted(logged) == ids, "the events do not carry exactly the request ids sent"
    for one in sent:
        check_event(logged[one.request_id], recorded[one.request_id], one, program.key, dport=one.call.port)


def recorded_headers(entry: dict[str, Any]) -> dict[str, str]:
    """The server's header record, by lower-case name (each header is sent once here)."""
    pairs = entry["headers"]
    names = [name.lower() for name, _ in pairs]
    assert len(names) == len(set(names)), f"a header was sent twice: {names}"
    return {name.lower(): value for name, value in pairs}


def check_event(event: HeaderEvent, entry: dict[str, Any], sent: Sent, key: bytes, dport: int) -> None:
    """One event against the server's record of the same request, field by field."""
    what = f"{sent.call.client} {sent.call.method} {sent.call.target} (IPv{sent.call.family}, :{dport})"
    headers = recorded_headers(entry)
    assert headers["x-request-id"] == sent.request_id, what
    assert (event.family, event.saddr, event.sport) == (entry["family"], entry["client"], entry["port"]), what
    assert event.dport == dport, what
    assert event.method == entry["method"].encode("latin-1"), what
    assert event.target == entry["target"].encode("latin-1"), what
    assert event.target_length == len(entry["target"]), what
    assert event.version == VERSIONS[entry["version"]], what
    assert event.flags == EventFlag(0), f"{what}: {event.flags!r}"
    assert event.header_lines == len(entry["headers"]), what
    assert event.request_index == 0, what

    for slot in event.headers:
        value = headers.get(slot.name.lower())
        label = f"{what} {slot.name}"
        if value is None:
            assert slot.flags == SlotFlag(0) and slot.length == 0, (
                f"{label}: absent at the server, logged {slot}"
            )
            continue
        raw = value.encode("latin-1")
        assert slot.flags == SlotFlag.PRESENT, f"{label}: {slot.flags!r}"
        assert slot.length == len(raw), label
        if slot.mode is HeaderMode.VALUE:
            assert slot.value == raw, label
        elif slot.mode is HeaderMode.AUTH:
            assert (slot.value, slot.hash) == (b"Bearer", siphash24(key, raw)), label
        elif slot.mode is HeaderMode.HASH:
            assert (slot.value, slot.hash) == (b"", siphash24(key, raw)), label

    # Secrets: neither the token nor the session id may appear in what is logged or shown.
    logged = json.dumps(event.to_json()) + " ".join(slot.shown() for slot in event.headers)
    for secret in (sent.token, sent.cookie_secret):
        if secret:
            assert secret not in logged, f"{what}: a secret leaked into the event"
    if sent.token:
        assert event.header("Authorization").present and event.header("Authorization").hash != 0, what
    if sent.cookie_secret:
        assert event.header("Cookie").present and event.header("Cookie").hash != 0, what
