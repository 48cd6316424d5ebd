"""Servers that run inside the lab's gateway namespace, started and stopped with the lab."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Sequence
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


class _Nginx:
    """nginx in the gateway namespace, listening on IPv4 and IPv6 on ``port``, with ``http`` inside its http
    block and each request logged in ``log_format`` to a file of its own. Starting returns once a TCP connect
    succeeds; the lab's cleanup stops it."""

    def __init__(self, lab: Lab, name: str, port: int, log_format: str, http: str) -> None:
        assert lab.workdir is not None, "nginx needs an entered lab"
        self.lab = lab
        self.port = port
        self.log_path = lab.workdir / f"nginx-{name}.jsonl"
        self.log_path.touch()
        error_log = lab.workdir / f"nginx-{name}-error.log"
        config = lab.workdir / f"nginx-{name}.conf"
        config.write_text(
            f"""
daemon off;
worker_processes 1;
pid {lab.workdir}/nginx-{name}.pid;
error_log {error_log};
events {{ worker_connections 64; }}
http {{
    log_format {name} '{log_format}';
    access_log {self.log_path} {name};
    client_body_temp_path {lab.workdir};
{http}
}}
"""
        )
        self.proc = lab.spawn(lab.gateway, ["nginx", "-e", str(error_log), "-c", str(config)])
        wait_until(self._listening, START_TIMEOUT_S, f"nginx on port {port} in {lab.gateway.netns}")

    def _listening(self) -> bool:
        self.lab.check_alive(self.proc, f"nginx on port {self.port}")
        return _accepts_both_families(self.lab.gateway, self.port)

    def requests(self) -> list[dict[str, Any]]:
        """nginx's log line of every request so far, oldest first."""
        return _json_lines(self.log_path)


def _listen(lab: Lab, port: int, tls: str = "") -> str:
    """nginx's listen directives for the gateway's two addresses."""
    endpoint = lab.gateway.endpoint
    return f"listen {endpoint.ipv4}:{port}{tls}; listen [{endpoint.ipv6}]:{port}{tls};"


class TlsServer(_Nginx):
    """nginx serving HTTPS (HTTP/1.1 and HTTP/2) with a certificate for ``name`` made when it starts. It answers
    200 to everything and logs each request with what nginx itself saw of the handshake
    (:data:`TLS_LOG_FORMAT`)."""

    def __init__(self, lab: Lab, *, name: str = "api.shop.example", port: int = 443) -> None:
        assert lab.workdir is not None, "TlsServer needs an entered lab"
        self.name = name
        self.certificate = lab.workdir / "tls-cert.pem"
        key = lab.workdir / "tls-key.pem"
        _self_signed(name, self.certificate, key)
        http = f"""
    ssl_certificate {self.certificate};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    server {{
        {_listen(lab, port, " ssl http2")}
        location / {{ return 200 "ok\\n"; }}
    }}"""
        super().__init__(lab, f"tls-{port}", port, TLS_LOG_FORMAT, http)

    def url(self, path: str = "/") -> str:
        return f"https://{self.name}:{self.port}{path}"

    def resolve(self, family: int = 4) -> list[str]:
        """curl options that send ``name`` to this server over IP ``family`` and trust its certificate."""
        address = _url_address(self.lab.gateway, family)
        return ["--resolve", f"{self.name}:{self.port}:{address}", "--cacert", str(self.certificate)]


# nginx's own account of each request and its response: the oracle of the responses lab tests (R24, R25).
STATUS_LOG_FORMAT = (
    '{"request":"$request","status":"$status","request_time":"$request_time",'
    '"request_id":"$http_x_request_id","port":"$remote_port"}'
)


class StatusServer(_Nginx):
    """nginx serving plain HTTP: ``/status/NNN`` answers with status NNN for each of ``statuses`` and an empty
    body, anything else 200. It logs each request with its status and the time nginx took
    (:data:`STATUS_LOG_FORMAT`)."""

    def __init__(self, lab: Lab, statuses: Sequence[int], *, port: int = 80) -> None:
        locations = "".join(f"location = /status/{code} {{ return {code}; }} " for code in statuses)
        http = f"""
    server {{
        {_listen(lab, port)}
        {locations}
        location / {{ return 200 "ok\\n"; }}
    }}"""
        super().__init__(lab, f"status-{port}", port, STATUS_LOG_FORMAT, http)

    def url(self, path: str = "/", *, family: int = 4) -> str:
        return f"http://{_url_address(self.lab.gateway, family)}:{self.port}{path}"


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
