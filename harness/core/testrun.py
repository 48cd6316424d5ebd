"""BPF_PROG_TEST_RUN from Python: runs the loaded program on packet bytes, no network needed.

Debian's libbpf.so.1 provides bpf_prog_test_run_opts; BCC's program fd is all it needs. Events the
program submits during a test run land in the same ring buffer as live traffic's.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
from collections.abc import Iterator

from harness.core.native import TestRunOpts, libbpf

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)
TC_ACT_OK = 0  # what a TC program returns to let the packet go on (the responses program, R24)


@dataclasses.dataclass(frozen=True)
class TestRunResult:
    verdict: int
    duration_ns: int  # the kernel's average per repetition


def test_run(prog_fd: int, frame: bytes, repeat: int = 1) -> TestRunResult:
    """Runs the program on one frame `repeat` times; the kernel reports the average time per run."""
    buffer = ctypes.create_string_buffer(frame, len(frame))
    opts = TestRunOpts(
        sz=ctypes.sizeof(TestRunOpts),
        data_in=ctypes.cast(buffer, ctypes.c_void_p),
        data_size_in=len(frame),
        repeat=repeat,
    )
    if libbpf().bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"BPF_PROG_TEST_RUN failed on a {len(frame)}-byte frame: {os.strerror(errno)}")
    return TestRunResult(verdict=opts.retval, duration_ns=opts.duration)


test_run.__test__ = False  # not a pytest test despite the name


@contextlib.contextmanager
def on_one_cpu() -> Iterator[int]:
    """The calling process held on one CPU (the lowest it may use) for the block; yields its number. A test run
    runs the program on the caller's CPU, so per-CPU maps, per-CPU counts and the caches a run finds are that
    CPU's throughout."""
    allowed = os.sched_getaffinity(0)
    cpu = min(allowed)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, allowed)
