"""XDP programs held by the kernel's XDP dispatcher while they are timed with BPF_PROG_TEST_RUN.

Every XDP program that runs on a packet runs through the kernel's XDP dispatcher: a small trampoline with a
direct call to each program some interface has attached, and an indirect call for any other. A test run of
more than one repetition puts its program into the dispatcher for the run and takes it out again afterwards
(Linux 5.18 on; before, every test run did). Each of those changes rewrites the trampoline and then, since
a fix of December 2022 that stable kernels took too, waits for an RCU grace period, so every such test run:

- sleeps about 16 ms on this machine, whatever it times (a 20-run test run of 2 us each took 16 ms of wall
  time);
- starts its timed loop after that sleep, with the caches the CPU kept through it, and the first run pays
  for the misses. Measured: the same 20 runs of the extractor took 2,268 ns each, 815 ns held; the empty
  program 39 ns each over 100 runs, 23 ns held. So the floor and the extractor both came out too high, by
  an amount that depended on what else the machine did during the sleep.

A program some interface holds is only counted once more by a test run, with nothing rewritten. So the
programs are attached, for the block, in generic mode to veth ends of a namespace of their own that stay
down (no packet ever reaches them), through BPF links where the kernel has them: a process killed with
SIGKILL leaves nothing attached, and the next xhdr run's sweeper removes the namespace by its owned name.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence

from pyroute2 import IPRoute
from pyroute2 import netns as pr_netns

from harness.core.ownership import owned_prefix
from harness.core.xdp import XdpMode, attached_while_held

DISPATCHER_MAX = 48  # programs the kernel's XDP dispatcher calls directly (BPF_DISPATCHER_MAX)
_HOLDS = itertools.count()  # numbers this process's holds, so several can be open at once


@contextlib.contextmanager
def held_by_dispatcher(fds: Sequence[int]) -> Iterator[str]:
    """The XDP programs ``fds`` attached in generic mode, one to each end of veth pairs in a scratch namespace,
    for the block; yields the namespace's name. Beyond DISPATCHER_MAX the kernel would call a program
    indirectly all the same, so more are refused."""
    if len(fds) > DISPATCHER_MAX:
        raise ValueError(f"{len(fds)} programs: the XDP dispatcher holds at most {DISPATCHER_MAX}")
    name = f"{owned_prefix()}-held{next(_HOLDS)}"
    pr_netns.create(name)
    try:
        ends = [f"held{n}" for n in range(len(fds) + len(fds) % 2)]
        with IPRoute(netns=name, flags=0) as ipr:
            for first, second in zip(ends[::2], ends[1::2], strict=True):
                ipr.link("add", ifname=first, kind="veth", peer={"ifname": second})
        with contextlib.ExitStack() as stack:
            for fd, end in zip(fds, ends, strict=False):
                stack.enter_context(attached_while_held(fd, end, XdpMode.GENERIC, name))
            yield name
    finally:
        pr_netns.remove(name)
