"""Every byte value where the kernel decides "token or not" (RFC 9110 tchar): the kernel agrees with the reference.

The kernel classifies the bytes of methods, field names and auth schemes with word arithmetic instead of
a table (bpf/xhdr.c, non_tchar()); the fuzzer rarely lands on each of the 256 values in each position, so
every value is tried here in each of those places, at each offset within a word.
"""

from __future__ import annotations

import pytest

from harness.core.driver import TestRunDriver, feed_opened
from harness.oracle.differences import outcome_differences
from harness.oracle.frames import FrameSpec, build
from harness.oracle.reference import extract


def requests_with(byte: int) -> list[bytes]:
    """The byte in a method, in a configured and an unconfigured field name, and in an auth scheme."""
    b = bytes([byte])
    payloads = [b"G" + b + b"T / HTTP/1.1\r\nHost: h\r\n\r\n"]
    for offset in range(8):
        pad = b"a" * offset
        payloads.append(b"GET / HTTP/1.1\r\nX-" + pad + b + b"-Name: v\r\nHost: h\r\n\r\n")
    payloads.append(b"GET / HTTP/1.1\r\nHos" + b + b": h\r\nUser-Agent: u\r\n\r\n")
    payloads.append(b"GET / HTTP/1.1\r\nAuthorization: Be" + b + b"rer token\r\n\r\n")
    return [build(FrameSpec(payload=payload)) for payload in payloads]


@pytest.mark.kernel
@pytest.mark.parametrize("high_nibble", range(16), ids=lambda n: f"0x{n:x}0")
def test_every_byte_classified_as_the_reference_does(program, high_nibble: int) -> None:
    driver = TestRunDriver(program)
    frames = [
        frame for byte in range(high_nibble * 16, high_nibble * 16 + 16) for frame in requests_with(byte)
    ]
    for frame, outcome in zip(frames, feed_opened(driver, frames), strict=True):
        differences = outcome_differences(outcome, extract(frame, program.config, program.key))
        assert not differences, f"{frame[54:]!r}:\n  " + "\n  ".join(differences)
