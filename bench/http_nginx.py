"""Benchmark 4: real HTTP. wrk in the client namespace against nginx in the gateway namespace, nine ways.

- ``no_logging``: nginx with ``access_log off``;
- ``empty_xdp``: no logging, bpf/xdp_pass.c attached natively to the gateway's veth end: the hook's cost
  alone, so that the extractor's leg decomposes into hook, program and logger;
- ``nginx_access_log``: nginx logs the same headers the extractor logs, in its own log format;
- ``access_log_empty_xdp``: the same with the empty program attached, as ``empty_xdp``: the access log behind
  the hook the extractor's legs pay. On veth that hook costs more than on a NIC whose driver runs XDP (veth
  copies every TCP segment it hands a program, since TCP keeps the original for retransmission), so the
  extractor's legs are also compared with this leg: what each way of logging adds behind the same hook;
- ``extractor``: ``xhdr log --mode native --json FILE`` itself, the process users run (it compiles
  and attaches the extractor; its compiled consumer writes one JSON line per request to a file);
- ``extractor_text``: the same with ``--text FILE``, xhdr log's default output: one line per request, the
  closest to an access log;
- ``extractor_records``: the same with ``--records FILE``, the records themselves (docs/RECORDS.md);
- ``extractor_responses``: the ``extractor`` leg with ``responses = true``: the TC egress program pairs each
  response with its request and a second JSON line follows each request's (R24, R25);
- ``c_tpacket_v3``: the C user-space baseline capturing on the gateway's veth end, one line per request.

wrk sends the standard request's headers. Methods are measured round by round, interleaved, and the
logged lines are counted against wrk's own count of completed requests (requests still in flight when wrk
stops are logged but not counted by wrk, so a log may hold up to one request per connection more).
CPU per request: nginx's (its rusage), the logger's from wrk's start (xhdr log with its consumer until every
event is written, neither its compile nor its exit counted, bench/xhdr_log.py; the capture's rusage at exit
less its CPU time before) and softirq time (/proc/stat's softirq column, all CPUs: tick samples, the only
softirq time this kernel accounts). The XDP program's own run time per request is the kernel's (bpf_stats,
on for the whole suite, so every leg pays its two clock reads per run alike): part of the softirq time, and
with the logger's what the extractor adds per request beside what nginx's access log adds to nginx.
Memory: the extractor's maps as the kernel charges them (memlock in xhdr log's fdinfo) and the logger's RSS.
Bytes: what each log wrote per request it logged, since a longer line costs its writer more.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import statistics
from collections.abc import Callable
from pathlib import Path

from bench.baselines import CaptureCommand
from bench.lab_throughput import Child, bpf_stats, prog_runtime, softirq_ticks, start, stats_of
from bench.results import Row, per_round, write_results
from bench.xhdr_log import Finished, children, running_logger, tree_cpu_ns
from harness.core.config import ExtractorConfig
from harness.core.cost import empty_program_fd
from harness.core.paired import judge_rounds, median_ratio
from harness.core.wait import wait_until
from harness.core.xdp import XdpMode, attach_xdp, detach_xdp
from harness.log.consumer import LogFormat
from harness.oracle.corpus import load_corpus
from harness.verify.verifier import maps_memlock
from netns.lab import Lab
from netns.nsenter import socket_in
from reports.metrics import ACCESS_LOG_COMPARISONS, METRICS, method_label

SUITE = "http_nginx"
METHODS = (
    "no_logging",
    "empty_xdp",
    "nginx_access_log",
    "access_log_empty_xdp",
    "extractor",
    "extractor_text",
    "extractor_records",
    "extractor_responses",
    "c_tpacket_v3",
)
# What xhdr log writes in each extractor leg, and whether responses are on (R24).
EXTRACTOR_OUTPUTS = {
    "extractor": LogFormat.JSON,
    "extractor_text": LogFormat.TEXT,
    "extractor_records": LogFormat.RECORDS,
    "extractor_responses": LogFormat.JSON,
}
WITH_RESPONSES = "responses = true\n"
# The legs in which nginx writes its access log, and those with the empty program attached.
ACCESS_LOG_LEGS = ("nginx_access_log", "access_log_empty_xdp")
EMPTY_XDP_LEGS = ("empty_xdp", "access_log_empty_xdp")
CONNECTIONS = 16
NGINX_LOG_FORMAT = (
    '$request_method $request_uri $server_protocol "$http_host" "$http_user_agent" "$http_x_request_id" '
    '"$http_x_forwarded_for" "$http_referer" "$http_x_api_version" "$http_authorization" "$http_cookie"'
)
# /proc/stat counts in USER_HZ ticks.
NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


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


def map_memory_bytes(pid: int) -> int:
    """Kernel memory charged to the BPF maps a process holds (fdinfo memlock): xhdr log's, the extractor's."""
    return maps_memlock(os.listdir(f"/proc/{pid}/fdinfo"), pid)


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and its descendants (xhdr log and its consumer)."""
    found = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    own = int(found[1]) * 1024 if found else 0
    return own + sum(tree_rss_bytes(child) for child in children(pid))


