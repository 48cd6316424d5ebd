"""Benchmark 4: real HTTP. wrk in the client namespace against nginx in the gateway namespace, four ways.

- ``no_logging``: nginx with ``access_log off``;
- ``nginx_access_log``: nginx logs the same headers the extractor logs, in its own log format;
- ``extractor``: the extractor attached natively to the gateway's veth end, its C event consumer
  (capture.c's ringbuf mode) writing one line per request to a file;
- ``c_tpacket_v3``: the C user-space baseline capturing on the gateway's veth end, one line per request.

wrk sends the standard request's headers. Methods are measured round by round, interleaved, and the
logged lines are counted against wrk's own count of completed requests (requests still in flight when wrk
stops are logged but not counted by wrk, so a log may hold up to one request per connection more).
Memory: the extractor's maps as the kernel charges them (memlock in fdinfo) and the consumer's RSS.
"""

from __future__ import annotations

import os
import re
import signal
import statistics
from collections.abc import Callable
from pathlib import Path

from bench.baselines import CaptureCommand, consumer_argv
from bench.lab_throughput import Child, start, stats_of
from bench.results import Row, write_results
from harness.config import ExtractorConfig
from harness.corpus import load_corpus
from harness.program import Program
from harness.wait import wait_until
from harness.xdp import XdpMode
from netns.lab import Lab
from netns.nsenter import socket_in

SUITE = "http_nginx"
METHODS = ("no_logging", "nginx_access_log", "extractor", "c_tpacket_v3")
CONNECTIONS = 16
NGINX_LOG_FORMAT = (
    '$request_method $request_uri $server_protocol "$http_host" "$http_user_agent" "$http_x_request_id" '
    '"$http_x_forwarded_for" "$http_referer" "$http_x_api_version" "$http_authorization" "$http_cookie"'
)


def standard_request() -> tuple[str, list[tuple[str, str]]]:
    """Target and header fields of the corpus's standard request, for wrk's -H options."""
    payload = load_corpus()[0].frames[0].split(b"\r\n\r\n")[0]
    head = payload[payload.index(b"GET ") :].decode("latin-1").split("\r\n")
    target = head[0].split(" ")[1]
    return target, [tuple(part.strip() for part in line.split(":", 1)) for line in head[1:]]


def nginx_config(lab: Lab, access_log: Path | None) -> Path:
    """One worker, answering 200 from memory; access log off or in the extractor's header set."""
    assert lab.workdir is not None
    log = f"access_log {access_log} xhdr;" if access_log else "access_log off;"
    text = f"""
daemon off;
worker_processes 1;
pid {lab.workdir}/nginx.pid;
error_log {lab.workdir}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    log_format xhdr '{NGINX_LOG_FORMAT}';
    {log}
    client_body_temp_path {lab.workdir};
    server {{
        listen {lab.gateway.endpoint.ipv4}:80 reuseport;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""
    path = lab.workdir / ("nginx-log.conf" if access_log else "nginx-nolog.conf")
    path.write_text(text)
    return path


def _listening(lab: Lab, nginx: Child) -> bool:
    nginx.alive_or_fail("nginx")
    import socket

    with socket_in(lab.gateway.netns, socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((lab.gateway.endpoint.ipv4, 80)) == 0


def wrk(lab: Lab, seconds: int) -> dict[str, float]:
    """One wrk run (bounded by -d and a timeout); requests/s, completed requests, latency percentiles."""
    target, headers = standard_request()
    argv = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "2s"]
    argv += [arg for name, value in headers if name.lower() != "host" for arg in ("-H", f"{name}: {value}")]
    argv.append(f"http://{lab.gateway.endpoint.ipv4}{target}")
    out = lab.run(lab.client, argv, timeout=seconds + 30).stdout.decode()
    figures = {
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "requests": float(re.search(r"(\d+) requests in", out)[1]),
    }
    for percentile, value, unit in re.findall(
        r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE
    ):
        figures[f"latency_p{percentile}_us"] = float(value) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", out)
    if errors:
        raise RuntimeError(f"wrk reported errors: {errors[0]}")
    return figures


def map_memory_bytes() -> int:
    """Kernel memory charged to the BPF maps this process holds (fdinfo memlock): the extractor's maps."""
    total = 0
    for fd in os.listdir("/proc/self/fdinfo"):
        try:
            text = Path(f"/proc/self/fdinfo/{fd}").read_text()
        except OSError:
            continue
        if "map_type:" in text:
            total += int(re.search(r"memlock:\s+(\d+)", text)[1])
    return total


def rss_bytes(pid: int) -> int:
    found = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(found[1]) * 1024 if found else 0


