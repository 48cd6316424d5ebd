"""Servers that run inside the lab's gateway namespace, started and stopped with the lab."""

from __future__ import annotations

import json
import socket
import sys
from typing import Any

from harness.core.wait import wait_until
from netns.lab import Host, Lab
from netns.nsenter import socket_in

START_TIMEOUT_S = 10.0


class RecordingServer:
    """``netns.recorder`` in a namespace (the gateway by default), answering 200 to everything.

    It listens on IPv4 and IPv6 at once (a dual-stack socket on '::'). Starting returns once a TCP
    connect to it succeeds; the lab's cleanup stops it.
    """

    def __init__(self, lab: Lab, *, port: int = 80, host: Host | None = None) -> None:
        assert lab.workdir is not None, "RecordingServer needs an entered lab"
        self.lab = lab
        self.host = host or lab.gateway
        self.port = port
        self.log_path = lab.workdir / f"recorder-{self.host.ifname}-{port}.jsonl"
        self.log_path.touch()
        argv = [sys.executable, "-m", "netns.recorder", "--port", str(port), "--log", str(self.log_path)]
        self.proc = lab.spawn(self.host, argv)
        wait_until(self._listening, START_TIMEOUT_S, f"recorder on port {port} in {self.host.netns}")

    def _listening(self) -> bool:
        self.lab.check_alive(self.proc, f"recorder on port {self.port} in {self.host.netns}")
        for family, address in (
            (socket.AF_INET, self.host.endpoint.ipv4),
            (socket.AF_INET6, self.host.endpoint.ipv6),
        ):
            with socket_in(self.host.netns, family, socket.SOCK_STREAM) as probe:
                probe.settimeout(1.0)
                if probe.connect_ex((address, self.port)) != 0:
                    return False
        return True

    def url(self, path: str = "/", *, family: int = 4) -> str:
        """The URL of ``path`` on this server over IPv4 (``family=4``) or IPv6 (``family=6``)."""
        endpoint = self.host.endpoint
        address = endpoint.ipv4 if family == 4 else f"[{endpoint.ipv6}]"
        return f"http://{address}:{self.port}{path}"

    def requests(self) -> list[dict[str, Any]]:
        """Every request received so far, oldest first (see ``netns.recorder`` for the fields)."""
        with open(self.log_path, encoding="utf-8") as log:
            return [json.loads(line) for line in log if line.strip()]