@dataclasses.dataclass(frozen=True)
class RequestLogger:
    """The process that logs for a method, and how to end its run and learn what it did (``finish``)."""

    pid: int
    finish: Callable[[], Finished]
    prog_fd: int | None = None  # the XDP program it attached, whose run time bpf_stats counts


def measure(lab: Lab, method: str, seconds: int, config: ExtractorConfig, empty_fd: int) -> dict[str, float]:
    """Starts nginx (and ``method``'s XDP program or logger), runs wrk, stops everything, counts the log."""
    assert lab.workdir is not None
    access_log = lab.workdir / "access.log" if method in ACCESS_LOG_LEGS else None
    if access_log:
        access_log.unlink(missing_ok=True)
    written = 0  # bytes of the leg's log, if it has one
    nginx = start(lab, lab.gateway.netns, ["nginx", "-c", str(nginx_config(lab, access_log))], "nginx")
    wait_until(lambda: _listening(lab, nginx), 10.0, "nginx to listen")
    with contextlib.ExitStack() as stack:
        logger = set_up(lab, method, seconds, config, empty_fd, stack)
        logger_before = tree_cpu_ns(logger.pid) if logger else 0
        xdp_fd = empty_fd if method in EMPTY_XDP_LEGS else logger.prog_fd if logger else None
        xdp_before = prog_runtime(xdp_fd) if xdp_fd is not None else (0, 0)
        ticks_before = softirq_ticks()
        figures = wrk(lab, seconds)
        softirq_ns = (softirq_ticks() - ticks_before) * NS_PER_TICK
        if xdp_fd is not None:
            xdp_ns, xdp_runs = (after - before for after, before in zip(prog_runtime(xdp_fd), xdp_before))
            figures["xdp_program_ns_per_request"] = xdp_ns / max(figures["requests"], 1)
            figures["xdp_program_runs_per_request"] = xdp_runs / max(figures["requests"], 1)
        if logger:
            figures["logger_rss_bytes"] = float(tree_rss_bytes(logger.pid))
            if method in EXTRACTOR_OUTPUTS:
                figures["map_memory_bytes"] = float(map_memory_bytes(logger.pid))
            finished = logger.finish()
            figures["logged"] = float(finished.lines - finished.responses)
            written = finished.output_bytes
            if method == "extractor_responses":
                figures["responses_logged"] = float(finished.responses)
            cpu_ns = finished.cpu_ns - logger_before
            figures["logger_cpu_ns_per_request"] = cpu_ns / max(finished.lines - finished.responses, 1)
    nginx.proc.send_signal(signal.SIGQUIT)  # graceful: the access log is complete when it exits
    wait_until(nginx.poll, 15.0, "nginx to stop")
    if access_log:
        figures["logged"] = float(sum(1 for _ in access_log.open("rb")))
        written = access_log.stat().st_size
    if "logged" in figures:
        figures["log_bytes_per_request"] = written / max(figures["logged"], 1.0)
    figures["nginx_cpu_ns_per_request"] = nginx.cpu_ns / max(figures["requests"], 1)
    figures["softirq_cpu_ns_per_request"] = softirq_ns / max(figures["requests"], 1)
    return figures


def set_up(
    lab: Lab, method: str, seconds: int, config: ExtractorConfig, empty_fd: int, stack: contextlib.ExitStack
) -> RequestLogger | None:
    """Puts ``method``'s XDP program or logger in place on the gateway's end; ``stack`` takes it away."""
    assert lab.workdir is not None
    gateway = lab.gateway
    if method in EMPTY_XDP_LEGS:
        attach_xdp(empty_fd, gateway.ifname, XdpMode.NATIVE, gateway.netns)
        stack.callback(detach_xdp, gateway.ifname, XdpMode.NATIVE, gateway.netns)
    elif method in EXTRACTOR_OUTPUTS:
        responses = lab.workdir / "responses.toml" if method == "extractor_responses" else None
        if responses:
            responses.write_text(WITH_RESPONSES)
        logger = stack.enter_context(
            running_logger(lab, XdpMode.NATIVE, EXTRACTOR_OUTPUTS[method], responses)
        )
        before = logger.counters()
        return RequestLogger(logger.proc.pid, lambda: logger.finish(before), logger.prog_fd)
    elif method == "c_tpacket_v3":
        command = CaptureCommand(method, config, bytes(16), max_seconds=seconds + 60.0)
        lines = lab.workdir / f"{method}.lines"
        child = start(lab, gateway.netns, command.argv(gateway.ifname), method, stdout=lines)
        wait_until(lambda: _ready(child), 20.0, f"{method} logger to be ready")
        return RequestLogger(child.proc.pid, lambda: _stop_capture(child, lines))
    return None


