"""Differential fuzzing in the normal suite: a bounded derandomized campaign of every kind and one of flows, the
planted bug, the saved repros, and a sample that proves the lab path agrees with the test-run path.

Longer campaigns are ``xhdr fuzz``'s job; here every run is derandomized, so a failure is the same failure on
every machine and rerun.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz import repro
from fuzz.differential import (
    FUZZ_CONFIG,
    FUZZ_KEY,
    FUZZ_RULES_CONFIG,
    Campaign,
    feed_items,
    frames_of,
    replay,
)
from fuzz.lab_sample import LAB_MAX_FRAME, lab_differences
from fuzz.runner import BatchTestRunDriver
from fuzz.strategies import batches, sent
from harness.cli.main import main
from harness.core.config import ExtractorConfig
from harness.core.counters import Counter
from harness.core.driver import TestRunDriver
from harness.core.program import Program
from harness.oracle import reference

pytestmark = pytest.mark.kernel

BOUNDED_EXAMPLES = 500
BOUNDED_MUTANTS = 8  # per frame: cheap items beside the examples, as `xhdr fuzz --mutants` makes them
FLOW_EXAMPLES = 500  # 1-4 flows each, about 16,000 frames: ten seconds; see PLANTED_BUDGET for why not fewer
RESPONSE_EXAMPLES = 200  # connections with up to 8 server segments each: about 8,000 frames, nine seconds
# What a run of flows must reach, or the flow layer (R15-R18) would pass without being exercised.
FLOW_OUTCOMES = {
    "http_request",
    "mid_stream",
    "out_of_sync",
    "retransmitted",
    "out_of_order",
    "body",
    "continued",
    "no_payload",
}
PLANTED_BUG_FLAG = "-DXHDR_PLANTED_BUG"
# Examples to find the planted bug within. Hypothesis draws about one choice in twenty from the literals of the
# code base's loaded modules, so any change to the code moves the example where a derandomized run first hits
# it: from 200 to 1,200 examples over this repository's history.
PLANTED_BUDGET = 4000
LAB_FRAMES = 30
FLAGS = r"(-|[A-Z_]+(\+[A-Z_]+)*)"
NAMED_CLASS = re.compile(rf"[a-z0-9_]+/{FLAGS}/{FLAGS}/\d+")  # outcome/event flags/slot flags/events
REPROS = repro.load_all()


@pytest.fixture(scope="module")
def programs() -> Iterator[dict[ExtractorConfig, Program]]:
    """Programs by configuration, built on first use and shared by the tests of this module."""
    built: dict[ExtractorConfig, Program] = {}
    yield built
    for program in built.values():
        program.close()


def program_for(programs: dict[ExtractorConfig, Program], config: ExtractorConfig) -> Program:
    if config not in programs:
        programs[config] = Program(config, key=FUZZ_KEY)
    return programs[config]


def test_bounded_differential_campaign(programs) -> None:
    """A few thousand frames of every kind and byte-level mutants of them: the kernel equals the reference on
    each, and the run reaches most outcome counters (a strategy that stopped producing requests would pass
    vacuously otherwise)."""
    campaign = Campaign(program_for(programs, FUZZ_CONFIG), target="all", mutants=BOUNDED_MUTANTS)
    found = campaign.run(BOUNDED_EXAMPLES, derandomize=True)
    assert not found, "\n".join(str(disagreement) for disagreement in found)
    assert campaign.progress.examples >= BOUNDED_EXAMPLES
    assert campaign.progress.compared >= BOUNDED_MUTANTS * BOUNDED_EXAMPLES, "the mutants were not compared"
    reached = {name.split("/")[0] for name in campaign.progress.classes}
    wanted = {"http_request", "not_http", "malformed", "port_not_watched", "vlan_too_deep", "not_tcp"}
    assert wanted <= reached, f"the campaign never reached {sorted(wanted - reached)}"
    assert len(campaign.progress.classes) >= 30, f"only {len(campaign.progress.classes)} outcome classes"


def test_flow_campaign(programs) -> None:
    """Flows only (target ``flows``): every frame of every flow equals a fresh FlowTracker's expectation, and
    the run reaches the flow outcomes of R15-R18."""
    campaign = Campaign(program_for(programs, FUZZ_CONFIG), target="flows")
    found = campaign.run(FLOW_EXAMPLES, derandomize=True)
    assert not found, "\n".join(str(disagreement) for disagreement in found)
    assert campaign.progress.examples >= FLOW_EXAMPLES
    reached = {name.split("/")[0] for name in campaign.progress.classes}
    assert FLOW_OUTCOMES <= reached, f"the flow campaign never reached {sorted(FLOW_OUTCOMES - reached)}"


def test_response_campaign(programs) -> None:
    """Connections with the server's segments woven in (target ``responses``): every frame, arriving or leaving,
    equals a fresh FlowTracker's expectation, and the run reaches both response outcomes of R25 and segments
    that are no response."""
    campaign = Campaign(program_for(programs, FUZZ_CONFIG), target="responses")
    found = campaign.run(RESPONSE_EXAMPLES, derandomize=True)
    assert not found, "\n".join(str(disagreement) for disagreement in found)
    reached = {name.split("/")[0] for name in campaign.progress.classes}
    wanted = {"responses", "responses_unmatched", "not_a_response", "http_request"}
    assert wanted <= reached, f"the response campaign never reached {sorted(wanted - reached)}"


RULE_EXAMPLES = 200


def test_rule_campaign(programs) -> None:
    """Flows judged by rules (R27-R29): every frame equals a fresh FlowTracker's expectation, verdicts included,
    and the run reaches dropped segments, blocked flows and withheld events."""
    program = program_for(programs, FUZZ_RULES_CONFIG)
    withheld = program.counters()[Counter.EVENTS_WITHHELD]
    campaign = Campaign(program, target="flows")
    found = campaign.run(RULE_EXAMPLES, derandomize=True)
    assert not found, "\n".join(str(disagreement) for disagreement in found)
    assert program.counters()[Counter.EVENTS_WITHHELD] > withheld, "no event was withheld"
    classes = campaign.progress.classes
    assert any("DROPPED" in name for name in classes), "no segment was dropped"
    assert any(name.startswith("blocked/") for name in classes), "no blocked flow was read on"


def test_batch_driver_equals_the_plain_driver(programs) -> None:
    """The batched driver is only a shortcut: the same items (frames and flows) give the same outcomes as
    TestRunDriver."""
    program = program_for(programs, FUZZ_CONFIG)
    items = []

    @settings(
        max_examples=40,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(batches(FUZZ_CONFIG))
    def collect(drawn: list) -> None:
        items.extend(drawn)

    collect()
    batched = feed_items(BatchTestRunDriver(program), items)  # each item after its set-up: same state
    plain = feed_items(TestRunDriver(program), items)
    assert batched == plain
    assert sum(outcome.counters[Counter.EVENTS] for outcomes in batched for outcome in outcomes) > 0


def test_planted_off_by_one_is_found_and_shrunk(programs, tmp_path) -> None:
    """The extractor built with a deliberate off-by-one (a value of exactly max_value_len bytes flagged
    TRUNCATED): the full campaign (every layer mixed) finds it within the budget, shrinks it to a one-header request, and
    the saved repro replays (failing on the planted build, passing on the real one)."""
    with Program(FUZZ_CONFIG, key=FUZZ_KEY, extra_cflags=(PLANTED_BUG_FLAG,)) as planted:
        campaign = Campaign(planted, target="all")
        started = time.perf_counter()
        found = campaign.run(PLANTED_BUDGET, derandomize=True)
        elapsed = time.perf_counter() - started
        assert found, f"the planted bug was not found in {campaign.progress.examples} examples"
        first_at, first_s = campaign.progress.first_failure
        print(
            f"planted bug: first seen at example {first_at} after {first_s:.2f}s; shrunk after {elapsed:.1f}s"
        )
        (shrunk,) = found
        assert first_at <= PLANTED_BUDGET
        assert any("TRUNCATED" in line for line in shrunk.differences), shrunk.differences
        payload = reference.read_layers(shrunk.frame, FUZZ_CONFIG)[1]
        assert len(payload) <= 60, f"not shrunk: {payload!r}"
        # the planted bug's trigger: a logged value of exactly max_value_len bytes (whichever header and
        # whichever request of the frame the shrinker settled on)
        lengths = [
            value.length for event in shrunk.expected.events for value in event.headers if value.present
        ]
        assert FUZZ_CONFIG.max_value_len in lengths, (lengths, payload)
        path = repro.save(shrunk, FUZZ_CONFIG, FUZZ_KEY, tmp_path, cflags=(PLANTED_BUG_FLAG,))
        saved = repro.load(path)
        assert saved.item == shrunk.item
        assert repro.pcap_frames(path) == sent(saved.item)
        assert replay(BatchTestRunDriver(planted), saved.item, saved.config, saved.key)
    real = program_for(programs, FUZZ_CONFIG)
    assert not replay(BatchTestRunDriver(real), saved.item, saved.config, saved.key)


def test_corpus_is_not_empty() -> None:
    """Replay below must have something to replay: at least the planted bug's shrunk repro is kept."""
    assert REPROS, f"no repro files in {repro.CORPUS_DIR}"


