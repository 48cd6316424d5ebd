"""Attaching and detaching an XDP program, in any network namespace: by netlink (pyroute2), or through a BPF
link (libbpf), whose attachment ends with the process that holds it.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import errno
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

from pyroute2 import IPRoute, NetlinkError

from harness.core.errors import UserError
from harness.core.namespace import inside
from harness.core.native import BPF_XDP, LinkCreateOpts, libbpf

XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2


class XdpMode(enum.Enum):
    NATIVE = "native"  # the driver runs the program (veth supports it)
    GENERIC = "generic"  # the kernel runs it on the skb, for any interface

    @property
    def flag(self) -> int:
        return XDP_FLAGS_DRV_MODE if self is XdpMode.NATIVE else XDP_FLAGS_SKB_MODE

    @property
    def reported(self) -> str:
        """What the kernel (and attached_mode(), and `ip link`) calls a program attached in this mode."""
        return "xdp" if self is XdpMode.NATIVE else "xdpgeneric"


class AttachError(UserError, RuntimeError):
    """The interface does not exist or refused the program; the message names both."""


def netlink(netns: str | None) -> IPRoute:
    """A netlink socket in ``netns`` (this process's namespace when None)."""
    return IPRoute(netns=netns, flags=0) if netns else IPRoute()


def interface_index(ipr: IPRoute, ifname: str, netns: str | None) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        where = f" in namespace {netns}" if netns else ""
        raise AttachError(f"no interface named {ifname!r}{where}; list them with `ip link`")
    return found[0]


def _set_xdp(ifname: str, netns: str | None, fd: int, flags: int) -> None:
    with netlink(netns) as ipr:
        index = interface_index(ipr, ifname, netns)
        ipr.link("set", index=index, xdp={"attrs": [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", flags)]})


def attach_xdp(fd: int, ifname: str, mode: XdpMode, netns: str | None = None) -> None:
    """Attaches, refusing to replace a program someone else attached (UPDATE_IF_NOEXIST)."""
    try:
        _set_xdp(ifname, netns, fd, mode.flag | XDP_FLAGS_UPDATE_IF_NOEXIST)
    except NetlinkError as error:
        raise AttachError(
            f"cannot attach XDP in {mode.value} mode to {ifname}: {error.args[-1]} (errno {error.code});"
            " is another program attached? (`ip link show`)"
        ) from None


def detach_xdp(ifname: str, mode: XdpMode, netns: str | None = None) -> None:
    """Detaches whatever is attached in this mode; an interface that is already gone is fine."""
    try:
        _set_xdp(ifname, netns, -1, mode.flag)
    except (AttachError, NetlinkError):
        pass


def attached_mode(ifname: str, netns: str | None = None) -> str | None:
    """'xdp' (native), 'xdpgeneric', or None: what the kernel reports for the interface."""
    return _xdp_attribute(ifname, netns, "IFLA_XDP_ATTACHED")


def attached_prog_id(ifname: str, netns: str | None = None) -> int | None:
    """The id of the XDP program attached to the interface, or None: tells one program from another."""
    return _xdp_attribute(ifname, netns, "IFLA_XDP_PROG_ID")


def _xdp_attribute(ifname: str, netns: str | None, name: str) -> Any:  # a str or an int, per attribute
    with netlink(netns) as ipr:
        link = ipr.get_links(interface_index(ipr, ifname, netns))[0]
        xdp = link.get_attr("IFLA_XDP")
        return xdp.get_attr(name) if xdp else None


def link_create(fd: int, ifname: str, netns: str | None, attach_type: int, flags: int = 0) -> int:
    """A BPF link from the program to the interface, made inside ``netns`` (an ifindex is per namespace): its
    descriptor, or a negative errno."""
    library = libbpf()
    with inside(netns):
        try:
            index = socket.if_nametoindex(ifname)
        except OSError:
            where = f" in namespace {netns}" if netns else ""
            raise AttachError(f"no interface named {ifname!r}{where}; list them with `ip link`") from None
        opts = LinkCreateOpts(sz=ctypes.sizeof(LinkCreateOpts), flags=flags)
        return library.bpf_link_create(fd, index, attach_type, ctypes.byref(opts))


@contextlib.contextmanager
def held_link(
    link: int, fallback: Callable[[], contextlib.AbstractContextManager[None]], refused: Callable[[str], str]
) -> Iterator[None]:
    """Holds the BPF link ``link_create()`` made (its descriptor) for the block. Where the kernel has no such
    link (EINVAL), the block runs inside ``fallback()`` instead; any other error is one AttachError line,
    ``refused(the error)``."""
    if link == -errno.EINVAL:
        with fallback():
            yield
        return
    if link < 0:
        raise AttachError(refused(f"{os.strerror(-link)} (errno {-link})"))
    try:
        yield
    finally:
        os.close(link)


@contextlib.contextmanager
def _netlink_attached(fd: int, ifname: str, mode: XdpMode, netns: str | None) -> Iterator[None]:
    """Attached by netlink for the block, detached after it."""
    attach_xdp(fd, ifname, mode, netns)
    try:
        yield
    finally:
        detach_xdp(ifname, mode, netns)


def attached_while_held(
    fd: int, ifname: str, mode: XdpMode, netns: str | None = None
) -> contextlib.AbstractContextManager[None]:
    """Attaches for the block through a BPF link (Linux 5.9+), by netlink where the kernel has no XDP links.

    A link is released when the last descriptor to it closes, so a process killed with SIGKILL leaves no
    program attached; a netlink attachment stays until someone detaches it.
    """
    return held_link(
        link_create(fd, ifname, netns, BPF_XDP, mode.flag),
        lambda: _netlink_attached(fd, ifname, mode, netns),
        lambda error: (
            f"cannot attach XDP in {mode.value} mode to {ifname}: {error};"
            " is another program attached? (`ip link show`)"
        ),
    )
