"""Benchmark 3: the standard request over the lab's veth pair at the highest rate trafgen reaches.

Each mode receives the same burst of frames on the gateway's veth end: nothing attached, the empty XDP
program, the extractor in native and in generic mode, and each user-space baseline capturing instead. The
extractor legs run ``xhdr log --json FILE`` itself, the process users run (it compiles and attaches
the extractor; its compiled consumer writes one JSON line per request to a file); one more native leg runs
``xhdr log --records FILE``, which writes the records themselves (docs/RECORDS.md). Modes are measured round by
round, interleaved, so noise from other work on the machine hits all of them alike; the figures are medians
over rounds.

CPU time comes from the kernel's own accounting: the sender's rusage (the kernel has no IRQ time accounting
here, so the receive softirq that runs inline after a veth transmit is charged to the sender), the runtime of
the ksoftirqd threads (softirq work deferred to them), and the CPU time of the logging or capturing process
from the start of the burst: for xhdr log, its and its consumer's CPU-time clocks from then until every event
is written (neither its compile nor its exit is counted, bench/xhdr_log.py); for a baseline, its rusage at
exit less its CPU time before the burst. With bpf_stats enabled, the kernel also times the XDP program itself
(run_time_ns). The decomposition per XDP mode: hook = empty - nothing, program = extractor - empty (kernel
side), logger = xhdr log and its consumer; for a baseline: its extra kernel work (capture - nothing) plus its
process. Every leg that logs writes its log to a file in the lab's directory, the baselines' lines as xhdr
log's output: the figure is CPU per logged request, and a capture that threw its lines away would not be
paying for the log (about 450 ns of the C capture's 4.4 us per request here, measured side by side).

The frames carry a destination MAC that is not the gateway's, so after the hook the stack drops them at
once instead of answering each with a TCP reset: the common work every mode pays stays small.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pyroute2 import IPRoute

from bench import kernel_cost
from bench.baselines import BASELINES, CaptureCommand
from bench.results import Row, write_results
from bench.xhdr_log import Logger, running_logger, tree_cpu_ns
from harness.core.config import ExtractorConfig
from harness.core.cost import empty_program_fd
from harness.core.wait import wait_until
from harness.core.xdp import XdpMode, attach_xdp, detach_xdp
from harness.log.consumer import LogFormat
from harness.verify.verifier import prog_info
from netns.lab import Lab

SUITE = "lab_throughput"
OTHER_HOST_MAC = bytes.fromhex("027868000099")
XDP_MODES = {"native": XdpMode.NATIVE, "generic": XdpMode.GENERIC}
BPF_STATS = Path("/proc/sys/kernel/bpf_stats_enabled")


def lab_frame(dst_mac: bytes = OTHER_HOST_MAC) -> bytes:
    """Benchmark 1's standard request (a SYN with data, so every copy of the burst is parsed), to ``dst_mac``."""
    return dst_mac + kernel_cost.benchmark_frame()[6:]


# --- the kernel's accounting --------------------------------------------------------------------------


def ksoftirqd_ns() -> int:
    """Total runtime (ns, CFS accounting) of the ksoftirqd threads: softirq work deferred to them."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().startswith("ksoftirqd/"):
                total += int((entry / "schedstat").read_text().split()[0])
        except OSError:
            continue
    return total


def softirq_ticks() -> int:
    """The softirq column of /proc/stat, all CPUs (tick samples: informative, system wide)."""
    with open("/proc/stat") as stat:
        return int(stat.readline().split()[7])


def rx_packets(lab: Lab) -> int:
    with IPRoute(netns=lab.gateway.netns, flags=0) as ipr:
        return ipr.get_links(lab.gateway.ifindex)[0].get_attr("IFLA_STATS64")["rx_packets"]


def prog_runtime(fd: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) the kernel counted for a program while bpf_stats is enabled."""
    info = prog_info(fd)
    return info.run_time_ns, info.run_cnt


@contextlib.contextmanager
def bpf_stats() -> Iterator[None]:
    """Turns on the kernel's per-program run time accounting for the block, restoring the old setting."""
    previous = BPF_STATS.read_text().strip()
    BPF_STATS.write_text("1")
    try:
        yield
    finally:
        BPF_STATS.write_text(previous)


# --- processes started in the lab, reaped with their rusage -----------------------------------------------


@dataclasses.dataclass
class Child:
    """A process in a lab namespace whose CPU time the kernel reports at exit (wait4)."""

    proc: subprocess.Popen[bytes]
    err_path: Path
    cpu_ns: int = 0
    status: int | None = None

    def poll(self) -> bool:
        """True once exited (and reaped, with its user + system time recorded)."""
        if self.status is None:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid == 0:
                return False
            self.status = os.waitstatus_to_exitcode(status)
            self.proc.returncode = self.status
            self.cpu_ns = int((usage.ru_utime + usage.ru_stime) * 1e9)
        return True

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def alive_or_fail(self, what: str) -> None:
        if self.poll():
            lines = [line for line in self.stderr().splitlines() if line.strip()]
            raise RuntimeError(f"{what} exited {self.status}: {lines[-1] if lines else '(no output)'}")


