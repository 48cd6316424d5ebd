"""Worker processes that die with the process that started them.

Spawned pool workers hold both ends of their task queue's pipe, so when the parent is killed outright
(SIGKILL, or SIGTERM's default action) they never read EOF and wait for work for good, each holding a
few hundred MB; the multiprocessing resource tracker in turn lives as long as any of them holds its pipe.
Each worker therefore asks the kernel to kill it when its parent dies (PR_SET_PDEATHSIG); once the
workers are gone the tracker reads EOF and exits as well.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import multiprocessing
import os
import signal
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when ``parent`` dies, and exit now if it already has (a pool initializer too).

    The request holds for the parent thread that spawned the worker, so pools must be used from a thread
    that lives as long as the pool (the commands use them from the main thread).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG): {os.strerror(error)}")
    if os.getppid() != parent:  # the parent died while this worker started: nothing will signal it
        os._exit(1)


def process_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes (not forked from a process that holds LLVM) that die with this one."""
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    )


def pids_running(matches: Callable[[list[bytes]], bool]) -> list[int]:
    """Pids of the live processes whose command line (split at NUL) ``matches``: how the tests check that
    nothing xhdr started outlives it."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue  # the process ended while the list was read
            if matches(argv):
                found.append(int(entry.name))
    return found
