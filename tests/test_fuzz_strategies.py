"""The fuzzer's own parts that need no kernel: fast frame building, the strategies' reach, repro files, the CLI.

``fast_build`` replaces scapy in the hot loop, so it is held byte for byte to ``harness.oracle.frames.build``; the
strategies are held to reaching what the issue lists (VLAN depths, IPv6, options, fragments, pipelining,
obs-fold, bare LF, NUL and high bytes; for flows, each outcome of R15-R18 as the reference judges them), since a
strategy that silently stopped producing them would let the differential test pass without testing anything.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from fuzz import command, repro
from fuzz.differential import (
    FUZZ_CONFIG,
    FUZZ_KEY,
    FUZZ_RULES_CONFIG,
    Disagreement,
    expectations,
    frames_of,
    outcome_class,
)
from fuzz.strategies import (
    FLOW_SHAPE,
    MIN_FRAME,
    TARGETS,
    Flow,
    batches,
    client_hellos,
    fast_build,
    flows,
    frame_specs,
    payloads,
    requests,
    sent,
    targets,
)
from harness.cli.main import build_parser, main
from harness.core.counters import Counter
from harness.core.driver import Outcome
from harness.core.event import EventFlag, TlsFlag, TlsHello
from harness.oracle import reference
from harness.oracle.frames import FrameSpec, build
from harness.oracle.reference import Expected, FlowTracker, Mode, tcp_segment

FAST = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
TCP_FLAGS = st.sampled_from(["PA", "A", "S", "SA", "R", "RA", "SR", "FA", "FPA", "SF"])


@settings(FAST, max_examples=300)
@given(
    st.builds(
        dataclasses.replace,
        st.one_of(
            frame_specs(FUZZ_CONFIG, payloads(FUZZ_CONFIG)),
            frame_specs(FUZZ_CONFIG, payloads(FUZZ_CONFIG), FLOW_SHAPE),
        ),
        seq=st.integers(0, (1 << 32) - 1),
        flags=TCP_FLAGS,
        reply=st.booleans(),
    )
)
def test_fast_build_equals_scapy_build(spec: FrameSpec) -> None:
    """Flows give every frame its own flags and sequence number, and a server's frame its ports swapped: those
    are patched too, not cached."""
    assert fast_build(spec) == build(spec)


PAYLOAD_FEATURES = {
    "pipelined": lambda p: p.count(b" HTTP/1.") >= 2,
    "obs-fold": lambda p: b"\n " in p or b"\n\t" in p,
    "bare LF": lambda p: b"\n" in p.replace(b"\r\n", b""),
    "NUL": lambda p: b"\x00" in p,
    "high byte": lambda p: any(byte >= 0x80 for byte in p),
    "space before colon": lambda p: b" :" in p or b"\t:" in p,
    "missing final CRLF": lambda p: not p.endswith(b"\n"),
}
SPEC_FEATURES = {
    **{f"{count} VLAN tags": (lambda s, count=count: len(s.vlan_ids) == count) for count in range(4)},
    "802.1ad outer tag": lambda s: s.vlan_tpids[:1] == (0x88A8,),
    "IPv6": lambda s: s.family == 6,
    "IPv4 options": lambda s: bool(s.ip_options),
    "TCP options": lambda s: bool(s.tcp_options),
    "IPv6 extension header": lambda s: s.ipv6_ext,
    "first fragment": lambda s: s.fragment == "first",
    "later fragment": lambda s: s.fragment == "later",
    "unwatched port": lambda s: s.dport not in FUZZ_CONFIG.ports,
    "UDP": lambda s: s.protocol == "udp",
    "Ethernet padding": lambda s: s.pad > 0,
}
SEARCH = settings(FAST, max_examples=3000, phases=[Phase.generate])  # first hit, no shrinking


@pytest.mark.parametrize("feature", PAYLOAD_FEATURES)
def test_grammar_produces(feature: str) -> None:
    """The HTTP layer can write each feature the issue lists (a strategy that lost one would test nothing)."""
    find(payloads(FUZZ_CONFIG), PAYLOAD_FEATURES[feature], settings=SEARCH)


@pytest.mark.parametrize("feature", SPEC_FEATURES)
def test_transport_produces(feature: str) -> None:
    find(frame_specs(FUZZ_CONFIG, requests(FUZZ_CONFIG)), SPEC_FEATURES[feature], settings=SEARCH)


def test_targets_reach_the_limit() -> None:
    find(targets(FUZZ_CONFIG), lambda target: len(target) == FUZZ_CONFIG.max_target_len, settings=SEARCH)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_target_yields_test_runnable_frames(target: str) -> None:
    """BPF_PROG_TEST_RUN refuses frames under 14 bytes, and each target must reach requests and non-requests."""
    outcomes: set[Counter] = set()

    @settings(FAST, max_examples=150)
    @given(batches(FUZZ_CONFIG, target))
    def judged(items: list) -> None:
        frames = [frame for item in items for frame in sent(item)]
        assert frames and all(len(frame) >= MIN_FRAME for frame in frames)
        wanted = (want for item in items for want in expectations(item, FUZZ_CONFIG, FUZZ_KEY))
        outcomes.update(want.outcome for want in wanted if not want.leaving)  # a frame leaving has none

    judged()
    reads = Counter.TLS_HELLO if target == "tls" else Counter.HTTP_REQUEST
    assert reads in outcomes and len(outcomes) >= 2, sorted(c.label for c in outcomes)


def test_the_default_mix_holds_flows_and_frames() -> None:
    """``all`` fuzzes both kinds of items, so the everyday campaign reaches the flow rules too."""
    find(
        batches(FUZZ_CONFIG),
        lambda items: {isinstance(item, Flow) for item in items} == {True, False},
        settings=SEARCH,
    )


class Judged:
    """A flow's frames as the reference judges them, each with the mode its flow was in before it."""

    def __init__(self, flow: Flow) -> None:
        tracker = FlowTracker(FUZZ_CONFIG, FUZZ_KEY)
        tracker.feed(flow.reset)
        self.frames = flow.frames
        self.before: list[Mode | None] = []
        self.expected: list[Expected] = []
        for frame in flow.frames:
            segment = tcp_segment(frame)
            state = tracker.states.get(segment.flow) if segment is not None else None
            self.before.append(state.mode if state is not None else None)
            self.expected.append(tracker.feed(frame))

    def outcomes(self) -> set[Counter]:
        return {want.outcome for want in self.expected}

    def any(self, test: Callable[[bytes, Mode | None, Expected], bool]) -> bool:
        return any(map(test, self.frames, self.before, self.expected))