def start(lab: Lab, netns: str | None, argv: list[str], name: str, stdout: Path | None = None) -> Child:
    """Starts ``argv`` (in ``netns`` unless None), stdout to ``stdout`` (a log it writes; default /dev/null),
    stderr kept; the lab stops it."""
    assert lab.workdir is not None
    err_path = lab.workdir / f"{name}-{time.monotonic_ns()}.err"
    cmd = ["ip", "netns", "exec", netns, *argv] if netns else argv
    with open(stdout or os.devnull, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, start_new_session=True)
    child = Child(proc, err_path)
    lab.defer(lambda: _stop(child), f"stop {name} (pid {proc.pid})")
    return child


def _stop(child: Child) -> None:
    """SIGKILL to the child's process group (it leads a session of its own), so that what it started, such
    as nginx's workers, goes with it instead of running on without its master."""
    if child.poll():
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.proc.pid, signal.SIGKILL)
    wait_until(child.poll, 10.0, f"pid {child.proc.pid} to exit")


def stats_of(child: Child) -> dict[str, int]:
    """The ``stats packets=.. requests=.. drops=..`` line every capture and consumer prints at exit."""
    found = re.search(r"stats packets=(\d+) requests=(\d+) drops=(\d+)", child.stderr())
    if not found:
        raise RuntimeError(f"no stats line from pid {child.proc.pid}: {child.stderr()[-200:]!r}")
    return {"packets": int(found[1]), "requests": int(found[2]), "drops": int(found[3])}


# --- the sender ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Burst:
    sent: int
    seconds: float
    sender_cpu_ns: int  # trafgen's user + system time, including the receive softirq run inline


def trafgen_config(lab: Lab, frame: bytes) -> Path:
    assert lab.workdir is not None
    path = lab.workdir / "standard.trafgen"
    path.write_text("{ " + ", ".join(f"0x{byte:02x}" for byte in frame) + " }\n")
    return path


def blast(lab: Lab, config_path: Path, count: int, timeout: float = 60.0) -> Burst:
    """trafgen sends ``count`` frames from the client as fast as it can (one process, bounded count)."""
    argv = ["trafgen", "-o", lab.client.ifname, "-i", str(config_path), "-n", str(count), "-P", "1"]
    child = start(lab, lab.client.netns, [*argv, "--no-sock-mem", "--notouch-irq"], "trafgen")
    started = time.monotonic()
    wait_until(child.poll, timeout, f"trafgen to send {count} frames", interval=0.005)
    seconds = time.monotonic() - started
    if child.status != 0:
        raise RuntimeError(f"trafgen exited {child.status}: {child.stderr().strip().splitlines()[-1:]}")
    return Burst(count, seconds, child.cpu_ns)


# --- one measurement ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sample:
    """One mode, one round."""

    mode: str
    sent: int
    received: int  # by the gateway's veth
    handled: int  # lines xhdr log wrote, or requests the baseline logged
    lost: int  # events lost (ring buffer full: the extractor's events_lost) or packets the socket dropped
    seconds: float
    kernel_ns: int  # sender + inline and deferred softirq
    process_ns: int  # xhdr log with its consumer, or the capturing process, from the burst's start
    prog_ns: float  # the XDP program's own run time per run (bpf_stats), 0 without one
    softirq_ticks: int
    output_bytes: int  # what the logger or baseline wrote to its log file (0 for the legs that log nothing)

    @property
    def pps(self) -> float:
        return self.received / self.seconds


