"""The fuzzer's own parts that need no kernel: fast frame building, the strategies' reach, repro files, the CLI.

``fast_build`` replaces scapy in the hot loop, so it is held byte for byte to ``harness.frames.build``; the
strategies are held to reaching what the issue lists (VLAN depths, IPv6, options, fragments, pipelining,
obs-fold, bare LF, NUL and high bytes), since a strategy that silently stopped producing them would let the
differential test pass without testing anything.
"""

from __future__ import annotations

import argparse

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from fuzz import command, repro
from fuzz.differential import FUZZ_CONFIG, Disagreement, outcome_class
from fuzz.strategies import (
    MIN_FRAME,
    TARGETS,
    batches,
    fast_build,
    frame_specs,
    payloads,
    requests,
    targets,
)
from harness import reference
from harness.cli import CommandError, build_parser, main
from harness.counters import Counter
from harness.driver import Outcome
from harness.frames import FrameSpec, build

FAST = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


@settings(FAST, max_examples=300)
@given(frame_specs(FUZZ_CONFIG, payloads(FUZZ_CONFIG)))
def test_fast_build_equals_scapy_build(spec: FrameSpec) -> None:
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
    def frames_of(frames: list[bytes]) -> None:
        assert frames and all(len(frame) >= MIN_FRAME for frame in frames)
        outcomes.update(reference.extract(frame, FUZZ_CONFIG).outcome for frame in frames)

    frames_of()
    assert Counter.HTTP_REQUEST in outcomes and len(outcomes) >= 2, sorted(c.label for c in outcomes)


def test_unknown_target_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown fuzz target 'nope'; choose one of"):
        batches(FUZZ_CONFIG, "nope")


def test_repro_round_trip(tmp_path) -> None:
    """A saved repro reads back as the same frame, configuration and key, and its pcap holds the same bytes."""
    frame = build(FrameSpec(payload=b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"))
    expected = reference.extract(frame, FUZZ_CONFIG)
    wrong = Outcome(2, (), {**expected.counters, Counter.EVENTS: 0})
    found = Disagreement(frame, wrong, expected, ["counter events: kernel 0, reference 1"])
    path = repro.save(found, FUZZ_CONFIG, bytes(range(16)), tmp_path, cflags=("-DX",))
    saved = repro.load(path)
    assert (saved.frame, saved.config, saved.key, saved.cflags) == (
        frame,
        FUZZ_CONFIG,
        bytes(range(16)),
        ("-DX",),
    )
    assert repro.pcap_frame(path) == frame
    assert saved.record["reference"]["events"][0]["headers"]["Host"]["value"] == "h"
    assert saved.record["kernel"]["events"] == []
    assert outcome_class(expected).startswith("http_request/")


def test_fuzz_command_is_registered() -> None:
    args = build_parser().parse_args(["fuzz", "--examples", "5", "--target", "http", "--seed", "3"])
    assert (args.run, args.examples, args.target, args.seed) == (command.run, 5, "http", 3)


def test_redis_without_the_package_is_one_line(capsys) -> None:
    """No Redis server is needed to check the wiring: without redis-py the option fails before any BPF work."""
    try:
        import redis  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("redis-py is installed here; the missing-package message cannot be provoked")
    args = argparse.Namespace(redis="redis://localhost:6379/0", target="all")
    with pytest.raises(CommandError, match="--redis needs the redis package"):
        command.example_database(args)
    assert main(["fuzz", "--redis", "redis://localhost:1", "--examples", "1"]) == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .startswith("xhdr fuzz: error: --redis needs the redis")
    )


def test_example_database_is_a_folder_per_target(tmp_path) -> None:
    """Without --redis, examples go to disk, one folder per target (their examples have different shapes)."""
    args = argparse.Namespace(redis=None, target="http", db=tmp_path)
    database = command.example_database(args)
    assert isinstance(database, DirectoryBasedExampleDatabase)
    database.save(b"key", b"value")
    assert (tmp_path / "http").is_dir()