def _segment(frame: bytes) -> reference.Segment:
    segment = tcp_segment(frame)
    assert segment is not None
    return segment


def _wraps(frame: bytes, expected: Expected) -> bool:
    """A payload the flow read whose sequence numbers cross 2^32."""
    if expected.outcome not in (Counter.HTTP_REQUEST, Counter.BODY, Counter.CONTINUED):
        return False
    segment = _segment(frame)
    return segment.start + segment.length > 1 << 32


FLOW_FEATURES: dict[str, Callable[[Judged], bool]] = {
    **{
        outcome.label: (lambda judged, outcome=outcome: outcome in judged.outcomes())
        for outcome in (
            Counter.MID_STREAM,
            Counter.RETRANSMITTED,
            Counter.OUT_OF_ORDER,
            Counter.OUT_OF_SYNC,
            Counter.BODY,
            Counter.CONTINUED,
        )
    },
    "request after a body (pipelining)": lambda judged: judged.any(
        lambda frame, before, want: (
            before in (Mode.BODY, Mode.CHUNKED) and want.outcome is Counter.HTTP_REQUEST
        )
    ),
    "chunked body across segments (R20)": lambda judged: judged.any(
        lambda frame, before, want: before is Mode.CHUNKED and want.outcome is Counter.BODY
    ),
    "request-looking body skipped": lambda judged: judged.any(
        lambda frame, before, want: want.outcome is Counter.BODY and b" HTTP/1." in _segment(frame).payload
    ),
    "request read on a SYN (fast open)": lambda judged: judged.any(
        lambda frame, before, want: want.outcome is Counter.HTTP_REQUEST and _segment(frame).syn
    ),
    "header section across segments": lambda judged: judged.any(
        lambda frame, before, want: before is Mode.HEADERS and want.outcome is Counter.HTTP_REQUEST
    ),
    "NAME_SPLIT": lambda judged: judged.any(
        lambda frame, before, want: any(event.flags & EventFlag.NAME_SPLIT for event in want.events)
    ),
    "closed in the middle": lambda judged: any(
        want.counters[Counter.FLOWS_CLOSED] for want in judged.expected[:-1]
    ),
    "read across the 2^32 wrap": lambda judged: judged.any(lambda frame, before, want: _wraps(frame, want)),
}