def measure(
    lab: Lab, config_path: Path, mode: str, count: int, empty_fd: int, config: ExtractorConfig, key: bytes
) -> Sample:
    """Sends one burst with ``mode`` in place and returns what the kernel accounted for it."""
    with contextlib.ExitStack() as stack:
        leg = set_up(lab, mode, count, empty_fd, config, key, stack)
        process_before = tree_cpu_ns(leg.pid) if leg.pid else 0
        counts_before = leg.logger.counters() if leg.logger else {}
        run_before = prog_runtime(leg.prog_fd) if leg.prog_fd is not None else (0, 0)
        rx_before, ksoft_before, ticks_before = rx_packets(lab), ksoftirqd_ns(), softirq_ticks()
        burst = blast(lab, config_path, count)
        handled = lost = process_after = written = 0
        if leg.logger:
            # Until the program itself has seen every frame (the veth counts a frame received before
            # generic XDP runs it) and the consumer has written every event: xhdr log's exit is not counted.
            finished = leg.logger.finish(counts_before, packets=count)
            handled, lost, process_after = finished.lines, finished.events_lost, finished.cpu_ns
            written = finished.output_bytes
        elif leg.child:  # a baseline: it stops by itself after ``count`` packets
            wait_until(leg.child.poll, 60.0, f"{mode} to finish")
            stats = stats_of(leg.child)
            handled, lost, process_after = stats["requests"], stats["drops"], leg.child.cpu_ns
            written = leg.log.stat().st_size if leg.log else 0
        run_after = prog_runtime(leg.prog_fd) if leg.prog_fd is not None else (0, 0)
        received = rx_packets(lab) - rx_before
        kernel_ns = burst.sender_cpu_ns + ksoftirqd_ns() - ksoft_before
        ticks = softirq_ticks() - ticks_before
    runs = run_after[1] - run_before[1]
    return Sample(
        mode=mode,
        sent=burst.sent,
        received=received,
        handled=handled,
        lost=lost,
        seconds=burst.seconds,
        kernel_ns=kernel_ns,
        process_ns=process_after - process_before,
        prog_ns=(run_after[0] - run_before[0]) / runs if runs else 0.0,
        softirq_ticks=ticks,
        output_bytes=written,
    )


@dataclasses.dataclass(frozen=True)
class Leg:
    """What one mode has in place for a burst: the XDP program bpf_stats times, and the process charged
    with the logging or capturing (xhdr log with its consumer, or a baseline)."""

    prog_fd: int | None = None
    logger: Logger | None = None
    child: Child | None = None
    log: Path | None = None  # where a baseline writes its lines

    @property
    def pid(self) -> int | None:
        process = self.logger.proc if self.logger else self.child.proc if self.child else None
        return process.pid if process else None


def set_up(
    lab: Lab,
    mode: str,
    count: int,
    empty_fd: int,
    config: ExtractorConfig,
    key: bytes,
    stack: contextlib.ExitStack,
) -> Leg:
    """Puts ``mode`` in place on the gateway's end, ready for ``count`` frames; ``stack`` takes it away."""
    kind, xdp, output = _leg(mode)
    if kind == "extractor":
        logger = stack.enter_context(running_logger(lab, XDP_MODES[xdp], LogFormat(output)))
        return Leg(prog_fd=logger.prog_fd, logger=logger)
    if kind == "empty":
        attach_xdp(empty_fd, lab.gateway.ifname, XDP_MODES[xdp], lab.gateway.netns)
        stack.callback(detach_xdp, lab.gateway.ifname, XDP_MODES[xdp], lab.gateway.netns)
        return Leg(prog_fd=empty_fd)
    if kind in BASELINES:
        command = CaptureCommand(kind, config, key, max_packets=count, max_seconds=120.0)
        # Its log goes to a file beside xhdr log's, as a capture that logs would write it: the legs compare
        # CPU per logged request, and writing the log is part of that on both sides.
        assert lab.workdir is not None
        lines = lab.workdir / f"{kind}.lines"
        stack.callback(lines.unlink, missing_ok=True)
        child = start(lab, lab.gateway.netns, command.argv(lab.gateway.ifname), kind, stdout=lines)
        wait_until(lambda: _ready(child, mode), 20.0, f"{mode} to be ready")
        return Leg(child=child, log=lines)
    return Leg()


def _ready(child: Child, what: str) -> bool:
    child.alive_or_fail(what)
    return "ready" in child.stderr()


# --- the suite -----------------------------------------------------------------------------------------------

MODES = (
    "none",
    "empty-native",
    "extractor-native",
    "extractor-native-records",
    "empty-generic",
    "extractor-generic",
    "c_tpacket_v3",
    "af_packet_httptools",
    "af_packet_python",
)


EXTRACTOR_MODES = tuple(mode for mode in MODES if mode.startswith("extractor-"))


def run(quick: bool, progress: Callable[[str], None] = print, rounds: int | None = None) -> Path:
    """Benchmark 3; writes reports/out/bench/lab_throughput.json and returns its path.

    quick: 1 round of 100,000 frames per mode (about 30 s); full: 3 rounds of 1,000,000 (about 3-4 min).
    Each extractor leg waits for xhdr log to compile the extractor (5-20 s) before its burst. ``rounds``
    overrides the profile's.
    """
    profile_rounds, count = (1, 100_000) if quick else (3, 1_000_000)
    rounds = rounds or profile_rounds
    config, key = ExtractorConfig(), os.urandom(16)
    samples: dict[str, list[Sample]] = {mode: [] for mode in MODES}
    with empty_program_fd() as empty_fd, Lab() as lab, bpf_stats():
        config_path = trafgen_config(lab, lab_frame())
        for round_number in range(rounds):
            for mode in MODES:
                progress(f"round {round_number + 1}/{rounds}, {mode}, {count:,} frames")
                samples[mode].append(measure(lab, config_path, mode, count, empty_fd, config, key))
    rows = summarise(samples, count, rounds)
    return write_results(SUITE, rows, config)


