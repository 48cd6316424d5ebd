"""Hostile and broken input through BPF_PROG_TEST_RUN: always XDP_PASS, the right counter, no wrong event.

The corpus covers one frame of each kind over every driver; here go the frames a veth pair cannot carry
(larger than its MTU) and a seeded batch of junk, truncations and byte flips, compared with the reference.
Each frame follows the SYN that opens its flow (``feed_opened``), as ``reference.extract`` assumes.
"""

from __future__ import annotations

import random

import pytest

from harness.core.counters import Counter
from harness.core.driver import TestRunDriver, feed_opened
from harness.core.event import EventFlag, SlotFlag
from harness.oracle import reference
from harness.oracle.corpus import standard_frame
from harness.oracle.differences import outcome_differences
from harness.oracle.frames import FrameSpec, build

pytestmark = pytest.mark.kernel

SEED = 20261124
STANDARD = standard_frame()


def _header_request(value_len: int) -> bytes:
    return (
        b"GET /big HTTP/1.1\r\nHost: h\r\nX-Request-ID: " + b"r" * value_len + b"\r\nUser-Agent: ua\r\n\r\n"
    )


def _junk_frames() -> list[bytes]:
    """Random payloads to watched ports, and the standard request truncated and mutated at random."""
    rng = random.Random(SEED)
    frames = [build(FrameSpec(payload=rng.randbytes(rng.randint(1, 1400)))) for _ in range(40)]
    frames += [STANDARD[: rng.randint(14, len(STANDARD) - 1)] for _ in range(40)]
    for _ in range(80):
        mutated = bytearray(STANDARD)
        for _ in range(rng.randint(1, 6)):
            mutated[rng.randrange(14, len(mutated))] = rng.randrange(256)
        frames.append(bytes(mutated))
    return frames


BIG_FRAMES = {
    "1500-byte header value": build(FrameSpec(payload=_header_request(1500))),
    "header past the scan limit": build(FrameSpec(payload=_header_request(3000))),
    "3000-byte target": build(FrameSpec(payload=b"GET /" + b"t" * 3000 + b" HTTP/1.1\r\nHost: h\r\n\r\n")),
    "3000 bytes of NUL": build(FrameSpec(payload=bytes(3000))),
}


@pytest.fixture(scope="module")
def test_run_driver(program) -> TestRunDriver:
    return TestRunDriver(program)


@pytest.mark.parametrize("name", BIG_FRAMES)
def test_frames_larger_than_the_mtu(test_run_driver, name: str) -> None:
    frame = BIG_FRAMES[name]
    (outcome,) = feed_opened(test_run_driver, [frame])
    expected = reference.extract(frame, test_run_driver.program.config, test_run_driver.program.key)
    assert not outcome_differences(outcome, expected), "\n".join(outcome_differences(outcome, expected))


def test_long_header_is_logged_cut_at_the_scan_limit(test_run_driver) -> None:
    """A header longer than the view is still logged, truncated, with the scan-limit flag: never a wrong value."""
    (outcome,) = feed_opened(test_run_driver, [BIG_FRAMES["header past the scan limit"]])
    (event,) = outcome.events
    request_id = event.header("X-Request-ID")
    assert request_id.value == b"r" * test_run_driver.program.config.max_value_len
    assert request_id.flags == SlotFlag.PRESENT | SlotFlag.TRUNCATED | SlotFlag.CUT
    assert event.flags == EventFlag.SCAN_LIMIT | EventFlag.HEADERS_CUT


def test_junk_truncations_and_mutations(test_run_driver) -> None:
    frames = _junk_frames()
    outcomes = feed_opened(test_run_driver, frames)
    failures = []
    seen = set()
    for index, (frame, outcome) in enumerate(zip(frames, outcomes, strict=True)):
        expected = reference.extract(frame, test_run_driver.program.config, test_run_driver.program.key)
        seen.add(expected.outcome)
        if differences := outcome_differences(outcome, expected):
            failures.append(f"frame {index} ({frame.hex()}): " + "; ".join(differences))
    assert not failures, f"{len(failures)} of {len(frames)} frames differ:\n" + "\n".join(failures[:5])
    # The batch is only worth something if it reaches several outcomes, requests among them.
    assert {Counter.MALFORMED, Counter.NOT_HTTP, Counter.HTTP_REQUEST} <= seen
