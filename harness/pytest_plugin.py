"""xhdr's pytest plugin for any XDP program, no network needed (pytest11 entry point ``xhdr``).

Four fixtures that compose, each a small function, so a test reads as what it does:

- ``xhdr_load(path, program=None, cflags=())``: loads a BCC source or a clang/libbpf ``.bpf.o`` and returns
  its ``harness.core.loader.LoadedXdp`` (``.fd``, ``.map_fd(name)``, ``.lookup(map, key, size)``); all it
  loaded is unloaded after the test, whatever the test did.
- ``xhdr_frame(payload=..., **fields)``: an Ethernet frame from ``harness.oracle.frames.FrameSpec``'s fields
  (IPv4 or IPv6, ports, VLAN tags, TCP flags, options...), built with scapy.
- ``xhdr_test_run(program, frame, repeat=1)``: BPF_PROG_TEST_RUN of one frame; the verdict and the kernel's
  time per run. From its first test run of more than one repetition until the test ends, the program is held
  by the XDP dispatcher (harness/core/dispatcher.py says why), so that time is what live traffic would cost.
- ``xhdr_cost(program, frame, rounds=40, repeat=100)``: the program's cost on a frame next to the empty XDP
  program's, measured round by round in the same run, as ``xhdr bench`` measures
  (``harness.core.cost.CostFigure``: both medians and the median of the rounds' ratios), for a benchmark to
  record; timing belongs in benchmarks, not in assertions.

The lab (namespaces, veth, both XDP modes) is the ``xhdr-lab`` entry point, netns/pytest_plugin.py. A test
that loads programs needs root; without it the fixture skips the test and says so.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from harness.core.cost import CostFigure, measure_fd_cost
from harness.core.dispatcher import held_by_dispatcher
from harness.core.loader import LoadedXdp, load
from harness.core.testrun import TestRunResult, test_run
from harness.oracle.frames import FrameSpec, build

Loader = Callable[..., LoadedXdp]


@pytest.fixture
def xhdr_load() -> Iterator[Loader]:
    """``xhdr_load(path, program=None, cflags=())``: a loaded XDP program, unloaded after the test."""
    if os.geteuid() != 0:
        pytest.skip("xhdr_load needs root to load BPF programs")
    with contextlib.ExitStack() as loaded:

        def loader(path: str | Path, program: str | None = None, cflags: Sequence[str] = ()) -> LoadedXdp:
            return loaded.enter_context(load(Path(path), program, cflags))

        yield loader


@pytest.fixture
def xhdr_frame() -> Callable[..., bytes]:
    """``xhdr_frame(payload=b"GET / HTTP/1.1...", dport=80, family=4, ...)``: one client-to-gateway frame."""
    return lambda payload=b"", **fields: build(FrameSpec(payload=payload, **fields))


@pytest.fixture
def xhdr_test_run() -> Iterator[Callable[..., TestRunResult]]:
    """``xhdr_test_run(program, frame, repeat=1)``: the verdict and ns per run of a BPF_PROG_TEST_RUN.

    A program that no interface holds would make every test run of several repetitions rewrite the XDP
    dispatcher and wait 16 ms for RCU, then time its first run with the caches that wait left: so the first
    such test run of a program holds it until the end of the test. A single run does not touch the dispatcher
    (Linux 5.18 on).
    """
    with contextlib.ExitStack() as holds:
        held: list[object] = []

        def run(program: LoadedXdp, frame: bytes, repeat: int = 1) -> TestRunResult:
            if repeat > 1 and not any(program is other for other in held):
                holds.enter_context(held_by_dispatcher([program.fd]))
                held.append(program)
            return test_run(program.fd, frame, repeat)

        yield run


@pytest.fixture
def xhdr_cost() -> Callable[..., CostFigure]:
    """``xhdr_cost(program, frame, rounds=40, repeat=100)``: its median ns per run and the empty program's."""
    return lambda program, frame, **rounds_repeat: measure_fd_cost(program.fd, frame, **rounds_repeat)
