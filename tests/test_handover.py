"""harness/core/handover.py: the extractor loaded by a helper process that hands its descriptors over and
exits, as ``xhdr log`` loads it (tests/test_cli_log.py checks the command's process itself)."""

from __future__ import annotations

import sys

import pytest

from harness.core.config import ExtractorConfig
from harness.core.cost import fast_open
from harness.core.counters import Counter, counts_difference
from harness.core.event import decode_event
from harness.core.handover import HandedOver, HandoverError, helpers_running, receive_fds
from harness.core.ringbuf import RingRecords
from harness.core.testrun import XDP_PASS, test_run
from harness.oracle.corpus import standard_frame
from harness.oracle.reference import extract

KEY = bytes(range(0x30, 0x40))
CONFIG = ExtractorConfig(ringbuf_pages=32)


@pytest.mark.kernel
def test_the_handed_over_extractor_logs_what_the_reference_says() -> None:
    """The descriptors arrived whole: the program runs its stages (the program array stayed filled), its ring
    holds the event, its counters count; and the helper is gone."""
    frame = fast_open(standard_frame())
    with HandedOver(CONFIG, key=KEY) as program, RingRecords(program.ring_fd) as ring:
        assert not helpers_running()
        before = program.counters()
        assert test_run(program.fd, frame).verdict == XDP_PASS
        moved = counts_difference(program.counters(), before)
        [record] = ring.take()
    assert moved[Counter.EVENTS] == moved[Counter.HTTP_REQUEST] == 1
    [expected] = extract(frame, CONFIG, KEY).events
    event = decode_event(record, CONFIG)
    assert event.headers == expected.headers and event.target == expected.target


@pytest.mark.kernel
def test_a_build_that_does_not_compile_is_one_line_and_leaves_no_helper() -> None:
    with pytest.raises(HandoverError) as caught:
        HandedOver(CONFIG, extra_cflags=("-DXHDR_MAX_REQUESTS=not_a_number",))
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and message.startswith("xhdr.c did not compile"), message
    assert not helpers_running()


# A helper whose load fails after writing more than a pipe holds, as BCC does with the verifier's log.
LOUD_FAILURE = (
    "import sys; sys.stderr.write('verifier log line\\n' * 20000 + 'ProgramError: rejected\\n'); sys.exit(1)"
)


def test_a_helper_that_fails_loudly_is_reported_by_its_last_line() -> None:
    """Its 360 kB of stderr must not block it: the failure comes back when it exits, with its reason (a
    helper blocked on a full pipe would only end with the load timeout's message)."""
    with pytest.raises(HandoverError, match=r"^ProgramError: rejected$"):
        receive_fds([sys.executable, "-c", LOUD_FAILURE], 3)
