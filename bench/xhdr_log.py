"""``xhdr log`` as the benchmarks run it: the command users run, watched from outside.

The lab suites start it as a subprocess and read what they need of it without its help: the program it
attached (found by id on the interface, so bpf_stats can time it), the extractor's counters (the program's
``counters`` map, found through the program), the lines in its output file, and the CPU time of it and its
consumer (the kernel's CPU-time clocks).

Its CPU time is read once its consumer has written every event the program logged, before it is stopped:
its exit (detach, BCC's clean-up, the interpreter's) costs a few hundred milliseconds, as much as the
consumer spends on 100,000 events, and is paid once per run, not per request.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from harness.cli.main import SCRIPT as XHDR
from harness.core.counters import Counter, Counts, counts_of
from harness.core.native import libbpf, map_info
from harness.core.percpu import PerCpuTotals
from harness.core.wait import wait_until
from harness.core.xdp import XdpMode, attached_mode, attached_prog_id
from harness.log.command import LOGGING_LINE
from harness.log.consumer import LogFormat
from harness.log.records import RecordCounter
from harness.verify.verifier import BpfProgInfo, object_info
from netns.lab import Lab

# The console script next to the running interpreter (tests/test_cli_log.py says why not ``python -m``).
ATTACH_DEADLINE_S = 120.0  # xhdr log compiles the extractor first: many seconds on a busy machine
DRAIN_DEADLINE_S = 30.0
EXIT_DEADLINE_S = 60.0
COUNTERS_MAP = b"counters"
CPUCLOCK_SCHED = 2  # the kernel's CPU-time clock ids: (~pid << 3) | CPUCLOCK_SCHED is a whole process's


# --- CPU time of live processes -------------------------------------------------------------------


def process_cpu_ns(pid: int) -> int:
    """CPU time (ns) a live process has used so far, all its threads, not its children.

    The process's CPU-time clock (clock_getcpuclockid) is exact to the nanosecond where /proc/PID/stat
    counts in 10 ms ticks, which is as much as a quick run's whole consumer figure.
    """
    return time.clock_gettime_ns(((~pid) << 3) | CPUCLOCK_SCHED)


def children(pid: int) -> list[int]:
    """The live children of a process, whichever of its threads started them."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return [int(child) for task in tasks for child in (task / "children").read_text().split()]


def tree_cpu_ns(pid: int) -> int:
    """CPU time of a live process and of its live descendants (xhdr log and its consumer)."""
    return process_cpu_ns(pid) + sum(tree_cpu_ns(child) for child in children(pid))


# --- a program and a map another process loaded -----------------------------------------------------


def _fd_by_id(function: str, object_id: int) -> int:
    """A descriptor of our own for a program or map by id (``bpf_prog_get_fd_by_id``...); the caller
    closes it. It keeps the object readable after the process that loaded it exits."""
    fd = getattr(libbpf(), function)(object_id)
    if fd < 0:
        raise OSError(ctypes.get_errno(), f"{function}({object_id}) failed")
    return fd


def map_fd_named(prog_fd: int, name: bytes) -> int:
    """A descriptor for the map called ``name`` that the program uses."""
    ids = (ctypes.c_uint32 * 64)()
    query = BpfProgInfo(nr_map_ids=len(ids), map_ids=ctypes.addressof(ids))
    object_info(prog_fd, query)
    for map_id in ids[: min(query.nr_map_ids, len(ids))]:
        fd = _fd_by_id("bpf_map_get_fd_by_id", map_id)
        if map_info(fd).name == name:
            return fd
        os.close(fd)
    raise LookupError(f"the attached program has no map named {name.decode()}")


# --- xhdr log -----------------------------------------------------------------------------------------------