def measure(
    lab: Lab, method: str, seconds: int, program: Program, config: ExtractorConfig
) -> dict[str, float]:
    """Starts nginx (and the logger of ``method``), runs wrk, stops everything, counts the log."""
    assert lab.workdir is not None
    access_log = lab.workdir / "access.log" if method == "nginx_access_log" else None
    if access_log:
        access_log.unlink(missing_ok=True)
    nginx = start(lab, lab.gateway.netns, ["nginx", "-c", str(nginx_config(lab, access_log))], "nginx")
    wait_until(lambda: _listening(lab, nginx), 10.0, "nginx to listen")
    logger: Child | None = None
    lines_path = lab.workdir / f"{method}.lines"
    detach = None
    if method == "extractor":
        map_fd = program.bpf[b"events"].map_fd
        argv = consumer_argv(config, map_fd, quiet=False, max_events=0, max_seconds=seconds + 60.0)
        logger = _start_to_file(lab, None, argv, lines_path, pass_fds=(map_fd,))
        from harness.xdp import attach_xdp, detach_xdp

        attach_xdp(program.fd, lab.gateway.ifname, XdpMode.NATIVE, lab.gateway.netns)

        def detach() -> None:
            detach_xdp(lab.gateway.ifname, XdpMode.NATIVE, lab.gateway.netns)
    elif method == "c_tpacket_v3":
        command = CaptureCommand(method, config, bytes(16), max_seconds=seconds + 60.0)
        logger = _start_to_file(lab, lab.gateway.netns, command.argv(lab.gateway.ifname), lines_path)
    try:
        if logger is not None:
            wait_until(lambda: _ready(logger), 20.0, f"{method} logger to be ready")
        figures = wrk(lab, seconds)
        if logger is not None:
            figures["consumer_rss_bytes"] = float(rss_bytes(logger.proc.pid))
    finally:
        if detach:
            detach()
    nginx.proc.send_signal(signal.SIGQUIT)  # graceful: the access log is complete when it exits
    wait_until(nginx.poll, 15.0, "nginx to stop")
    if logger is not None:
        logger.proc.send_signal(signal.SIGTERM)  # drains what is left, prints its stats
        wait_until(logger.poll, 15.0, f"{method} logger to stop")
        figures["logged"] = float(stats_of(logger)["requests"])
        figures["logger_cpu_ns_per_request"] = logger.cpu_ns / max(figures["logged"], 1)
    elif access_log:
        figures["logged"] = float(sum(1 for _ in access_log.open("rb")))
    figures["nginx_cpu_ns_per_request"] = nginx.cpu_ns / max(figures["requests"], 1)
    return figures


def _start_to_file(
    lab: Lab, netns: str | None, argv: list[str], path: Path, pass_fds: tuple[int, ...] = ()
) -> Child:
    """Like lab_throughput.start, but stdout goes to ``path`` (the log whose lines are counted)."""
    wrapper = ["sh", "-c", 'exec "$@" > "$0"', str(path), *argv]
    return start(lab, netns, wrapper, Path(argv[0]).name, pass_fds=pass_fds)


def _ready(child: Child) -> bool:
    child.alive_or_fail("logger")
    return "ready" in child.stderr()


def run(quick: bool, progress: Callable[[str], None] = print) -> Path:
    """Benchmark 4; writes reports/out/bench/http_nginx.json and returns its path.

    quick: 1 round of 3 s per method (about 20 s); full: 3 rounds of 10 s (about 2.5 min).
    """
    rounds, seconds = (1, 3) if quick else (3, 10)
    config = ExtractorConfig()
    taken: dict[str, list[dict[str, float]]] = {method: [] for method in METHODS}
    progress(f"{SUITE}: compiling the extractor")
    with Program(config) as program, Lab() as lab:
        memory = map_memory_bytes()
        for round_number in range(rounds):
            for method in METHODS:
                progress(f"{SUITE}: round {round_number + 1}/{rounds}, {method}, wrk for {seconds} s")
                taken[method].append(measure(lab, method, seconds, program, config))
    params = {"rounds": rounds, "seconds": seconds, "connections": CONNECTIONS}
    rows: list[Row] = []
    for method, figures in taken.items():
        for metric in figures[0]:
            unit = "bytes" if metric.endswith("bytes") else "us" if metric.endswith("_us") else ""
            unit = unit or (
                "ns" if metric.endswith("_ns_per_request") else "rps" if "second" in metric else ""
            )
            value = statistics.median(f[metric] for f in figures)
            rows.append(Row(method, metric, value, unit or "requests", params))
        if "logged" in figures[0]:
            missing = sum(max(f["requests"] - f["logged"], 0) for f in figures)
            rows.append(Row(method, "requests_not_logged", missing, "requests", params))
    base = statistics.median(f["requests_per_second"] for f in taken["no_logging"])
    for method in METHODS[1:]:
        value = statistics.median(f["requests_per_second"] for f in taken[method])
        rows.append(Row(method, "rps_ratio_to_no_logging", value / base, "x", params))
    rows.append(Row("extractor", "map_memory_bytes", float(memory), "bytes", params))
    return write_results(SUITE, rows, config)


if __name__ == "__main__":
    import sys

    print(run(quick="--quick" in sys.argv))
