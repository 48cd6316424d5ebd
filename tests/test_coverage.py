"""The coverage build (-DXHDR_COVERAGE): a frame known to take a branch moves that branch's label and no label
of a branch it does not take; the real build has no coverage map; the fuzz summary names the labels never hit.
Then the campaign's mutants (--mutants): made from a seed, edits in the payload, and a failing one is reported
as itself.

One coverage build of the fuzz configuration serves the module; the real build is the session's ``program``.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator

import pytest

from fuzz import differential
from fuzz.differential import FUZZ_CONFIG, FUZZ_KEY, Campaign, feed_items, mutants, payload_offset
from fuzz.runner import BatchTestRunDriver
from fuzz.summary import Setting, build_summary, render_markdown, render_text
from harness.core.coverage import Cover, CoverageReader, has_coverage_map
from harness.core.program import Program
from harness.oracle.frames import FrameSpec, build

pytestmark = pytest.mark.kernel

CLEAN = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
# (request payload, the label it must move). Each differs from CLEAN in the one thing its label is for.
CASES = {
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", Cover.OBS_FOLD),
    "ws-before-colon": (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", Cover.WS_BEFORE_COLON),
    "bad-line": (b"GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", Cover.BAD_LINE),
    "bare-lf": (b"GET / HTTP/1.1\nHost: a\n\n", Cover.REQUEST_LINE_LF),
    "repeated": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Cover.NAME_REPEATED),
    "truncated": (b"GET / HTTP/1.1\r\nHost: " + b"a" * 40 + b"\r\n\r\n", Cover.VALUE_TRUNCATED),
    "version": (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", Cover.VERSION_BAD),
    "content-length": (b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab", Cover.CONTENT_LENGTH),
    "chunked": (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", Cover.TE_CHUNKED),
    "chunk-walk": (
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2;x\r\nab\r\n0\r\n\r\n" + CLEAN,
        Cover.CHUNKS_END,
    ),
    "pipelined": (CLEAN + CLEAN, Cover.PIPELINED),
}


@pytest.fixture(scope="module")
def covered() -> Iterator[Program]:
    with Program(FUZZ_CONFIG, key=FUZZ_KEY, coverage=True) as program:
        yield program


def hits_of(program: Program, payload: bytes) -> dict[str, int]:
    """What one request (sent after its SYN) moved, per label."""
    reader = CoverageReader(program)
    before = reader.read()
    feed_items(BatchTestRunDriver(program), [build(FrameSpec(payload=payload))])
    after = reader.read()
    return {label: after[label] - before[label] for label in after}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_frame_moves_the_label_of_its_branch(covered: Program, case: tuple[bytes, Cover]) -> None:
    payload, label = case
    assert hits_of(covered, payload)[label.name] >= 1
    assert hits_of(covered, CLEAN)[label.name] == 0, "the clean request takes that branch too"


def test_a_clean_request_takes_the_expected_path(covered: Program) -> None:
    moved = {label for label, count in hits_of(covered, CLEAN).items() if count}
    assert {"TCP_PAYLOAD", "METHOD", "VERSION_11", "NAME_MATCHED", "EMPTY_LINE"} <= moved
    assert moved & {"FLOW_OPENED", "FLOW_REOPENED"}  # its SYN; earlier tests may have left the flow there
    assert "ENDS_WITH_PAYLOAD" in moved
    assert not moved & {"BAD_LINE", "OBS_FOLD", "HEADERS_CUT", "MID_STREAM", "OUT_OF_STEPS"}


def test_the_real_build_has_no_coverage_map(program: Program, covered: Program) -> None:
    assert not has_coverage_map(program)
    assert has_coverage_map(covered)
    with pytest.raises(ValueError, match="XHDR_COVERAGE"):
        CoverageReader(program)


def test_the_summary_names_labels_never_hit(covered: Program) -> None:
    campaign = Campaign(covered, target="http", coverage=True)
    assert not campaign.run(20, derandomize=True)
    summary = build_summary(campaign, Setting("http", None, None, ()), [], 0, [])
    coverage = summary["coverage"]
    assert coverage["labels"] == len(Cover)
    never = coverage["never_hit"]
    assert never and set(never) <= {label.name for label in Cover}
    assert "MID_STREAM" in never  # no example of target http sends a segment without its SYN
    assert coverage["hit"] == len(Cover) - len(never) > 0
    assert coverage["over_time"][-1][2] == coverage["hit"]
    assert "MID_STREAM" in render_text(summary)
    assert "MID_STREAM" in render_markdown(summary)


# --- Mutants (xhdr fuzz --mutants): cheap byte-level variants of each frame, compared like the frame itself


def test_mutants_edit_only_the_payload_and_repeat_for_a_seed() -> None:
    frame = build(FrameSpec(payload=CLEAN, vlan_ids=(7,), tcp_options=b"\x01\x01\x01\x01"))
    start = payload_offset(frame)
    assert frame[start:] == CLEAN
    made = mutants(frame, random.Random(5), 50)
    assert made == mutants(frame, random.Random(5), 50)
    assert len(made) == 50 and len(set(made)) > 40
    assert all(mutant[:start] == frame[:start] for mutant in made)
    assert sum(mutant != frame for mutant in made) >= 45  # an edit can put back the byte it replaced


def test_a_failing_mutant_is_reported_as_itself(covered: Program, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reference that is wrong only on mutants: the campaign must fail on a mutant and hand back that mutant
    (what the repro saves), and the item must replay as the failure it is."""
    made: set[bytes] = set()
    real_mutants, real_expectations = differential.mutants, differential.expectations

    def recorded(frame: bytes, rng: random.Random, count: int) -> list[bytes]:
        out = real_mutants(frame, rng, count)
        made.update(out)
        return out

    def wrong_on_mutants(item, config, key):
        expected = real_expectations(item, config, key)
        if item in made and expected[0].events:
            return [dataclasses.replace(expected[0], events=())]
        return expected

    monkeypatch.setattr(differential, "mutants", recorded)
    monkeypatch.setattr(differential, "expectations", wrong_on_mutants)
    campaign = Campaign(covered, target="http", mutants=4)
    found = campaign.run(200, derandomize=True)
    assert found and found[0].item in made
    assert campaign.progress.compared > campaign.progress.examples
    assert differential.replay(BatchTestRunDriver(covered), found[0].item, FUZZ_CONFIG, FUZZ_KEY)
