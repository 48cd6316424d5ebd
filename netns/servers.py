"""Servers that run inside the lab's gateway namespace, started and stopped with the lab."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
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
        return _accepts_both_families(self.host, self.port)

    def url(self, path: str = "/", *, family: int = 4) -> str:
        """The URL of ``path`` on this server over IPv4 (``family=4``) or IPv6 (``family=6``)."""
        return f"http://{_url_address(self.host, family)}:{self.port}{path}"

    def requests(self) -> list[dict[str, Any]]:
        """Every request received so far, oldest first (see ``netns.recorder`` for the fields)."""
        return _json_lines(self.log_path)


# nginx's own account of each TLS connection, one JSON object per request: the oracle of the TLS lab tests.
TLS_LOG_FORMAT = (
    '{"sni":"$ssl_server_name","protocol":"$ssl_protocol","alpn":"$ssl_alpn_protocol",'
    '"status":"$status","request":"$request","port":"$remote_port"}'
)


class TlsServer:
    """nginx serving HTTPS in the gateway namespace, with a certificate for ``name`` made when it starts.

    It listens on IPv4 and IPv6 on ``port`` (HTTP/1.1 and HTTP/2), answers 200 to everything and logs
    each request with what nginx itself saw of the handshake (:data:`TLS_LOG_FORMAT`). Starting returns
    once a TCP connect succeeds; the lab's cleanup stops it.
    """

    def __init__(self, lab: Lab, *, name: str = "api.shop.example", port: int = 443) -> None:
        assert lab.workdir is not None, "TlsServer needs an entered lab"
        self.lab = lab
        self.name = name
        self.port = port
        self.certificate = lab.workdir / "tls-cert.pem"
        key = lab.workdir / "tls-key.pem"
        _self_signed(name, self.certificate, key)
        self.log_path = lab.workdir / f"nginx-tls-{port}.jsonl"
        self.log_path.touch()
        error_log = lab.workdir / "nginx-tls-error.log"
        endpoint = lab.gateway.endpoint
        config = lab.workdir / f"nginx-tls-{port}.conf"
        config.write_text(
            f"""
daemon off;
worker_processes 1;
pid {lab.workdir}/nginx-tls-{port}.pid;
error_log {error_log};
events {{ worker_connections 64; }}
http {{
    log_format tls '{TLS_LOG_FORMAT}';
    access_log {self.log_path} tls;
    client_body_temp_path {lab.workdir};
    ssl_certificate {self.certificate};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    server {{
        listen {endpoint.ipv4}:{port} ssl http2;
        listen [{endpoint.ipv6}]:{port} ssl http2;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""
        )
        self.proc = lab.spawn(lab.gateway, ["nginx", "-e", str(error_log), "-c", str(config)])
        wait_until(self._listening, START_TIMEOUT_S, f"nginx with TLS on port {port} in {lab.gateway.netns}")

    def _listening(self) -> bool:
        self.lab.check_alive(self.proc, f"nginx with TLS on port {self.port}")
        return _accepts_both_families(self.lab.gateway, self.port)

    def url(self, path: str = "/") -> str:
        return f"https://{self.name}:{self.port}{path}"

    def resolve(self, family: int = 4) -> list[str]:
        """curl options that send ``name`` to this server over IP ``family`` and trust its certificate."""
        address = _url_address(self.lab.gateway, family)
        return ["--resolve", f"{self.name}:{self.port}:{address}", "--cacert", str(self.certificate)]

    def requests(self) -> list[dict[str, Any]]:
        """nginx's log line of every request so far, oldest first."""
        return _json_lines(self.log_path)


def _accepts_both_families(host: Host, port: int) -> bool:
    """Whether a TCP connect to ``port`` on ``host``'s IPv4 and IPv6 addresses succeeds, from its namespace."""
    for family, address in ((socket.AF_INET, host.endpoint.ipv4), (socket.AF_INET6, host.endpoint.ipv6)):
        with socket_in(host.netns, family, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            if probe.connect_ex((address, port)) != 0:
                return False
    return True


def _url_address(host: Host, family: int) -> str:
    """``host``'s address as a URL writes it: IPv4 as it is, IPv6 in brackets."""
    return host.endpoint.ipv4 if family == 4 else f"[{host.endpoint.ipv6}]"


def _json_lines(path: Path) -> list[dict[str, Any]]:
    """A server's log, one JSON object per line, oldest first."""
    with open(path, encoding="utf-8") as log:
        return [json.loads(line) for line in log if line.strip()]


def _self_signed(name: str, certificate: Path, key: Path) -> None:
    """A one-day P-256 certificate for ``name``, made by openssl for this lab only."""
    argv = [
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
        "-keyout", str(key), "-out", str(certificate),
    ]  # fmt: skip
    done = subprocess.run(argv, check=False, capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"openssl could not make a certificate for {name}: {last}")
