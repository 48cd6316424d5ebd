"""The lab itself: namespaces, addresses, raw frames, real HTTP clients and servers, and cleanup."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from pyroute2 import IPRoute
from pyroute2 import netns as pr_netns
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from harness.core.ownership import owner_id, sweep_stale_directories
from harness.core.wait import wait_until
from netns.addressing import CLIENT, GATEWAY
from netns.capture import Capture
from netns.cleanup import TeardownError
from netns.clients import ClientError, curl, http_client
from netns.lab import Lab, LabProcessError
from netns.servers import RecordingServer
from netns.sweep import sweep_stale

pytestmark = pytest.mark.lab


def _leftovers(lab: Lab) -> list[str]:
    """Everything of ``lab`` that should be gone after teardown, named."""
    left = [name for name in pr_netns.listnetns() if name.startswith(lab.prefix)]
    with IPRoute() as ipr:
        left += [name for name in (lab.client.ifname, lab.gateway.ifname) if ipr.link_lookup(ifname=name)]
    if lab.workdir is not None and lab.workdir.exists():
        left.append(str(lab.workdir))
    return left


def _addresses(netns: str, index: int) -> tuple[str, set[tuple[str, int]]]:
    with IPRoute(netns=netns, flags=0) as ipr:
        mac = ipr.get_links(index)[0].get_attr("IFLA_ADDRESS")
        addrs = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index)}
    return mac, addrs


def test_lab_builds_two_namespaces_with_fixed_addresses(lab: Lab) -> None:
    assert re.fullmatch(rf"xhdr-{owner_id(os.getpid())}-[0-9a-f]{{6}}", lab.prefix)
    assert {lab.client.netns, lab.gateway.netns} <= set(pr_netns.listnetns())
    assert (lab.client.netns, lab.gateway.netns) == (f"{lab.prefix}-cli", f"{lab.prefix}-gw")
    for host, endpoint in ((lab.client, CLIENT), (lab.gateway, GATEWAY)):
        assert len(host.ifname) <= 15
        assert host.endpoint == endpoint
        mac, addrs = _addresses(host.netns, host.ifindex)
        assert mac == endpoint.mac
        assert {(endpoint.ipv4, 24), (endpoint.ipv6, 64)} <= addrs


def test_send_delivers_frames_byte_exact(lab: Lab) -> None:
    eth = Ether(src=CLIENT.mac, dst=GATEWAY.mac)
    v4 = IP(src=CLIENT.ipv4, dst=GATEWAY.ipv4)
    request = Raw(b"GET /x HTTP/1.1\r\nHost: a\r\nX-Y: z\r\n\r\n")
    frames = [
        bytes(eth / v4 / TCP(sport=40000, dport=80, flags="PA") / request),
        bytes(
            eth / IPv6(src=CLIENT.ipv6, dst=GATEWAY.ipv6) / TCP(sport=40001, dport=80, flags="PA") / request
        ),
        bytes(eth / Dot1Q(vlan=42) / v4 / TCP(sport=40002, dport=80, flags="PA") / request),
        bytes(eth / Dot1AD(vlan=5) / Dot1Q(vlan=6) / v4 / TCP(sport=40003, dport=8080, flags="PA") / request),
        bytes(eth / v4 / TCP(sport=40004, dport=80, flags="S")),  # 54 bytes: below the 60-byte minimum
    ]
    with Capture(lab.gateway) as capture:
        assert lab.send(frames) == len(frames)

        def ours(all_frames: list[bytes]) -> list[bytes]:
            return [f for f in all_frames if f[:12] == eth.build()[:12]]  # dst+src MAC: not kernel noise

        capture.wait_for(lambda got: len(ours(got)) >= len(frames), what=f"{len(frames)} frames")
        assert ours(capture.frames) == frames


LOOPBACK_FLOOD = """
import socket, sys
with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
    while True:
        s.sendto(b"x", (sys.argv[1], 9))
