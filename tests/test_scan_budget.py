"""A scan that runs out of steps loses its flow: it never leaves the flow expecting a request it did not find.

The entry program writes the usual next state of a flow (a request right after the payload) before the scan
runs, so the common case needs one map lookup (bpf/xhdr.c, read_from()). The step bound keeps the scan within
its tail calls for every accepted configuration; this build shrinks the budget to one step per call so the
bound is broken on purpose, and the flow must then be lost (R15), not read again at a guessed boundary.
"""

from __future__ import annotations

import pytest

from harness.core.config import ExtractorConfig
from harness.core.counters import Counter
from harness.core.driver import TestRunDriver, feed_flows
from harness.core.program import Program
from harness.oracle.frames import FrameSpec, build

pytestmark = pytest.mark.kernel

# More lines than XHDR_SCAN_CALLS (25) one-step invocations of the scan read.
LONG = b"GET /long HTTP/1.1\r\n" + b"X-Filler: 1\r\n" * 40 + b"\r\n"
NEXT = b"GET /next HTTP/1.1\r\n\r\n"


def test_a_scan_out_of_steps_loses_its_flow() -> None:
    with Program(ExtractorConfig(), extra_cflags=("-DXHDR_STEPS_PER_CALL=1",)) as program:
        frames = [build(FrameSpec(LONG)), build(FrameSpec(NEXT, seq=1000 + len(LONG)))]
        long, following = feed_flows(TestRunDriver(program), [frames])
    assert not long.events and long.counters[Counter.FLOWS_LOST] == 1, long.counters
    assert not following.events and following.counters[Counter.OUT_OF_SYNC] == 1, following.counters