@pytest.mark.parametrize("feature", FLOW_FEATURES)
def test_flows_produce(feature: str) -> None:
    """The flow strategy reaches each outcome of R15-R18, as the reference judges its frames."""
    find(flows(FUZZ_CONFIG), lambda flow: FLOW_FEATURES[feature](Judged(flow)), settings=SEARCH)


def _tls_events(items: list) -> list[TlsHello]:
    return [
        event
        for item in items
        for want in expectations(item, FUZZ_CONFIG, FUZZ_KEY)
        for event in want.events
        if isinstance(event, TlsHello)
    ]


def _tls_outcomes(items: list) -> set[Counter]:
    return {want.outcome for item in items for want in expectations(item, FUZZ_CONFIG, FUZZ_KEY)}


TLS_FEATURES: dict[str, Callable[[list], bool]] = {
    **{
        flag.name: (lambda items, flag=flag: any(event.flags & flag for event in _tls_events(items)))
        for flag in TlsFlag
    },
    **{
        outcome.label: (lambda items, outcome=outcome: outcome in _tls_outcomes(items))
        for outcome in (Counter.NOT_TLS, Counter.ENCRYPTED)
    },
    "an SNI": lambda items: any(event.sni for event in _tls_events(items)),
    "ALPN names": lambda items: any(len(event.alpn) >= 2 for event in _tls_events(items)),
    "TLS 1.3 chosen over GREASE": lambda items: any(
        event.tls_version == 0x0304 for event in _tls_events(items)
    ),
    "a TLS connection": lambda items: any(
        isinstance(item, Flow)
        and Counter.TLS_HELLO in {want.outcome for want in expectations(item, FUZZ_CONFIG, FUZZ_KEY)}
        for item in items
    ),
}


@pytest.mark.parametrize("feature", TLS_FEATURES)
def test_tls_target_produces(feature: str) -> None:
    """The TLS target reaches every flag of R22 and each outcome of R21, as the reference judges its items."""
    find(batches(FUZZ_CONFIG, "tls"), TLS_FEATURES[feature], settings=SEARCH)


def test_the_default_mix_holds_tls() -> None:
    """``all`` fuzzes TLS ports too, so the everyday campaign holds the kernel to R21 and R22."""
    find(batches(FUZZ_CONFIG), lambda items: bool(_tls_events(items)), settings=SEARCH)


def test_hello_builders_yield_what_they_say() -> None:
    """``client_hellos`` are well-formed: the reference reads each as a ClientHello without BAD_EXTENSIONS."""

    @settings(FAST, max_examples=100)
    @given(client_hellos(FUZZ_CONFIG))
    def read(hello) -> None:
        raw = hello.to_bytes()
        config = dataclasses.replace(FUZZ_CONFIG, max_scan_bytes=1536)
        reading = reference.read_hello(raw, 0, len(raw), config, kept=None)
        assert reading is not None and not reading.hello.flags & TlsFlag.BAD_EXTENSIONS

    read()


def test_unknown_target_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown fuzz target 'nope'; choose one of"):
        batches(FUZZ_CONFIG, "nope")


REQUEST = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"


def _flow(*payloads: bytes) -> Flow:
    """A flow of a SYN and ``payloads`` in order, as ``flows`` would build it."""
    specs = [FrameSpec(flags="S", seq=999)]
    at = 1000
    for payload in payloads:
        specs.append(FrameSpec(payload, seq=at))
        at += len(payload)
    return Flow(build(FrameSpec(flags="R")), tuple(build(spec) for spec in specs))


# The flow's request is cut after its request line, so its Host line is read whole in the second segment.
ITEMS = {"frame": build(FrameSpec(payload=REQUEST)), "flow": _flow(REQUEST[:16], REQUEST[16:])}