def summarise(samples: dict[str, list[Sample]], count: int, rounds: int) -> list[Row]:
    """Medians per mode, then the decomposition: hook, program, logger, baseline costs per packet."""
    rows: list[Row] = []
    params = {"frames": count, "rounds": rounds, "frame_bytes": len(lab_frame())}
    kernel: dict[str, float] = {}
    process: dict[str, float] = {}
    for mode, taken in samples.items():
        method, mode_params = _method(mode)
        p = params | mode_params
        kernel[mode] = statistics.median(s.kernel_ns / s.sent for s in taken)
        handled = statistics.median(s.handled for s in taken)
        process[mode] = statistics.median(s.process_ns / max(s.handled, 1) for s in taken) if handled else 0.0
        rows += [
            Row(method, "packets_per_second", statistics.median(s.pps for s in taken), "pps", p),
            Row(method, "kernel_cpu_ns_per_packet", kernel[mode], "ns", p),
            Row(method, "process_cpu_ns_per_request", process[mode], "ns", p),
            Row(method, "requests_handled", handled, "requests", p),
            Row(method, "events_lost", statistics.median(s.lost for s in taken), "events", p),
            Row(method, "softirq_ticks", statistics.median(s.softirq_ticks for s in taken), "ticks", p),
        ]
        if handled:
            per_request = statistics.median(s.output_bytes / max(s.handled, 1) for s in taken)
            rows.append(Row(method, "log_bytes_per_request", per_request, "bytes", p))
        if any(s.prog_ns for s in taken):
            rows.append(
                Row(method, "bpf_run_ns_per_packet", statistics.median(s.prog_ns for s in taken), "ns", p)
            )
    for mode in EXTRACTOR_MODES:
        _, xdp, output = _leg(mode)
        p = params | {"mode": xdp, "output": output}
        hook = kernel[f"empty-{xdp}"] - kernel["none"]
        program = kernel[mode] - kernel[f"empty-{xdp}"]
        total = kernel[mode] - kernel["none"] + process[mode]
        rows += [
            Row("extractor", "hook_cost_ns", hook, "ns", p),
            Row("extractor", "program_cost_ns", program, "ns", p),
            Row("extractor", "logger_cost_ns", process[mode], "ns", p),
            Row("extractor", "cpu_ns_per_logged_request", total, "ns", p),
        ]
    for baseline in BASELINES:
        p = params | {"baseline": baseline}
        extra_kernel = kernel[baseline] - kernel["none"]
        total = extra_kernel + process[baseline]
        rows += [
            Row(baseline, "kernel_delivery_cost_ns", extra_kernel, "ns", p),
            Row(baseline, "cpu_ns_per_logged_request", total, "ns", p),
        ]
    c_total = next(
        r.value for r in rows if r.method == "c_tpacket_v3" and r.metric == "cpu_ns_per_logged_request"
    )
    ours = [r for r in rows if r.method == "extractor"]
    for row in [r for r in ours if r.metric == "cpu_ns_per_logged_request"]:
        rows.append(Row("extractor", "ratio_to_c_baseline", _over(row.value, c_total), "x", row.params))
    # Issue 11 measures the program and the consumer: the hook is what any XDP program on veth pays.
    for row in [r for r in ours if r.metric == "program_cost_ns"]:
        logger = next(r.value for r in ours if r.metric == "logger_cost_ns" and r.params == row.params)
        both = row.value + logger
        rows += [
            Row("extractor", "program_and_logger_ns", both, "ns", row.params),
            Row("extractor", "program_and_logger_to_c_baseline", _over(both, c_total), "x", row.params),
        ]
    return rows


def _over(ours: float, c_total: float) -> float:
    return ours / c_total if c_total else 0.0


def _leg(mode: str) -> tuple[str, str, str]:
    """A mode's kind, XDP mode and, for the extractor, what xhdr log writes: ``extractor-native-records``."""
    kind, _, rest = mode.partition("-")
    xdp, _, output = rest.partition("-")
    return kind, xdp, output or (LogFormat.JSON.value if kind == "extractor" else "")


def _method(mode: str) -> tuple[str, dict[str, str]]:
    kind, xdp, output = _leg(mode)
    if kind == "none":
        return "nothing_attached", {}
    return kind, ({"mode": xdp} if xdp else {}) | ({"output": output} if output else {})


if __name__ == "__main__":
    import sys

    print(run(quick="--quick" in sys.argv))