@pytest.mark.parametrize("saved", REPROS, ids=[saved.path.stem for saved in REPROS])
def test_saved_repro_replays(programs, saved: repro.Repro) -> None:
    """Every disagreement the fuzzer ever found (a frame or a flow) stays fixed on the real build; the pcap
    holds the same frames."""
    assert repro.pcap_frames(saved.path) == sent(saved.item)
    program = program_for(programs, saved.config)
    differences = replay(BatchTestRunDriver(program), saved.item, saved.config, program.key)
    assert not differences, f"{saved.path.name}: " + "; ".join(differences)


@pytest.mark.lab
def test_lab_agrees_with_test_run_on_fuzzed_frames(program) -> None:
    """A sample of fuzzed frames over the veth pair, native and generic: the same events and counters as
    BPF_PROG_TEST_RUN gives, and as the reference predicts."""
    frames: list[bytes] = []

    @settings(
        max_examples=60,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(batches(program.config))
    def collect(drawn: list) -> None:
        frames.extend(frame for item in drawn for frame in frames_of(item) if len(frame) <= LAB_MAX_FRAME)

    collect()
    sample = frames[:: max(1, len(frames) // LAB_FRAMES)][:LAB_FRAMES]
    assert len(sample) == LAB_FRAMES
    differences = lab_differences(program, sample)
    assert not differences, "\n".join(differences[:5])
    requests = sum(
        reference.extract(f, program.config, program.key).counters[Counter.HTTP_REQUEST] for f in sample
    )
    assert requests > 0, "the sample held no request, so it proved little"


def test_fuzz_command_runs_a_campaign(tmp_path, capsys) -> None:
    """``xhdr fuzz`` end to end: exit 0 on agreement, the progress line on stderr, a JSON summary with the
    throughput and each stage of the time split measured, the same in markdown with outcome classes named by
    their flags, and no repro when nothing disagreed."""
    summary_path, markdown_path = tmp_path / "summary.json", tmp_path / "summary.md"
    argv = ["fuzz", "--examples", "60", "--seed", "1", "--corpus", str(tmp_path / "corpus")]
    argv += ["--json", str(summary_path), "--markdown", str(markdown_path)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "examples 60 |" in captured.err and "outcome classes" in captured.err
    summary = json.loads(summary_path.read_text())
    assert summary["examples"] == 60 and summary["frames"] >= 60 and summary["repros"] == []
    assert summary["database"] is None and "example database off (--seed 1" in captured.out
    split = summary["time_split_seconds"]
    assert list(split) == ["generation", "test_run", "reference", "compare", "other"]
    assert split["generation"] > 0 and split["test_run"] > 0 and split["reference"] > 0, split
    assert sum(split.values()) == pytest.approx(summary["seconds"], abs=0.005)
    assert summary["examples_per_second"] > 0 and "60 examples" in captured.out
    assert summary["outcome_classes"] and all(map(NAMED_CLASS.fullmatch, summary["outcome_classes"]))
    assert any("/PRESENT" in name for name in summary["outcome_classes"])
    assert not (tmp_path / "corpus").exists()
    markdown = markdown_path.read_text()
    assert markdown.startswith("### xhdr fuzz: target `all`, no disagreement\n")
    assert f"| 60 | {summary['frames']} |" in markdown and "| generation |" in markdown
    assert all(f"- `{name}`" in markdown for name in summary["outcome_classes"])
    # The default lab sample went over the veth pair in both modes and agreed with the test run.
    assert summary["lab_sample"]["frames"] > 0 and summary["lab_sample"]["differences"] == []
    assert "lab sample:" in captured.out and "all agree" in captured.out
