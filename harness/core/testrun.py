"""BPF_PROG_TEST_RUN from Python: runs the loaded program on packet bytes, no network needed.

Debian's libbpf.so.1 provides bpf_prog_test_run_opts; BCC's program fd is all it needs. Events the
program submits during a test run land in the same ring buffer as live traffic's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import functools
import os

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)


class _TestRunOpts(ctypes.Structure):
    """struct bpf_test_run_opts of libbpf 1.x."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


@dataclasses.dataclass(frozen=True)
class TestRunResult:
    verdict: int
    duration_ns: int  # the kernel's average per repetition


@functools.cache
def libbpf() -> ctypes.CDLL:
    """Debian's libbpf, errno kept: test runs here, and map reads and writes by fd anywhere
    (``bpf_map_lookup_elem``, ``bpf_map_update_elem``: 0 or a negative errno)."""
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    library = ctypes.CDLL(name, use_errno=True)
    library.bpf_prog_test_run_opts.argtypes = [ctypes.c_int, ctypes.POINTER(_TestRunOpts)]
    library.bpf_prog_test_run_opts.restype = ctypes.c_int
    return library


def test_run(prog_fd: int, frame: bytes, repeat: int = 1) -> TestRunResult:
    """Runs the program on one frame `repeat` times; the kernel reports the average time per run."""
    buffer = ctypes.create_string_buffer(frame, len(frame))
    opts = _TestRunOpts(
        sz=ctypes.sizeof(_TestRunOpts),
        data_in=ctypes.cast(buffer, ctypes.c_void_p),
        data_size_in=len(frame),
        repeat=repeat,
    )
    if libbpf().bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"BPF_PROG_TEST_RUN failed on a {len(frame)}-byte frame: {os.strerror(errno)}")
    return TestRunResult(verdict=opts.retval, duration_ns=opts.duration)


test_run.__test__ = False  # not a pytest test despite the name
