"""Real TLS clients through the live extractor: each connection's ClientHello is logged as nginx saw it.

curl opens HTTPS connections over IPv4 and IPv6 from the lab's client namespace to nginx in the gateway
namespace, with a certificate made for the test, the extractor attached to the gateway's veth end in native
and in generic XDP mode. nginx's log of each request is the oracle: the server name it matched, the TLS
version it agreed and the protocol ALPN chose must be what the kernel read from the ClientHello (R21, R22),
which offers them; the rest of each connection is encrypted and must never be read as a request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from harness.core.counters import Counter, Counts, counts_difference
from harness.core.event import TlsHello, tls_version_name
from harness.core.program import Program
from harness.core.wait import wait_until
from harness.core.xdp import XdpMode
from harness.oracle.reference import FlowTracker
from netns.capture import Capture
from netns.clients import curl
from netns.lab import Lab
from netns.servers import TlsServer

pytestmark = [pytest.mark.kernel, pytest.mark.lab]

EVENT_DEADLINE_S = 5.0
NGINX_PROTOCOLS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


@dataclasses.dataclass(frozen=True)
class Call:
    """One HTTPS request by curl, and what its ClientHello must offer."""

    family: int
    options: tuple[str, ...]
    alpn: tuple[bytes, ...]  # what curl offers with these options
    tls_version: int  # the highest version it offers


CALLS = (
    Call(4, (), (b"h2", b"http/1.1"), 0x0304),
    Call(6, (), (b"h2", b"http/1.1"), 0x0304),
    # TLS 1.2 at most: OpenSSL sends no supported_versions, so the version is the hello's legacy one.
    Call(4, ("--http1.1", "--tls-max", "1.2"), (b"http/1.1",), 0x0303),
    Call(6, ("--http1.1", "--tls-max", "1.2"), (b"http/1.1",), 0x0303),
)


@pytest.fixture(params=list(XdpMode), ids=[mode.value for mode in XdpMode])
def attached(request: pytest.FixtureRequest, program: Program) -> Iterator[Lab]:
    """A fresh lab with the session's extractor (TLS on port 443 by default) on the gateway's veth end."""
    with Lab() as lab:
        lab.attach(program.fd, request.param)
        yield lab


def test_curl_over_tls_is_logged_as_nginx_saw_its_handshake(attached: Lab, program: Program) -> None:
    lab = attached
    assert 443 in program.config.tls_ports
    server = TlsServer(lab)
    program.take_events()
    before = program.counters()
    for index, call in enumerate(CALLS):
        options = (*server.resolve(call.family), *call.options)
        response = curl(lab, server.url(f"/call/{index}"), options=options)
        assert response.status == 200, f"curl {call}: status {response.status}"
    count = len(CALLS)

    events: list[TlsHello] = []

    def all_logged() -> Counts | None:
        events.extend(program.take_events())
        delta = counts_difference(program.counters(), before)
        return delta if len(events) >= count and delta[Counter.FLOWS_CLOSED] >= count else None

    delta = wait_until(all_logged, EVENT_DEADLINE_S, f"{count} TLS events from {lab.gateway.ifname}")
    shown = {counter.label: value for counter, value in delta.items() if value}
    assert delta[Counter.TLS_HELLO] == delta[Counter.EVENTS] == len(events) == count, shown
    assert delta[Counter.FLOWS_OPENED] == delta[Counter.FLOWS_CLOSED] == count, shown
    # Nothing of the encrypted rest is read: no request, no lost flow, nothing refused as not TLS.
    for counter in (Counter.HTTP_REQUEST, Counter.NOT_HTTP, Counter.NOT_TLS, Counter.FLOWS_LOST):
        assert delta[counter] == 0, shown
    # Every client segment after the hello with a payload is encrypted: at least the client's Finished and
    # its request on each connection.
    assert delta[Counter.ENCRYPTED] >= 2 * count, shown
    others = (Counter.TLS_HELLO, Counter.ENCRYPTED, Counter.NO_PAYLOAD)
    assert delta[Counter.PACKETS] == sum(delta[counter] for counter in others), shown

    # Connection by connection, in order: curl runs one after the other.
    logged = sorted(events, key=lambda event: event.timestamp_ns)
    seen = server.requests()
    assert [entry["request"] for entry in seen] == [
        f"GET /call/{index} {'HTTP/2.0' if call.alpn[0] == b'h2' else 'HTTP/1.1'}"
        for index, call in enumerate(CALLS)
    ]
    for call, event, entry in zip(CALLS, logged, seen, strict=True):
        assert isinstance(event, TlsHello), event
        assert event.family == call.family and event.dport == 443
        assert str(event.sport) == entry["port"]
        assert event.sni.decode() == entry["sni"] == server.name
        assert event.sni_length == len(server.name) and not event.flags
        assert event.alpn == call.alpn
        assert entry["alpn"].encode() in event.alpn, "nginx chose a protocol the hello did not offer"
        assert event.tls_version == call.tls_version == NGINX_PROTOCOLS[entry["protocol"]]
        assert tls_version_name(event.tls_version) in entry["protocol"]


SMALL_MSS = 300  # curl's ClientHello (about 520 bytes) then takes two segments (R23)


@pytest.fixture(params=list(XdpMode), ids=[mode.value for mode in XdpMode])
def small_segments(request: pytest.FixtureRequest, program: Program) -> Iterator[Lab]:
    """A lab whose link is a wire (one frame per segment) and whose gateway advertises an MSS of
    ``SMALL_MSS`` to the client, so the client's ClientHello is cut into segments as a browser's 1,800-byte
    post-quantum hello is on a 1,500-byte link."""
    with Lab(wire_mtu=1500) as lab:
        for family, address in (
            (4, f"{lab.client.endpoint.ipv4}/32"),
            (6, f"{lab.client.endpoint.ipv6}/128"),
        ):
            route = ["ip", f"-{family}", "route", "replace", address, "dev", lab.gateway.ifname]
            lab.run(lab.gateway, [*route, "advmss", str(SMALL_MSS)])
        lab.attach(program.fd, request.param)
        yield lab


def test_a_client_hello_over_two_segments_is_logged_once_whole(small_segments: Lab, program: Program) -> None:
    """The kernel's events equal the reference's for the frames the gateway received, and each hello went on
    once: R23 on a real client's bytes, whichever of its extensions the cut splits."""
    lab = small_segments
    server = TlsServer(lab)
    program.take_events()
    before = program.counters()
    with Capture(lab.gateway) as capture:
        for family in (4, 6):
            assert curl(lab, server.url("/split"), options=server.resolve(family)).status == 200
        events: list[TlsHello] = []

        def all_logged() -> Counts | None:
            events.extend(program.take_events())
            delta = counts_difference(program.counters(), before)
            return delta if len(events) >= 2 and delta[Counter.FLOWS_CLOSED] >= 2 else None

        delta = wait_until(all_logged, EVENT_DEADLINE_S, f"2 TLS events from {lab.gateway.ifname}")
        capture.drain()
    shown = {counter.label: value for counter, value in delta.items() if value}
    # Each hello: one segment kept (continued), then the one it ends in (tls_hello).
    assert delta[Counter.CONTINUED] == delta[Counter.TLS_HELLO] == len(events) == 2, shown
    assert delta[Counter.FLOWS_LOST] == delta[Counter.NOT_TLS] == 0, shown
    tracker = FlowTracker(program.config, program.key)
    expected = [event for frame in capture.frames for event in tracker.feed(frame).events]
    assert sorted(events, key=lambda e: e.timestamp_ns) == expected
    for event, entry in zip(expected, server.requests(), strict=True):
        assert event.sni.decode() == entry["sni"] == server.name  # the first segment's
