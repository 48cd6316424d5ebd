"""R13's trimming at every position within a word: the kernel agrees with the reference.

The kernel trims a value from the whitespace marks of the last two words that hold anything else
(bpf/xhdr.c, scan_value() and finish_value()), and drops a final CR before trimming again; the cases that
matter are where the CR, the blanks and the last byte fall on either side of a word boundary, so each
value is tried at every offset from the start of a word.
"""

from __future__ import annotations

import pytest

from harness.core.driver import TestRunDriver, feed_opened
from harness.oracle.differences import outcome_differences
from harness.oracle.frames import FrameSpec, build
from harness.oracle.reference import extract

VALUES = [
    b"",
    b" ",
    b"\r",
    b"\r\r",
    b"a\r",
    b"a \r",
    b"a\r ",
    b"a\r \r",
    b" \t a b \t ",
    b"abcdefg\r",
    b"abcdefgh \r",
    b"\r" + b" " * 9,
    b"a" + b" " * 9 + b"\r",
    b"a" + b" " * 15 + b"\r",
    b"ab\rcd" + b"\t" * 10,
]


def requests_at(offset: int) -> list[bytes]:
    """Each value in a logged header (Host) and a hashed one (Cookie), ``offset`` bytes into a word."""
    pad = b" " * offset
    return [
        build(FrameSpec(payload=b"GET / HTTP/1.1\r\n" + name + b":" + pad + value + b"\r\nX: y\r\n\r\n"))
        for value in VALUES
        for name in (b"Host", b"Cookie")
    ]


@pytest.mark.kernel
@pytest.mark.parametrize("offset", range(9))
def test_trimmed_as_the_reference_trims(program, offset: int) -> None:
    driver = TestRunDriver(program)
    frames = requests_at(offset)
    for frame, outcome in zip(frames, feed_opened(driver, frames), strict=True):
        differences = outcome_differences(outcome, extract(frame, program.config, program.key))
        assert not differences, f"{frame[54:]!r}:\n  " + "\n  ".join(differences)