def _stop_capture(child: Child, lines: Path) -> Finished:
    """SIGTERM: the capture writes what it has to ``lines`` and prints its stats, read with its rusage."""
    child.proc.send_signal(signal.SIGTERM)
    wait_until(child.poll, 15.0, "the capture to stop")
    stats = stats_of(child)
    return Finished(
        lines=stats["requests"],
        events_lost=stats["drops"],
        cpu_ns=child.cpu_ns,
        output_bytes=lines.stat().st_size,
    )


def _ready(child: Child) -> bool:
    child.alive_or_fail("logger")
    return "ready" in child.stderr()


def run(quick: bool, progress: Callable[[str], None] = print, rounds: int | None = None) -> Path:
    """Benchmark 4; writes reports/out/bench/http_nginx.json and returns its path.

    quick: 1 round of 3 s per method (about 30 s); full: 3 rounds of 10 s (about 3.5 min), each extractor
    leg after xhdr log's compile (5-20 s). ``rounds`` overrides the profile's: on a noisy machine three rounds
    cannot tell a few percent from a slow spell.
    """
    profile_rounds, seconds = (1, 3) if quick else (3, 10)
    rounds = rounds or profile_rounds
    config = ExtractorConfig()
    taken: dict[str, list[dict[str, float]]] = {method: [] for method in METHODS}
    with empty_program_fd() as empty_fd, Lab() as lab, bpf_stats():
        for round_number in range(rounds):
            for method in METHODS:
                progress(f"round {round_number + 1}/{rounds}, {method}, wrk for {seconds} s")
                taken[method].append(measure(lab, method, seconds, config, empty_fd))
    rows = summarise(taken, seconds)
    for line in headline(rows).splitlines():
        progress(line)
    return write_results(SUITE, rows, config)


def summarise(taken: dict[str, list[dict[str, float]]], seconds: int) -> list[Row]:
    """Medians over rounds per method and metric, the requests each log missed, and requests/s relative to
    no logging and, for the extractor's legs, to nginx's access log: the median and each round's own ratio
    (to the same round's other run), so the report can show the spread. Units are those of reports/metrics.py."""
    params = {"rounds": len(taken["no_logging"]), "seconds": seconds, "connections": CONNECTIONS}
    rows: list[Row] = []
    for method, figures in taken.items():
        for metric in figures[0]:
            value = statistics.median(f[metric] for f in figures)
            rows.append(Row(method, metric, value, METRICS[metric].unit, params))
        if "logged" in figures[0]:
            missing = sum(max(f["requests"] - f["logged"], 0) for f in figures)
            rows.append(Row(method, "requests_not_logged", missing, "requests", params))
    for method in METHODS[1:]:
        rows += _paired(taken, method, "no_logging", "rps_ratio_to_no_logging", "rps_ratio_round", params)
    for method in EXTRACTOR_OUTPUTS:
        for base, metric in ACCESS_LOG_COMPARISONS.items():
            rows += _paired(taken, method, base, metric, f"{metric}_round", params)
    return rows


def _paired(
    taken: dict[str, list[dict[str, float]]],
    method: str,
    base: str,
    metric: str,
    round_metric: str,
    params: dict,
) -> list[Row]:
    """``method``'s requests/s over ``base``'s, round by round (legs of a round ran minutes apart at most, so
    a slow spell of the machine hits both): the median as ``metric`` (harness/core/paired.py), each round as
    ``round_metric``."""
    ours = [f["requests_per_second"] for f in taken[method]]
    theirs = [b["requests_per_second"] for b in taken[base]]
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    return [
        Row(method, metric, median_ratio(ours, theirs), "x", params),
        *(Row(method, round_metric, ratio, "x", params | {"round": n}) for n, ratio in enumerate(ratios, 1)),
    ]


def headline(rows: list[Row]) -> str:
    """What the run says, in a few lines: requests/s each method kept of no logging's, the bytes each log
    wrote per request, and each extractor leg against nginx's access log round by round (issue 11's target:
    ahead of it), then against the access log behind the same hook, each judged by the interval of the rounds'
    paired ratios (harness/core/paired.py)."""
    kept = {row.method: row.value for row in rows if row.metric == "rps_ratio_to_no_logging"}
    written = {row.method: row.value for row in rows if row.metric == "log_bytes_per_request"}
    lines = [
        "requests/s kept of no logging's (higher is better): "
        + ", ".join(f"{method_label(method)} {value:.3f}" for method, value in kept.items()),
        "bytes written per logged request (lower is better): "
        + ", ".join(f"{method_label(method)} {value:.0f}" for method, value in written.items()),
    ]
    for base, metric in ACCESS_LOG_COMPARISONS.items():
        for method, median in ((row.method, row.value) for row in rows if row.metric == metric):
            rounds = per_round(rows, method, f"{metric}_round")
            ahead = sum(ratio > 1 for ratio in rounds)
            lines.append(
                f"{method_label(method)} against {method_label(base)}: "
                f"{median:.3f} of its requests/s, ahead in {ahead} of {len(rounds)} rounds "
                f"({', '.join(f'{ratio:.3f}' for ratio in rounds)}): {judge_rounds(rounds).says}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(run(quick="--quick" in sys.argv))
