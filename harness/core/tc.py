"""The extractor's programs on an interface: XDP for what arrives and, with ``responses`` on, the TC egress
program for what leaves (docs/EXTRACTION.md R24, R25).

The egress program is attached through a tcx link where the kernel has them (Linux 6.6+): the link ends with
the last descriptor to it, so a logger killed with SIGKILL leaves nothing behind. Older kernels (Debian 12's
6.1) get a netlink filter on the interface's clsact qdisc instead, named after the process that added it
(harness.core.ownership), removed when the block ends, and by the next xhdr run's sweeper
(``sweep_stale_filters``) when its process was killed. The clsact qdisc, if that process added it, goes
with its filter once no filter is left on it; its filter's name says so, as nothing else would after a kill.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
from collections.abc import Callable, Iterator

from pyroute2 import IPRoute, NetlinkError
from pyroute2 import netns as pr_netns

from harness.core.namespace import inside
from harness.core.native import BPF_TCX_EGRESS, libbpf
from harness.core.ownership import is_stale, owned_prefix
from harness.core.xdp import (
    AttachError,
    XdpMode,
    attached_while_held,
    held_link,
    interface_index,
    link_create,
    netlink,
)

MAX_QUERIED = 64  # programs one egress_programs() call can list
EGRESS = 0xFFFFFFF3  # TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS): the clsact qdisc's egress hook
INGRESS = 0xFFFFFFF2  # TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS): its ingress hook
FILTER_TAG = "responses"  # the end of a netlink filter's name: xhdr-<owner>-<tag>[-qdisc]-responses
ADDED_QDISC = "-qdisc"  # in a filter's name: the process that attached it also added the clsact qdisc


def egress_attached_while_held(
    fd: int, ifname: str, netns: str | None = None
) -> contextlib.AbstractContextManager[None]:
    """Attaches the TC program ``fd`` to the interface's egress for the block: a tcx link, or a netlink filter
    where the kernel has no tcx links (before 6.6)."""
    return held_link(
        link_create(fd, ifname, netns, BPF_TCX_EGRESS),
        lambda: netlink_egress_attached(fd, ifname, netns),
        lambda error: f"cannot attach the responses program to {ifname}'s egress: {error}",
    )


@contextlib.contextmanager
def netlink_egress_attached(fd: int, ifname: str, netns: str | None = None) -> Iterator[None]:
    """The TC program ``fd`` as a direct-action bpf filter on the interface's clsact egress for the block; the
    clsact qdisc is added if missing, and removed again if this added it and no other filter is left on it."""
    with netlink(netns) as ipr:
        index = interface_index(ipr, ifname, netns)
        try:
            ipr.tc("add", "clsact", index)
            added_qdisc = True
        except NetlinkError as error:
            if error.code != errno.EEXIST:
                raise AttachError(f"cannot add a clsact qdisc to {ifname}: {error.args[-1]}") from None
            added_qdisc = False
        name = f"{owned_prefix()}{ADDED_QDISC if added_qdisc else ''}-{FILTER_TAG}"
        try:
            ipr.tc(
                "add-filter",
                "bpf",
                index,
                ":1",
                fd=fd,
                name=name,
                parent=EGRESS,
                classid=1,
                direct_action=True,
            )
        except NetlinkError as error:
            if added_qdisc:
                ipr.tc("del", "clsact", index)
            raise AttachError(
                f"cannot attach the responses program to {ifname}'s egress: {error.args[-1]}"
            ) from None
    try:
        yield
    finally:
        with contextlib.suppress(AttachError, NetlinkError), netlink(netns) as ipr:
            _remove_filters(ipr, interface_index(ipr, ifname, netns), lambda found: found == name)


def sweep_stale_filters() -> list[str]:
    """Remove the egress filters of killed xhdr runs, in every named namespace and this one (the
    ``xhdr.sweepers`` entry point ``filters``), with the clsact qdiscs those runs added once no filter is left
    on them; the names removed. Only root can; anyone else removes none."""
    if os.geteuid() != 0:
        return []
    removed: list[str] = []
    for netns in (None, *sorted(pr_netns.listnetns())):
        with contextlib.suppress(OSError, NetlinkError), netlink(netns) as ipr:
            for link in ipr.get_links():
                removed += _remove_filters(ipr, link["index"], is_stale)
    return removed


def _remove_filters(ipr: IPRoute, index: int, doomed: Callable[[str], bool]) -> list[str]:
    """Deletes the interface's egress bpf filters whose names ``doomed`` picks, and the clsact qdisc when one of
    them says its run added it and no filter is left on it, in either direction; the filters' names."""
    removed = []
    for found in ipr.get_filters(index=index, parent=EGRESS):
        options = found.get_attr("TCA_OPTIONS")
        name = options.get_attr("TCA_BPF_NAME") if options else None
        if name and name.endswith(f"-{FILTER_TAG}") and doomed(name):  # an owned name: is_stale's or ours
            ipr.tc("del-filter", "bpf", index, found["handle"], parent=EGRESS, prio=found["info"] >> 16)
            removed.append(name)
    added_qdisc = any(name.endswith(f"{ADDED_QDISC}-{FILTER_TAG}") for name in removed)
    if added_qdisc and not any(ipr.get_filters(index=index, parent=hook) for hook in (EGRESS, INGRESS)):
        ipr.tc("del", "clsact", index)
    return removed


@contextlib.contextmanager
def extractor_attached(
    fd: int, responses_fd: int | None, ifname: str, mode: XdpMode, netns: str | None = None
) -> Iterator[None]:
    """The entry program ``fd`` on the interface for the block and, unless ``responses_fd`` is None, the
    responses program on its egress; both gone after the block, and after this process."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(attached_while_held(fd, ifname, mode, netns))
        if responses_fd is not None:
            stack.enter_context(egress_attached_while_held(responses_fd, ifname, netns))
        yield


def egress_programs(ifname: str, netns: str | None = None) -> list[int]:
    """The ids of the programs attached to the interface's egress through tcx links, first run first."""
    ids = (ctypes.c_uint32 * MAX_QUERIED)()
    count, flags = ctypes.c_uint32(MAX_QUERIED), ctypes.c_uint32(0)
    with inside(netns):
        index = socket.if_nametoindex(ifname)
        error = libbpf().bpf_prog_query(
            index, BPF_TCX_EGRESS, 0, ctypes.byref(flags), ids, ctypes.byref(count)
        )
    if error:
        raise AttachError(f"cannot list the programs on {ifname}'s egress: {os.strerror(-error)}")
    return list(ids[: count.value])
