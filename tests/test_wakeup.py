"""The extractor wakes its consumer in batches: a CPU wakes it once it has written ``wake_bytes`` to the ring
buffer since it last did (bpf/xhdr.c, xhdr_emit; harness.core.program.wake_bytes). A consumer woken per event,
or per few, finds its caches cold each time, and costs more per event under a busy server.

Each CPU keeps the bytes it wrote since its last wakeup in the first word of its scratch value; the test pins
itself to one CPU so that every test run uses the same one.
"""

from __future__ import annotations

import ctypes
import os

import pytest

from bench.kernel_cost import RING_HEADER, benchmark_frame
from harness.core.config import ExtractorConfig
from harness.core.native import libbpf, map_info
from harness.core.program import WAKE_SHARE, Program, wake_bytes
from harness.core.ringbuf import RingRecords
from harness.core.testrun import on_one_cpu, test_run

pytestmark = pytest.mark.kernel


def unwoken_bytes(program: Program, cpu: int) -> int:
    """The bytes ``cpu`` wrote to the ring since it last woke the consumer: its scratch value's first word."""
    fd = program.bpf[b"scratch"].map_fd
    stride = (map_info(fd).value_size + 7) // 8 * 8  # per-CPU values are 8-byte aligned
    values = ctypes.create_string_buffer(stride * libbpf().libbpf_num_possible_cpus())
    key = ctypes.c_uint32(0)
    assert libbpf().bpf_map_lookup_elem(fd, ctypes.byref(key), values) == 0
    return int.from_bytes(values.raw[cpu * stride : cpu * stride + 4], "little")


def test_the_share_of_the_ring_left_unread_between_wakeups_is_bounded() -> None:
    """All CPUs together wake the consumer before 1/WAKE_SHARE of the ring is unread, whatever the ring."""
    for pages in (1, 64, 512, 4096):
        config = ExtractorConfig(ringbuf_pages=pages)
        assert 1 <= wake_bytes(config) * (os.cpu_count() or 1) <= config.ring_bytes // WAKE_SHARE


def test_a_cpu_wakes_the_consumer_once_it_has_written_wake_bytes() -> None:
    config = ExtractorConfig()
    frame = benchmark_frame()
    with on_one_cpu() as cpu, Program(config) as program, RingRecords(program.bpf[b"events"].map_fd) as ring:
        test_run(program.fd, frame)
        [record] = ring.take()
        written = RING_HEADER + len(record)
        assert unwoken_bytes(program, cpu) == written
        # Just below the mark: the bytes add up, nobody is woken.
        below = (wake_bytes(config) - 1) // written
        test_run(program.fd, frame, below - 1)
        assert len(ring.take()) == below - 1
        assert unwoken_bytes(program, cpu) == below * written < wake_bytes(config)
        # The record that reaches the mark wakes the consumer, and the count starts again.
        test_run(program.fd, frame)
        assert len(ring.take()) == 1
        assert unwoken_bytes(program, cpu) == 0
        test_run(program.fd, frame)
        assert unwoken_bytes(program, cpu) == written