class LineCounter:
    """Counts the lines of a growing file, reading only what was appended since the last count."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0

    def count(self) -> int:
        with open(self.path, "rb") as file:
            file.seek(self.offset)
            for chunk in iter(lambda: file.read(1 << 20), b""):
                self.lines += chunk.count(b"\n")
                self.offset += len(chunk)
        return self.lines


@dataclasses.dataclass(frozen=True)
class Finished:
    """What a logging run did, taken once every event was written (for xhdr log: before its exit)."""

    lines: int  # in the output file (records, for --records)
    events_lost: int  # the extractor's counter since the ``before`` reading (a capture: socket drops)
    cpu_ns: int  # of the logging process and its consumer since they started
    responses: int = 0  # of the lines, the responses' (R25): the extractor's counter since ``before``
    output_bytes: int = 0  # the size of what it wrote (its output file, its records file, its lines)


@dataclasses.dataclass(frozen=True)
class Logger:
    """A running ``xhdr log --json FILE`` (or ``--records FILE``) attached to the gateway's end."""

    proc: subprocess.Popen[bytes]
    err_path: Path
    output: LineCounter | RecordCounter
    prog_fd: int  # the program it attached, opened by id: its bpf_stats stay readable after it exits
    counter_totals: PerCpuTotals  # its counters map, opened by id (read at every poll of :meth:`written`)

    def counters(self) -> Counts:
        return counts_of(self.counter_totals.read())

    def written(self, before: Counts, packets: int) -> bool:
        """True once the program has run on ``packets`` frames since ``before`` and the output holds a
        line (or record) for every event it logged (both count from this xhdr log's start)."""
        counts = self.counters()
        ran = counts[Counter.PACKETS] - before[Counter.PACKETS] >= packets
        return ran and self.output.count() >= counts[Counter.EVENTS] + counts[Counter.RESPONSES]

    def finish(self, before: Counts, packets: int = 0) -> Finished:
        """Waits until :meth:`written`, takes the figures, then stops it as users do (SIGTERM)."""
        wait_until(lambda: self.written(before, packets), DRAIN_DEADLINE_S, "xhdr log to write every event")
        counts = self.counters()
        finished = Finished(
            lines=self.output.count(),
            events_lost=counts[Counter.EVENTS_LOST] - before[Counter.EVENTS_LOST],
            cpu_ns=tree_cpu_ns(self.proc.pid),
            responses=counts[Counter.RESPONSES] - before[Counter.RESPONSES],
            output_bytes=self.output.path.stat().st_size,
        )
        self.proc.send_signal(signal.SIGTERM)  # it detaches, lets its consumer drain the ring and exits
        wait_until(lambda: self.proc.poll() is not None, EXIT_DEADLINE_S, "xhdr log to exit")
        if self.proc.returncode != 0:
            raise RuntimeError(f"xhdr log exited {self.proc.returncode}: {_last_line(self.err_path)}")
        return finished


@contextlib.contextmanager
def running_logger(
    lab: Lab, mode: XdpMode, fmt: LogFormat = LogFormat.JSON, config: Path | None = None
) -> Iterator[Logger]:
    """``xhdr log --json FILE`` (or ``--text FILE``, ``--records FILE`` by ``fmt``; ``config``: ``--config
    FILE``) on the gateway's end, yielded once its program is attached (so its consumer runs: it attaches only
    then); killed if still running at the end, its output removed (hundreds of megabytes)."""
    assert lab.workdir is not None
    name = f"xhdr-log-{time.monotonic_ns()}"
    output, err_path = lab.workdir / f"{name}.{fmt.value}", lab.workdir / f"{name}.err"
    gateway = lab.gateway
    argv = [str(XHDR), "log", "--iface", gateway.ifname, "--netns", gateway.netns, "--mode", mode.value]
    argv += [f"--{fmt.value}", str(output), "--stats-every", "0"]
    argv += ["--config", str(config)] if config else []
    with contextlib.ExitStack() as stack:
        with open(err_path, "wb") as err:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        stack.callback(output.unlink, missing_ok=True)
        stack.callback(_kill, proc)
        prog_fd, counters_fd = _attached(lab, mode, proc, err_path, stack)
        totals = PerCpuTotals(counters_fd, "counters", len(Counter))
        yield Logger(proc, err_path, output_counter(output, fmt), prog_fd, totals)


def output_counter(path: Path, fmt: LogFormat) -> LineCounter | RecordCounter:
    """What counts the events written to ``path`` so far: its lines, or its records for ``--records``."""
    return RecordCounter(path) if fmt is LogFormat.RECORDS else LineCounter(path)


def _attached(
    lab: Lab, mode: XdpMode, proc: subprocess.Popen[bytes], err_path: Path, stack: contextlib.ExitStack
) -> tuple[int, int]:
    """Waits until xhdr log says it is logging (its responses program too is attached by then) and its XDP
    program is on the gateway; descriptors of it and of its counters map."""
    gateway = lab.gateway

    def attached() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"xhdr log exited {proc.returncode}: {_last_line(err_path)}")
        return LOGGING_LINE in err_path.read_text(errors="replace") and (
            attached_mode(gateway.ifname, gateway.netns) == mode.reported
        )

    wait_until(attached, ATTACH_DEADLINE_S, f"xhdr log to attach to {gateway.ifname}")
    prog_fd = _fd_by_id("bpf_prog_get_fd_by_id", attached_prog_id(gateway.ifname, gateway.netns) or 0)
    stack.callback(os.close, prog_fd)
    counters_fd = map_fd_named(prog_fd, COUNTERS_MAP)
    stack.callback(os.close, counters_fd)
    return prog_fd, counters_fd


def _last_line(err_path: Path) -> str:
    """xhdr log's last word on stderr: its one-line error when it fails."""
    lines = [line for line in err_path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL if still running: its BPF link goes with it, its consumer gets SIGTERM from the kernel."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=EXIT_DEADLINE_S)
