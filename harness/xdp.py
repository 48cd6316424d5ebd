"""Attaching and detaching an XDP program by netlink, in any network namespace (pyroute2)."""

from __future__ import annotations

import enum

from pyroute2 import IPRoute, NetlinkError

XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2


class XdpMode(enum.Enum):
    NATIVE = "native"  # the driver runs the program (veth supports it)
    GENERIC = "generic"  # the kernel runs it on the skb, for any interface

    @property
    def flag(self) -> int:
        return XDP_FLAGS_DRV_MODE if self is XdpMode.NATIVE else XDP_FLAGS_SKB_MODE


class AttachError(RuntimeError):
    """The interface does not exist or refused the program; the message names both."""


def _ifindex(ipr: IPRoute, ifname: str, netns: str | None) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        where = f" in namespace {netns}" if netns else ""
        raise AttachError(f"no interface named {ifname!r}{where}; list them with `ip link`")
    return found[0]


def _set_xdp(ifname: str, netns: str | None, fd: int, flags: int) -> None:
    with IPRoute(netns=netns, flags=0) if netns else IPRoute() as ipr:
        index = _ifindex(ipr, ifname, netns)
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
    with IPRoute(netns=netns, flags=0) if netns else IPRoute() as ipr:
        index = _ifindex(ipr, ifname, netns)
        link = ipr.get_links(index)[0]
        xdp = link.get_attr("IFLA_XDP")
        return xdp.get_attr("IFLA_XDP_ATTACHED") if xdp else None
