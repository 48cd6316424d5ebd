"""The extractor's programs on an interface: XDP for what arrives and, with ``responses`` on, the TC egress
program for what leaves (docs/EXTRACTION.md R24, R25).

The egress program is attached through a tcx link (Linux 6.6+), which ends with the last descriptor to it, so
a logger killed with SIGKILL leaves nothing on the interface's egress either. Kernels without tcx links are
refused with one line instead of falling back to a netlink filter that would outlive a killed logger.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import socket
from collections.abc import Iterator

from harness.core.namespace import inside
from harness.core.native import BPF_TCX_EGRESS, libbpf
from harness.core.xdp import AttachError, XdpMode, attached_while_held, link_create

MAX_QUERIED = 64  # programs one egress_programs() call can list


@contextlib.contextmanager
def egress_attached_while_held(fd: int, ifname: str, netns: str | None = None) -> Iterator[None]:
    """Attaches the TC program ``fd`` to the interface's egress for the block, through a tcx link."""
    link = link_create(fd, ifname, netns, BPF_TCX_EGRESS)
    if link == -errno.EINVAL:
        raise AttachError(
            f"responses need tcx links (Linux 6.6 or later) and this kernel is {platform.release()}; "
            "set responses = false in the config"
        )
    if link < 0:
        raise AttachError(
            f"cannot attach the responses program to {ifname}'s egress: {os.strerror(-link)} (errno {-link})"
        )
    try:
        yield
    finally:
        os.close(link)


@contextlib.contextmanager
def extractor_attached(
    fd: int, responses_fd: int | None, ifname: str, mode: XdpMode, netns: str | None = None
) -> Iterator[None]:
    """The entry program ``fd`` on the interface for the block and, unless ``responses_fd`` is None, the
    responses program on its egress; both through links, so nothing stays attached after this process."""
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
