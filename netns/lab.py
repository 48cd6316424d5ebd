"""Two network namespaces joined by a veth pair: the place where the extractor meets real traffic.

The client namespace sends (raw frames or real HTTP clients), the gateway namespace receives (the XDP
program is attached to the gateway's veth end by harness code, the recording server listens there).
Every lab has a unique name prefix, so parallel runs never collide and leftovers of a killed run can
be recognised by the owner in their name (pid and start time) that no longer runs, and swept away.
"""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from pyroute2 import IPRoute
from pyroute2 import netns as pr_netns
from pyroute2.ethtool import Ethtool
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD
from pyroute2.netlink.rtnl.ifinfmsg import IFF_MULTICAST, IFF_NOARP

from harness.core.errors import UserError
from harness.core.ownership import owned_prefix
from harness.core.wait import DeadlineExceeded, wait_until
from harness.core.xdp import XdpMode, attach_xdp, detach_xdp
from netns.addressing import CLIENT, GATEWAY, IPV4_PREFIXLEN, IPV6_PREFIXLEN, Endpoint
from netns.cleanup import CleanupStack, TeardownError, describe
from netns.nsenter import inside, socket_in
from netns.sweep import remove_netns, sweep_stale

ETH_P_ALL = 0x0003
NUD_PERMANENT = 0x80
STOP_GRACE_S = 3.0
# Offloads that let a veth carry frames larger than its MTU (see _as_wire).
WIRE_OFFLOADS = ("tx-tcp-segmentation", "tx-tcp6-segmentation", "tx-generic-segmentation", "rx-gro")


class LabProcessError(UserError, RuntimeError):
    """A program run inside a lab namespace failed; the message is one line with its last stderr line."""


@dataclasses.dataclass(frozen=True)
class Host:
    """One side of the lab: its namespace, its veth end (index valid inside that namespace), addresses."""

    netns: str
    ifname: str
    ifindex: int
    endpoint: Endpoint