"""


def test_capture_holds_only_frames_of_its_veth_while_loopback_traffic_flows(lab: Lab) -> None:
    """A packet socket made for every protocol hears every interface until it is bound; the gateway's
    traffic to its own address (over lo, as a server's listening probe makes) must never be captured:
    the demo compared such a frame with the XDP program's counters, which never see it."""
    lab.spawn(lab.gateway, [sys.executable, "-c", LOOPBACK_FLOOD, GATEWAY.ipv6])
    leaked: list[bytes] = []
    for _ in range(200):
        with Capture(lab.gateway) as capture:
            leaked += capture.drain()
    assert leaked == []
    with pytest.raises(OSError, match=r"frame 0 \(5 bytes\) not sent on xc[0-9a-f]{6}"):
        lab.send([b"\x00" * 5])


@pytest.mark.parametrize("family", [4, 6])
def test_curl_request_is_recorded_with_exactly_its_headers(lab: Lab, family: int) -> None:
    server = RecordingServer(lab)
    headers = {"Host": "shop.example", "X-Request-Id": "abc-123", "Cookie": "a=1; b=2", "X-Empty": ""}
    response = curl(lab, server.url("/cart?item=7", family=family), headers, only_given_headers=True)
    assert response.status == 200
    [entry] = server.requests()
    assert (entry["method"], entry["target"], entry["version"]) == ("GET", "/cart?item=7", "HTTP/1.1")
    assert entry["headers"] == [list(pair) for pair in headers.items()]
    assert entry["client"] == (CLIENT.ipv4 if family == 4 else CLIENT.ipv6)


@pytest.mark.parametrize("family", [4, 6])
def test_http_client_request_is_recorded_with_exactly_its_headers(lab: Lab, family: int) -> None:
    server = RecordingServer(lab, port=8080)
    address = GATEWAY.ipv4 if family == 4 else GATEWAY.ipv6
    headers = {"host": "api.example", "Authorization": "Bearer t0k", "X-Dup": "1", "x-dup": "2"}
    response = http_client(lab, address, 8080, "PATCH", "//odd/path", headers)
    assert response.status == 200
    [entry] = server.requests()
    assert (entry["method"], entry["target"]) == ("PATCH", "//odd/path")
    assert entry["headers"] == [list(pair) for pair in headers.items()]
    assert (entry["client"], entry["family"]) == ((CLIENT.ipv4, 4) if family == 4 else (CLIENT.ipv6, 6))


def test_client_errors_are_one_line(lab: Lab) -> None:
    with pytest.raises(ClientError) as curl_error:
        curl(lab, f"http://{GATEWAY.ipv4}:81/")
    with pytest.raises(ClientError) as http_error:
        http_client(lab, GATEWAY.ipv4, 81)
    for error in (curl_error, http_error):
        assert "\n" not in str(error.value)
        assert "refused" in str(error.value).lower() or "couldn't connect" in str(error.value).lower()


def test_teardown_after_normal_exit_removes_everything_and_stops_processes() -> None:
    order: list[str] = []
    with Lab() as lab:
        server = RecordingServer(lab)
        lab.defer(lambda: order.append("first pushed"))
        lab.defer(lambda: order.append("last pushed"))
        assert _leftovers(lab)  # the check below can fail: things exist while the lab is up
    assert order == ["last pushed", "first pushed"]
    assert server.proc.poll() is not None
    assert _leftovers(lab) == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_teardown_after_exception_removes_everything(error: type[BaseException]) -> None:
    with pytest.raises(error, match="inside the lab"), Lab() as lab:
        proc = lab.spawn(lab.gateway, ["sleep", "60"])
        raise error("inside the lab")
    assert proc.poll() is not None
    assert _leftovers(lab) == []


def test_teardown_continues_past_a_failing_action_and_reports_it() -> None:
    def broken() -> None:
        raise OSError("boom")

    with pytest.raises(TeardownError, match=r"teardown: broken cleanup: OSError: boom$"), Lab() as lab:
        lab.defer(broken, "broken cleanup")
    assert _leftovers(lab) == []


def test_sweep_stale_removes_dead_and_reused_pid_namespaces_and_keeps_live_ones() -> None:
    """A namespace is its owner's while that pid runs with the start time in its name: a reused pid is no owner."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    dead = next(pid for pid in range(pid_max - 1, 1, -1) if not os.path.exists(f"/proc/{pid}"))
    live_owner = owner_id(os.getppid())
    pid, start = live_owner.split("-")  # type: ignore[union-attr]
    stale = f"xhdr-{dead}-{start}-0dead0-cli"
    reused = f"xhdr-{pid}-{int(start) + 1}-05ed00-cli"  # the same pid, started at another time
    live = f"xhdr-{live_owner}-0a11e0-cli"
    for name in (stale, reused, live):
        pr_netns.create(name)
    try:
        removed = sweep_stale()
        assert {stale, reused} <= set(removed)
        assert live not in removed
        assert not {stale, reused} & set(pr_netns.listnetns())
        assert live in pr_netns.listnetns()
    finally:
        for name in (stale, reused, live):
            if name in pr_netns.listnetns():
                pr_netns.remove(name)


def test_run_executes_inside_the_namespace(lab: Lab) -> None:
    done = lab.run(lab.gateway, ["ip", "-o", "link", "show"])
    assert lab.gateway.ifname in done.stdout.decode()
    assert lab.client.ifname not in done.stdout.decode()
    with pytest.raises(
        LabProcessError, match=r"^false in xhdr-\d+-\d+-[0-9a-f]{6}-cli exited 1: \(no output\)$"
    ):
        lab.run(lab.client, ["false"])


KILLED_RUN = """
import sys
from netns.lab import Lab
from netns.servers import RecordingServer
lab = Lab().__enter__()
server = RecordingServer(lab)
print(lab.prefix, server.proc.pid, flush=True)
sys.stdin.read()  # keep running until the test kills this process
"""


def test_sweep_stale_cleans_up_after_a_killed_run() -> None:
    run = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        prefix, recorder_pid = run.stdout.readline().split()  # type: ignore[union-attr]
    finally:
        run.kill()
        run.wait()
    names = {f"{prefix}-cli", f"{prefix}-gw"}
    assert names <= set(pr_netns.listnetns())
    assert names <= set(sweep_stale())
    assert not names & set(pr_netns.listnetns())
    wait_until(lambda: not _running(int(recorder_pid)), 5.0, "the orphaned recorder to die")
    sweep_stale_directories()  # the other sweeper every command runs
    assert not list(Path(tempfile.gettempdir()).glob(f"{prefix}-*"))


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
