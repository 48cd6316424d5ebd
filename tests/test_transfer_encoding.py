"""R19's TE_NOT_CHUNKED on many Transfer-Encoding values, at every offset in a word: the kernel agrees with the
reference.

The kernel judges the last coding from one word that ends with the value (bpf/xhdr.c, ends_in_chunked()), so
the cases that matter are short values, the byte before "chunked", and where the value falls in its word.
"""

from __future__ import annotations

import pytest

from harness.core.driver import TestRunDriver, feed_opened
from harness.core.event import EventFlag
from harness.oracle.differences import outcome_differences
from harness.oracle.frames import FrameSpec, build
from harness.oracle.reference import extract

VALUES = [
    b"chunked",
    b"CHUNKED",
    b"Chunked ",
    b"gzip, chunked",
    b"gzip,chunked",
    b"gzip\t,\tchunked",
    b"gzip",
    b"chunked, gzip",
    b"xchunked",
    b"x-chunked",
    b"chunke",
    b"hunked",
    b"",
    b"chunked;q=1",
    b"chunked\x00",
]


def requests_at(offset: int) -> list[bytes]:
    pad = b" " * offset
    return [
        build(
            FrameSpec(payload=b"POST / HTTP/1.1\r\nTransfer-Encoding:" + pad + value + b"\r\nHost: h\r\n\r\n")
        )
        for value in VALUES
    ]


@pytest.mark.kernel
@pytest.mark.parametrize("offset", range(9))
def test_te_not_chunked_as_the_reference_says(program, offset: int) -> None:
    driver = TestRunDriver(program)
    frames = requests_at(offset)
    flagged = 0
    for frame, outcome in zip(frames, feed_opened(driver, frames), strict=True):
        expected = extract(frame, program.config, program.key)
        differences = outcome_differences(outcome, expected)
        assert not differences, f"{frame[54:]!r}:\n  " + "\n  ".join(differences)
        flagged += bool(expected.events[0].flags & EventFlag.TE_NOT_CHUNKED)
    assert flagged == 9  # the values above that do not end in the coding chunked
