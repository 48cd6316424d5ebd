"""Removing the namespaces killed xhdr runs left behind: the ``labs`` sweeper every command runs first.

Kept apart from netns/lab.py, which builds labs and imports scapy and the frame builders: every command runs
this sweeper, and ``xhdr log`` would otherwise hold all of that for as long as it logs.
"""

from __future__ import annotations

import os
import signal

from pyroute2 import netns as pr_netns

from harness.core.ownership import is_stale


def _kill_processes_in(name: str) -> None:
    """Kill what still runs in a namespace; otherwise it would keep the namespace and veth alive."""
    for pid in pr_netns.ns_pids().get(name, []):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def remove_netns(name: str) -> bool:
    """Kill what still runs in a named namespace, then delete it; False when it was gone already (a
    concurrent sweeper may have won). What runs there may have outlived the process xhdr started and
    stopped: an nginx worker whose master was killed, a recorder orphaned by a kill. Left alone, it would
    keep the namespace and its veth alive, and its CPU busy, with no name left to find it by."""
    _kill_processes_in(name)
    try:
        pr_netns.remove(name)
    except FileNotFoundError:
        return False
    return True


def sweep_stale() -> list[str]:
    """Delete the namespaces of earlier xhdr runs whose process is dead, and return their names.

    Names carry the process that made them (``xhdr-<pid>-<start time>-...``), so a namespace of a live
    process - a parallel run, or this one - is never touched (harness.core.ownership says which are stale,
    and removes the run's scratch directory). Processes still running in a stale namespace, such as a
    recorder orphaned by the kill, are killed first (remove_netns()). harness/cli/main.py runs this before
    every command (the ``xhdr.sweepers`` entry point); only root can remove namespaces, so for anyone else
    it leaves them to the next run as root.
    """
    if os.geteuid() != 0:
        return []
    removed = []
    for name in sorted(pr_netns.listnetns()):
        if is_stale(name) and remove_netns(name):
            removed.append(name)
    return removed