@pytest.mark.parametrize("kind", ITEMS)
def test_repro_round_trip(tmp_path, kind: str) -> None:
    """A saved repro reads back as the same item (a frame, or a flow with its reset), configuration and key;
    its pcap holds the same frames; the JSON shows the kernel's and the reference's view of the bad frame."""
    item = ITEMS[kind]
    expected = expectations(item, FUZZ_CONFIG, FUZZ_KEY)
    index = len(expected) - 1  # the frame that logs the request
    outcomes = [Outcome(2, want.events, want.counters) for want in expected]
    outcomes[index] = Outcome(2, (), {**expected[index].counters, Counter.EVENTS: 0})
    found = Disagreement(item, outcomes, expected, ["counter events: kernel 0, reference 1"], index)
    assert found.frame == frames_of(item)[index] and found.expected == expected[index]
    config = FUZZ_RULES_CONFIG  # its rules too (R27): a repro found with rules replays with them
    path = repro.save(found, config, bytes(range(16)), tmp_path, cflags=("-DX",))
    saved = repro.load(path)
    assert (saved.item, saved.config, saved.key, saved.cflags) == (item, config, bytes(range(16)), ("-DX",))
    assert repro.pcap_frames(path) == ((item.reset, *item.frames) if kind == "flow" else (item,))
    record = saved.record if kind == "frame" else saved.record["frames"][index]
    assert record["reference"]["events"][0]["headers"]["Host"] == "h"
    assert record["kernel"]["events"] == []
    assert saved.record["kind"] == kind
    assert outcome_class(expected[index]) == "http_request/-/PRESENT/1"  # flags by name, not bitmask


def test_a_repro_without_a_kind_is_a_frame(tmp_path) -> None:
    """Repro files written before flows have no ``kind``: they still load as a frame."""
    frame = ITEMS["frame"]
    (expected,) = expectations(frame, FUZZ_CONFIG, FUZZ_KEY)
    path = repro.save(
        Disagreement(frame, [Outcome(2, (), expected.counters)], [expected], ["x"]),
        FUZZ_CONFIG,
        FUZZ_KEY,
        tmp_path,
    )
    record = json.loads(path.read_text())
    del record["kind"]
    path.write_text(json.dumps(record))
    assert repro.load(path).item == frame


def test_fuzz_command_is_registered() -> None:
    args = build_parser().parse_args(["fuzz", "--examples", "5", "--target", "http", "--seed", "3"])
    assert (args.run, args.examples, args.target, args.seed) == (command.run, 5, "http", 3)


def test_redis_without_the_package_is_one_line(monkeypatch, capsys) -> None:
    """Without redis-py (an optional extra) --redis fails before any BPF work, with one line naming the extra.
    A None entry in sys.modules makes the import fail as if the package were not installed."""
    for module in ("redis", "hypothesis.extra.redis"):
        monkeypatch.setitem(sys.modules, module, None)
    assert main(["fuzz", "--redis", "redis://localhost:1", "--examples", "1"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "xhdr fuzz: error: --redis needs the redis package; install it with: pip install 'xhdr[redis]'"
    )


def test_a_seed_is_a_run_without_the_database() -> None:
    """Hypothesis ignores the database under a fixed seed, so --seed cannot be combined with --db or --redis,
    and alone it gives no database at all."""
    parser = build_parser()
    for store in (["--db", "somewhere"], ["--redis", "redis://localhost:1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["fuzz", "--seed", "3", *store])
    args = parser.parse_args(["fuzz", "--seed", "3"])
    assert command.example_database(args) is None and command.database_name(args) is None


def test_a_redis_password_is_not_shown() -> None:
    """The database's name goes into CI summaries and logs."""
    args = build_parser().parse_args(["fuzz", "--redis", "redis://user:secret@cache:6379/2"])
    assert command.database_name(args) == "redis://***@cache:6379/2 (keys xhdr-fuzz:all:*)"


@pytest.mark.parametrize("define", ["1BAD", "=3", "A B"])
def test_a_bad_define_is_one_line(capsys, define: str) -> None:
    assert main(["fuzz", "--define", define, "--examples", "1"]) == 1
    assert "is not NAME or NAME=VALUE" in capsys.readouterr().err


def test_defines_become_cflags() -> None:
    assert command.cflags(["XHDR_PLANTED_BUG", "N=3"]) == ("-DXHDR_PLANTED_BUG", "-DN=3")
