"""Responses paired with the requests they answer (docs/EXTRACTION.md R24, R25): the kernel against the reference.

Frames that arrive run through the XDP entry program, frames that leave through the TC egress program, both by
BPF_PROG_TEST_RUN on one loaded build, so the two share the flows map as on an interface. Each step's counter
deltas and events must equal the reference's; a response event must also carry the time of the very request the
reference says it answers, which is that request's own event's timestamp.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.core.config import ExtractorConfig
from harness.core.counters import Counter, counts_difference
from harness.core.event import HeaderEvent, HttpResponse
from harness.core.latencies import endpoint, latency_bucket, read_latencies
from harness.core.program import RESPONSES, Program
from harness.core.rules import Action, Condition, Match, Rule
from harness.core.testrun import test_run
from harness.oracle.frames import FrameSpec, build
from harness.oracle.reference import WAITING_REQUESTS, Expected, FlowTracker

pytestmark = pytest.mark.kernel

CONFIG = ExtractorConfig(responses=True)
CLIENT_PORTS = (40001, 40002)


def request(path: str = "/") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: shop.example\r\n\r\n".encode()


def status(code: int, reason: str = "Whatever") -> bytes:
    return f"HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\n\r\n".encode()


@dataclasses.dataclass(frozen=True)
class Step:
    """One frame of a conversation: the client's (``reply`` False) or the gateway's answer."""

    payload: bytes = b""
    reply: bool = False
    flags: str = "PA"
    client_port: int = CLIENT_PORTS[0]
    family: int = 4
    vlan_ids: tuple[int, ...] = ()
    server_port: int = 80


def arrive(payload: bytes, **fields: object) -> Step:
    return Step(payload, reply=False, **fields)  # type: ignore[arg-type]


def leave(payload: bytes, **fields: object) -> Step:
    return Step(payload, reply=True, **fields)  # type: ignore[arg-type]


def frames(steps: Sequence[Step]) -> Iterator[tuple[Step, bytes]]:
    """Each step's frame, with each side's sequence numbers running on per flow (a SYN restarts the client's)."""
    sequence: dict[tuple[object, ...], int] = {}
    for step in steps:
        side = (step.reply, step.client_port, step.family, step.vlan_ids, step.server_port)
        seq = 1000 if "S" in step.flags else sequence.get(side, 1001)
        spec = FrameSpec(
            payload=step.payload,
            reply=step.reply,
            flags=step.flags,
            seq=seq,
            sport=step.client_port,
            dport=step.server_port,
            family=step.family,  # type: ignore[arg-type]
            vlan_ids=step.vlan_ids,
        )
        sequence[side] = seq + len(step.payload) + ("S" in step.flags) + ("F" in step.flags)
        yield step, build(spec)


def opened(steps: Sequence[Step], **fields: object) -> list[Step]:
    """The steps after the SYN that opens their flow."""
    return [arrive(b"", flags="S", **fields), *steps]


class Pairing:
    """Runs steps through the kernel and the reference side by side, and compares each step."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.reference = FlowTracker(program.config)
        self.requests: dict[tuple[object, ...], list[int]] = {}  # the kernel's request times per flow

    def forget_flows(self) -> None:
        """Both flows start from no state in the kernel (an RST each) and in a new reference."""
        for _, frame in frames([arrive(b"", flags="R", client_port=port) for port in CLIENT_PORTS]):
            test_run(self.program.fd, frame)
        self.reference = FlowTracker(self.program.config)
        self.requests.clear()

    def run(self, steps: Sequence[Step]) -> list[HttpResponse]:
        """Every step compared; the kernel's response events."""
        responses: list[HttpResponse] = []
        for step, frame in frames(steps):
            fd = self.program.functions[RESPONSES].fd if step.reply else self.program.fd
            before = self.program.counters()
            test_run(fd, frame)
            events = tuple(self.program.take_events())
            counts = counts_difference(self.program.counters(), before)
            wanted = self.reference.respond(frame) if step.reply else self.reference.feed(frame)
            assert counts == wanted.counters, f"counters after {step}"
            assert events == wanted.events, f"events after {step}"
            self._check_times(step, events, wanted)
            responses.extend(event for event in events if isinstance(event, HttpResponse))
        return responses

    def _check_times(self, step: Step, events: tuple[object, ...], wanted: Expected) -> None:
        """A request's time is its event's; a response carries the time of the request it answers. A request
        a rule withheld has no event, so no time here (steps with rules carry one request each)."""
        flow = (step.client_port, step.family, step.vlan_ids, step.server_port)
        if "S" in step.flags and not step.reply:
            self.requests[flow] = []
        times = self.requests.setdefault(flow, [])
        for event, expected in zip(events, wanted.events, strict=True):
            if isinstance(event, HeaderEvent):
                times.append(event.timestamp_ns)
            elif isinstance(event, HttpResponse):
                assert isinstance(expected, HttpResponse) and expected.answers is not None
                assert event.request_ns == times[expected.answers]
                assert event.timestamp_ns > event.request_ns
        if not step.reply:
            times.extend([None] * wanted.counters[Counter.EVENTS_WITHHELD])


@pytest.fixture(scope="module")
def responding(program: Program) -> Iterator[Program]:
    """The session's extractor with responses on (a switch in a map: no new build), off again after."""
    before = program.config
    program.configure(CONFIG)
    yield program
    program.configure(before)


@pytest.fixture
def pairing(responding: Program) -> Iterator[Pairing]:
    responding.configure(CONFIG)
    paired = Pairing(responding)
    paired.forget_flows()
    yield paired


KEEP_ALIVE = [arrive(request("/a")), leave(status(200)), arrive(request("/b")), leave(status(404))]
PIPELINED = [
    arrive(request("/a") + request("/b") + request("/c")),
    *(leave(status(code)) for code in (200, 201, 202)),
]
INTERIM = [arrive(request()), leave(b"HTTP/1.1 100 Continue\r\n\r\n"), leave(status(204))]
UPGRADE = [arrive(request()), leave(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")]
TOO_MANY = [*(arrive(request(f"/{i}")) for i in range(WAITING_REQUESTS + 2)), *(leave(status(200)),) * 6]
NOTHING_WAITS = [leave(status(200))]
BODY_SEGMENT = [arrive(request()), leave(b"HTTP/1.1 200 OK \r\n\r\n"), leave(b"HTTP/1.1 500 in a body")]
FIN_WITH_REQUEST = [arrive(request(), flags="PAF"), leave(status(200))]
REOPENED = [arrive(request("/old")), arrive(b"", flags="S"), arrive(request("/new")), leave(status(200))]
NOT_STATUS_LINES = [
    arrive(request()),
    *(
        leave(payload)
        for payload in (
            b"http/1.1 200 OK\r\n",
            b"HTTP/1.2 200 OK\r\n",
            b"HTTP/1.1 2x0 OK\r\n",
            b"HTTP/1.1 200",
            b"HTTP/1.1 2000 OK\r\n",
            b"HTTP/1.1  200 OK\r\n",
        )
    ),
    leave(b"HTTP/1.0 302\r\n\r\n"),
]


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param(KEEP_ALIVE, id="keep-alive"),
        pytest.param(PIPELINED, id="pipelined"),
        pytest.param(INTERIM, id="interim-100"),
        pytest.param(UPGRADE, id="upgrade-101"),
        pytest.param(TOO_MANY, id="more-than-kept"),
        pytest.param(NOTHING_WAITS, id="nothing-waits"),
        pytest.param(BODY_SEGMENT, id="body-segment"),
        pytest.param(FIN_WITH_REQUEST, id="fin-with-request"),
        pytest.param(REOPENED, id="syn-starts-afresh"),
        pytest.param(NOT_STATUS_LINES, id="not-status-lines"),
    ],
)
def test_each_response_answers_the_request_the_reference_names(pairing: Pairing, steps: list[Step]) -> None:
    pairing.run(opened(steps))


def test_the_statuses_come_back_in_the_order_of_the_requests(pairing: Pairing) -> None:
    responses = pairing.run(opened(PIPELINED))
    assert [response.status for response in responses] == [200, 201, 202]
    assert len({response.request_ns for response in responses}) == 1  # one segment, one time


def test_of_more_requests_than_kept_the_oldest_go_unmatched(pairing: Pairing) -> None:
    before = pairing.program.counters()
    responses = pairing.run(opened(TOO_MANY))
    counts = counts_difference(pairing.program.counters(), before)
    assert counts[Counter.RESPONSES_UNMATCHED] == 2
    assert len(responses) == WAITING_REQUESTS


def test_each_endpoint_counts_its_responses_by_latency(pairing: Pairing) -> None:
    """R26: the latencies map holds each endpoint (the target before any '?') with its responses in the
    buckets of their latencies, as the response events give them; an interim response counts nowhere."""
    targets = ["/a", "/b?x=1", "/b?y=2", "/a"]
    steps = [
        *(step for target in targets[:3] for step in (arrive(request(target)), leave(status(200)))),
        arrive(request(targets[3])),
        leave(b"HTTP/1.1 100 Continue\r\n\r\n"),
        leave(status(204)),
    ]
    latencies = pairing.program.bpf[b"latencies"].map_fd
    before = read_latencies(latencies)
    responses = pairing.run(opened(steps))
    after = read_latencies(latencies)
    wanted: collections.Counter[tuple[bytes, int]] = collections.Counter(
        (endpoint(target.encode()), latency_bucket(response.latency_us))
        for target, response in zip(targets, responses, strict=True)
    )
    for path in (b"/a", b"/b"):
        counts = after[path].counts
        earlier = before[path].counts if path in before else (0,) * len(counts)
        grown = {bucket: now - then for bucket, (now, then) in enumerate(zip(counts, earlier)) if now != then}
        assert grown == {bucket: n for (where, bucket), n in wanted.items() if where == path}, path


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"family": 6}, id="ipv6"),
        pytest.param({"vlan_ids": (10, 20)}, id="two-vlan-tags"),
        pytest.param({"server_port": 8080}, id="second-port"),
    ],
)
def test_responses_are_paired_on_every_kind_of_flow(pairing: Pairing, fields: dict[str, object]) -> None:
    steps = [arrive(request(), **fields), leave(status(200), **fields)]
    assert len(pairing.run(opened(steps, **fields))) == 1


