"""A port moved between ``ports`` and ``tls_ports`` while flows are open (docs/EXTRACTION.md R21).

``Program.configure`` changes the watched ports of a running extractor. A flow left in a mode of the other kind
of port (an HTTP header section that goes on, now on a TLS port; a ClientHello that goes on, now on an HTTP port)
must be lost, not read as the other protocol from a record half-built by the first: the reference has one
configuration per run, so this is held to the rule here, on the kernel.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.core.config import ExtractorConfig
from harness.core.counters import Counter
from harness.core.driver import Outcome, TestRunDriver
from harness.core.program import Program
from harness.oracle.frames import FrameSpec, build
from harness.oracle.tls import curl_like

pytestmark = pytest.mark.kernel

HTTP_HEAD = b"GET /a HTTP/1.1\r\nHost: api.shop.example\r\nUser-Agent: half"
SEQ = 1000


@pytest.fixture
def program() -> Iterator[Program]:
    """A program of its own: the test reconfigures its ports."""
    with Program(ExtractorConfig(ports=(80, 8080), tls_ports=(443,))) as loaded:
        yield loaded


def first_part_then_rest(
    program: Program, payload: bytes, cut: int, dport: int, moved: ExtractorConfig
) -> tuple[Outcome, Outcome]:
    """The flow's SYN and the payload's first ``cut`` bytes, then ``moved`` ports, then the rest."""
    driver = TestRunDriver(program)
    syn = build(FrameSpec(dport=dport, flags="S", seq=SEQ - 1))
    first = build(FrameSpec(dport=dport, payload=payload[:cut], seq=SEQ))
    _, kept = driver.feed([syn, first])
    program.configure(moved)
    (rest,) = driver.feed([build(FrameSpec(dport=dport, payload=payload[cut:], seq=SEQ + cut))])
    return kept, rest


def test_a_header_section_that_goes_on_is_lost_when_its_port_becomes_tls(program: Program) -> None:
    payload = HTTP_HEAD + b"\r\n\r\n"
    moved = ExtractorConfig(ports=(80,), tls_ports=(443, 8080))
    kept, rest = first_part_then_rest(program, payload, len(HTTP_HEAD), 8080, moved)
    assert kept.counters[Counter.CONTINUED] == 1
    assert rest.counters[Counter.OUT_OF_SYNC] == rest.counters[Counter.FLOWS_LOST] == 1
    assert rest.events == () and rest.counters[Counter.TLS_HELLO] == 0


def test_a_hello_that_goes_on_is_lost_when_its_port_becomes_http(program: Program) -> None:
    hello = curl_like(b"moved.example").to_bytes()
    moved = ExtractorConfig(ports=(80, 443, 8080), tls_ports=())
    kept, rest = first_part_then_rest(program, hello, 100, 443, moved)  # inside its first extension
    assert kept.counters[Counter.CONTINUED] == 1, kept.counters
    assert rest.counters[Counter.OUT_OF_SYNC] == rest.counters[Counter.FLOWS_LOST] == 1
    assert rest.events == () and rest.counters[Counter.HTTP_REQUEST] == 0