def _stop_process(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE_S) -> None:
    """Terminate, give it ``grace`` seconds, then kill: a stuck child must not hang the teardown."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


def last_line(data: bytes) -> str:
    """The last non-blank line of a program's output: usually the error that matters."""
    lines = [line for line in data.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"


def _quiet_ipv6(ns: str, ifname: str) -> None:
    """Stops the IPv6 chatter a new link sends by itself (router solicitations, MLD reports).

    Those packets would reach the extractor in the middle of a test and move its counters; with them
    gone, every counter movement in a lab is traffic a test sent.
    """
    # No link-local address (so no DAD for it), no DAD at all, no router solicitations.
    settings = {"addr_gen_mode": "1", "accept_dad": "0", "router_solicitations": "0", "accept_ra": "0"}
    with inside(ns):
        for name, value in settings.items():
            Path(f"/proc/sys/net/ipv6/conf/{ifname}/{name}").write_text(value)


def _as_wire(ns: str, ifname: str) -> None:
    """Turns segmentation and receive offloads off, so each frame on the link is one TCP segment.

    veth hands a sender's 64 KiB TSO/GSO super-packet to its peer whole, and generic XDP would see it as one
    frame; a physical NIC puts MTU-sized segments on the wire, which is what the extractor meets in practice.
    """
    with inside(ns), Ethtool() as ethtool:
        features = ethtool.get_features(ifname)
        for name in WIRE_OFFLOADS:
            features.features[name].enable = False
        ethtool.set_features(ifname, features)


class Lab:
    """A client and a gateway namespace joined by a veth pair; a context manager that always cleans up.

    Use ``with Lab() as lab:``. Everything the lab creates - and whatever a caller registers with
    :meth:`defer`, such as an XDP attach - is undone in reverse order when the block exits, whether
    normally, by an exception or by KeyboardInterrupt.
    """

    def __init__(self, *, sweep: bool = True, wire_mtu: int | None = None) -> None:
        """``wire_mtu``: make the link behave like a wire of that MTU (see :meth:`_as_wire`)."""
        self.wire_mtu = wire_mtu
        self.prefix = owned_prefix()
        tag = self.prefix.rsplit("-", 1)[1]
        self._sweep = sweep
        self._cleanup = CleanupStack()
        self._tx: socket.socket | None = None
        self._entered = False
        self.swept: list[str] = []
        self.workdir: Path | None = None
        self._outputs: dict[int, tuple[Path, Path]] = {}
        self._names = {
            "client": (f"{self.prefix}-cli", f"xc{tag}", CLIENT),
            "gateway": (f"{self.prefix}-gw", f"xg{tag}", GATEWAY),
        }
        self.client: Host
        self.gateway: Host

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        if self._entered:
            raise RuntimeError(f"lab {self.prefix} was already used; make a new Lab")
        self._entered = True
        try:
            if self._sweep:
                self.swept = sweep_stale()
            self._build()
        except BaseException as exc:
            failures = self._cleanup.unwind()
            if failures:
                exc.add_note(f"lab {self.prefix} teardown after failed setup: {describe(failures)}")
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        failures = self._cleanup.unwind()
        if not failures:
            return
        message = f"lab {self.prefix} teardown: {describe(failures)}"
        if exc is not None:
            exc.add_note(message)  # the error that ended the block stays the one reported
            return
        if any(isinstance(e, KeyboardInterrupt) for _, e in failures):
            raise KeyboardInterrupt(message)
        raise TeardownError(message)

    def attach(self, prog_fd: int, mode: XdpMode) -> None:
        """Attaches an XDP program to the gateway's veth end until the lab is torn down."""
        gateway = self.gateway
        attach_xdp(prog_fd, gateway.ifname, mode, gateway.netns)
        self.defer(
            lambda: detach_xdp(gateway.ifname, mode, gateway.netns), f"detach XDP from {gateway.ifname}"
        )

    def defer(self, action: Callable[[], object], what: str | None = None) -> None:
        """Register a cleanup action, run before everything registered earlier (a stack)."""
        self._cleanup.push(action, what)

    # -- building ----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        workdir = self.workdir
        self.defer(lambda: shutil.rmtree(workdir, ignore_errors=True), f"remove {workdir}")
        for ns, _, _ in self._names.values():
            pr_netns.create(ns)
            self.defer(lambda ns=ns: remove_netns(ns), f"remove netns {ns}")

        cli_ns, cli_if, _ = self._names["client"]
        gw_ns, gw_if, _ = self._names["gateway"]
        with IPRoute(netns=cli_ns, flags=0) as ipr:
            # Created inside the client namespace with the peer placed directly in the gateway's,
            # so no veth end ever appears in the root namespace.
            ipr.link("add", ifname=cli_if, kind="veth", peer={"ifname": gw_if, "net_ns_fd": gw_ns})
        self.defer(lambda: self._delete_link(cli_ns, cli_if), f"delete veth {cli_if}")

        self.client = self._configure("client", peer=GATEWAY)
        self.gateway = self._configure("gateway", peer=CLIENT)
        wait_until(lambda: self._both_up(), 5.0, f"veth {cli_if}/{gw_if} to be up")

    def _configure(self, role: str, peer: Endpoint) -> Host:
        """Set lo and the veth end up with the fixed MAC and addresses, and a permanent neighbour entry.

        The static neighbour entries mean a lab sends no ARP or neighbour solicitation before the first
        TCP segment, so a capture or an XDP counter sees only the traffic a test made.
        """
        ns, ifname, endpoint = self._names[role]
        with IPRoute(netns=ns, flags=0) as ipr:
            lo = ipr.link_lookup(ifname="lo")[0]
            ipr.link("set", index=lo, state="up")
            index = ipr.link_lookup(ifname=ifname)[0]
            ipr.link("set", index=index, address=endpoint.mac)
            ipr.addr("add", index=index, address=endpoint.ipv4, prefixlen=IPV4_PREFIXLEN)
            _quiet_ipv6(ns, ifname)
            # IFF_NOARP: IPv6 joins no solicited-node groups (no MLD reports) and IPv4 sends no ARP; the
            # permanent neighbour entries below still give each side the other's MAC.
            ipr.link("set", index=index, flags=IFF_NOARP, change=IFF_NOARP | IFF_MULTICAST)
            ipr.addr("add", index=index, address=endpoint.ipv6, prefixlen=IPV6_PREFIXLEN, flags=IFA_F_NODAD)
            ipr.link("set", index=index, state="up")
            for dst in (peer.ipv4, peer.ipv6):
                ipr.neigh("add", dst=dst, lladdr=peer.mac, ifindex=index, state=NUD_PERMANENT)
            if self.wire_mtu is not None:
                ipr.link("set", index=index, mtu=self.wire_mtu)
        if self.wire_mtu is not None:
            _as_wire(ns, ifname)
        return Host(netns=ns, ifname=ifname, ifindex=index, endpoint=endpoint)

    def _both_up(self) -> bool:
        for host in (self.client, self.gateway):
            with IPRoute(netns=host.netns, flags=0) as ipr:
                if ipr.get_links(host.ifindex)[0].get_attr("IFLA_OPERSTATE") != "UP":
                    return False
        return True

    @staticmethod
    def _delete_link(ns: str, ifname: str) -> None:
        if ns not in pr_netns.listnetns():
            return  # flags=0 below would fail anyway; never recreate a namespace to delete a link
        with IPRoute(netns=ns, flags=0) as ipr:
            found = ipr.link_lookup(ifname=ifname)
            if found:
                ipr.link("del", index=found[0])

    # -- traffic -----------------------------------------------------------------------------------
    def send(self, frames: Iterable[bytes]) -> int:
        """Write raw Ethernet frames out of the client's veth end, byte for byte; return how many.

        The AF_PACKET socket is created inside the client namespace once and reused. The kernel refuses
        frames shorter than an Ethernet header or longer than the MTU; that is raised as one line.
        """
        if self._tx is None:
            tx = socket_in(self.client.netns, socket.AF_PACKET, socket.SOCK_RAW, 0)
            self.defer(tx.close, f"close tx socket on {self.client.ifname}")
            tx.bind((self.client.ifname, 0))
            self._tx = tx
        count = 0
        for frame in frames:
            try:
                sent = self._tx.send(frame)
            except OSError as exc:
                raise OSError(
                    exc.errno,
                    f"frame {count} ({len(frame)} bytes) not sent on {self.client.ifname}: {exc.strerror}",
                ) from None
            if sent != len(frame):
                raise OSError(
                    f"frame {count}: only {sent} of {len(frame)} bytes sent on {self.client.ifname}"
                )
            count += 1
        return count

    # -- processes ---------------------------------------------------------------------------------
    def run(
        self,
        host: Host,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        check: bool = True,
        input: bytes | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a program inside ``host``'s namespace to completion, capturing its output."""
        cmd = ["ip", "netns", "exec", host.netns, *argv]
        try:
            done = subprocess.run(cmd, check=False, capture_output=True, timeout=timeout, input=input)
        except subprocess.TimeoutExpired:
            raise DeadlineExceeded(
                f"{shlex.join(argv)} in {host.netns} did not finish within {timeout}s"
            ) from None
        if check and done.returncode != 0:
            raise LabProcessError(
                f"{shlex.join(argv)} in {host.netns} exited {done.returncode}: {last_line(done.stderr)}"
            )
        return done

    def spawn(
        self, host: Host, argv: Sequence[str], *, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a long-running program inside ``host``'s namespace; the lab stops it at teardown.

        Its stdout and stderr go to files in :attr:`workdir` (read them with :meth:`output_of`), so a
        chatty child can never block on a full pipe.
        """
        assert self.workdir is not None, "spawn() needs an entered lab"
        cmd = ["ip", "netns", "exec", host.netns, *argv]
        n = len(self._cleanup)
        out_path = self.workdir / f"proc{n}.out"
        err_path = self.workdir / f"proc{n}.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            # A new session keeps a terminal's Ctrl-C away from children, so the lab stops them in order.
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, start_new_session=True)
        self._outputs[proc.pid] = (out_path, err_path)
        self.defer(lambda: _stop_process(proc), f"stop {shlex.join(argv)} (pid {proc.pid})")
        return proc

    def output_of(self, proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
        """What a spawned process wrote so far to stdout and stderr."""
        out_path, err_path = self._outputs[proc.pid]
        return out_path.read_bytes(), err_path.read_bytes()

    def check_alive(self, proc: subprocess.Popen[bytes], what: str) -> None:
        """Raise one line with the last stderr line if a spawned process has exited."""
        code = proc.poll()
        if code is not None:
            raise LabProcessError(f"{what} exited {code}: {last_line(self.output_of(proc)[1])}")