@pytest.mark.parametrize("port", [443, 9999], ids=["tls-port", "unwatched-port"])
def test_a_status_line_from_a_port_that_is_not_an_http_port_is_not_read(pairing: Pairing, port: int) -> None:
    before = pairing.program.counters()
    pairing.run(opened([arrive(request()), leave(status(200), server_port=port)]))
    counts = counts_difference(pairing.program.counters(), before)
    assert counts[Counter.RESPONSES] == counts[Counter.RESPONSES_UNMATCHED] == 0


def test_the_response_to_a_withheld_request_is_withheld_too(pairing: Pairing) -> None:
    """R28: a count rule keeps a request's event from the ring, and so its response's; the requests around it
    still get theirs, each paired with its own request."""
    quiet = Rule("health-checks", Action.COUNT, 1, (Condition("target", Match.PREFIX, b"/health"),))
    pairing.program.configure(CONFIG.with_changes(rules=(quiet,)))
    pairing.reference = FlowTracker(pairing.program.config)
    steps = [arrive(request("/a")), arrive(request("/health")), arrive(request("/b"))]
    before = pairing.program.counters()
    responses = pairing.run(opened([*steps, leave(status(200)), leave(status(204)), leave(status(404))]))
    counts = counts_difference(pairing.program.counters(), before)
    assert [response.status for response in responses] == [200, 404]
    assert (
        counts[Counter.EVENTS_WITHHELD],
        counts[Counter.RESPONSES_WITHHELD],
        counts[Counter.RESPONSES],
    ) == (
        1,
        1,
        2,
    )


def test_with_responses_off_requests_wait_for_nothing(pairing: Pairing) -> None:
    pairing.program.configure(CONFIG.with_changes(responses=False))
    pairing.reference = FlowTracker(pairing.program.config)
    assert pairing.run(opened([arrive(request()), leave(status(200))])) == []


def step_strategy() -> st.SearchStrategy[Step]:
    """A frame of one of two flows: requests (one or two in a segment), status lines, SYN, FIN, RST."""
    client_port = st.sampled_from(CLIENT_PORTS)
    status_line = st.sampled_from([100, 101, 200, 204, 304, 404, 503]).map(status)
    requests = st.integers(1, 2).map(lambda n: request() * n)
    return st.one_of(
        st.builds(arrive, requests, client_port=client_port),
        st.builds(leave, status_line, client_port=client_port),
        st.builds(leave, st.just(b"more of a body"), client_port=client_port),
        st.builds(arrive, st.just(b""), flags=st.sampled_from(["S", "F", "R"]), client_port=client_port),
    )


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(step_strategy(), min_size=1, max_size=16))
def test_any_interleaving_of_two_flows_pairs_as_the_reference_says(
    pairing: Pairing, steps: list[Step]
) -> None:
    pairing.forget_flows()
    pairing.run(steps)
