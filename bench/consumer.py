"""Benchmark 5: the events per second one core of ``xhdr log``'s consumer clears from a full ring buffer into
a file: JSON lines, text lines, audited JSON lines, and the records themselves (``--records``).

The consumer is the binary ``xhdr log`` runs, started with the command line it builds
(``harness.log.consumer.consumer_argv``), on a real extractor's ring buffer. Each cycle starts a consumer on a
new output file and stops it (SIGSTOP) once it is ready, fills the ring with BPF_PROG_TEST_RUN of the
standard request (a SYN with data, so every run logs an event) up to the last record that fits, then
continues it (SIGCONT): it has a full ring to clear and nothing producing meanwhile. It is started with
``--count`` set to the events in the ring, so it exits after writing the last one and the end is its exit,
seen through a pidfd the moment it happens; no polling, no reader competing for the output file.

Figures per cycle, medians over cycles: events per second (events over the wall time from SIGCONT to the
exit) and CPU ns per event (its rusage at exit less its CPU time while stopped, so its start-up is left
out). The ring is the largest a configuration allows, so a cycle lasts long enough (about 45,000 events)
for its start and end to be small beside it. The machine's other work shows mostly in the wall figure,
less in the CPU one.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench import kernel_cost
from bench.results import Row, write_results
from bench.targets import CONSUMER_EVENTS_PER_SECOND
from bench.xhdr_log import output_counter, process_cpu_ns
from harness.core.config import ExtractorConfig
from harness.core.counters import Counter, Counts, counts_difference
from harness.core.ownership import scratch_directory
from harness.core.program import Program
from harness.core.testrun import test_run
from harness.core.wait import wait_until
from harness.log.audit import new_key
from harness.log.command import await_ready
from harness.log.consumer import LogFormat, consumer_argv

SUITE = "consumer"
# name: (what each event becomes, sealed by --audit); an audited run ends with one more line, its end record
FORMATS = {
    "json": (LogFormat.JSON, False),
    "text": (LogFormat.TEXT, False),
    "json_audit": (LogFormat.JSON, True),
    "records": (LogFormat.RECORDS, False),
}
RING_PAGES = 4096  # the largest ring ExtractorConfig allows: 16 MiB
DRAIN_DEADLINE_S = 60.0


def ring_capacity(program: Program, frame: bytes) -> int:
    """How many events of ``frame`` the empty ring holds: the kernel takes a record only while the data
    it holds stays below the ring's size, each record padded to 8 bytes after its header.

    The record's length is read from one event taken here, before any consumer runs.
    """
    program.keep_records = True
    test_run(program.fd, frame)
    program.take_events()
    [record] = program.take_records()
    program.keep_records = False
    return (program.config.ring_bytes - 1) // kernel_cost.ring_bytes(len(record))


@contextlib.contextmanager
def stopped_consumer(
    program: Program, *, fmt: LogFormat, count: int, output: Path, audit_key: Path | None
) -> Iterator[subprocess.Popen[bytes]]:
    """A consumer started on the program's ring and stopped (SIGSTOP) once ready; killed if left running."""
    ring_fd = program.bpf[b"events"].map_fd
    argv = consumer_argv(program.config, ring_fd, fmt=fmt, count=count, output=output, audit_key=audit_key)
    proc = subprocess.Popen(argv, pass_fds=(ring_fd,), stderr=subprocess.PIPE)
    try:
        await_ready(proc)
        proc.send_signal(signal.SIGSTOP)
        wait_until(lambda: _state(proc.pid) == "T", 10.0, "the consumer to stop")
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def _state(pid: int) -> str:
    """The process state letter of /proc/PID/stat (R, S, T...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def fill(program: Program, frame: bytes, events: int) -> Counts:
    """Runs the program ``events`` times on ``frame``; the counters it moved. Each run logs one event."""
    before = program.counters()
    test_run(program.fd, frame, events)
    moved = counts_difference(program.counters(), before)
    if moved[Counter.EVENTS] != events:
        raise RuntimeError(
            f"the ring took {moved[Counter.EVENTS]} of {events} events ({moved[Counter.EVENTS_LOST]} lost): "
            "ring_capacity() no longer matches the records"
        )
    return moved


def drain(proc: subprocess.Popen[bytes]) -> tuple[float, int]:
    """Continues the stopped consumer and waits for its exit; (seconds, CPU ns) from SIGCONT to the exit."""
    cpu_before = process_cpu_ns(proc.pid)
    pidfd = os.pidfd_open(proc.pid)
    try:
        started = time.monotonic()
        proc.send_signal(signal.SIGCONT)
        exited = select.select([pidfd], [], [], DRAIN_DEADLINE_S)[0]
        seconds = time.monotonic() - started
    finally:
        os.close(pidfd)
    if not exited:
        raise TimeoutError(f"the consumer did not clear the ring within {DRAIN_DEADLINE_S:.0f} s")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.stderr is not None
    said = proc.stderr.read().decode(errors="replace").strip()
    if proc.returncode != 0:
        raise RuntimeError(f"the consumer exited {proc.returncode}: {said}")
    return seconds, int((usage.ru_utime + usage.ru_stime) * 1e9) - cpu_before


def cycle(
    program: Program, frame: bytes, events: int, *, fmt: LogFormat, output: Path, audit_key: Path | None
) -> dict[str, float]:
    """One full ring cleared by a new consumer into ``output``: events produced, written, and their cost."""
    with stopped_consumer(program, fmt=fmt, count=events, output=output, audit_key=audit_key) as proc:
        moved = fill(program, frame, events)
        seconds, cpu_ns = drain(proc)
    written = output_counter(output, fmt).count() - (audit_key is not None)  # not the end record
    output.unlink()
    return {
        "events_produced": moved[Counter.EVENTS],
        "events_lost": moved[Counter.EVENTS_LOST],
        "events_written": written,
        "events_per_second": events / seconds,
        "cpu_ns_per_event": cpu_ns / events,
    }


def run(quick: bool, progress: Callable[[str], None] = print) -> Path:
    """Benchmark 5; writes reports/out/bench/consumer.json and returns its path.

    quick: 5 cycles per format (a few seconds after the compile); full: 30 cycles per format.
    """
    cycles = 5 if quick else 30
    config, frame = ExtractorConfig(ringbuf_pages=RING_PAGES), kernel_cost.benchmark_frame()
    taken: dict[str, list[dict[str, float]]] = {name: [] for name in FORMATS}
    progress("compiling the extractor")
    with Program(config) as program, scratch_directory("bench-consumer") as scratch:
        events = ring_capacity(program, frame)
        key = Path(scratch) / "audit.key"
        new_key(key)
        for number in range(cycles):
            for name, (fmt, audited) in FORMATS.items():  # interleaved: drift on the machine hits all alike
                progress(f"cycle {number + 1}/{cycles}, {name}, {events:,} events")
                output = Path(scratch) / f"events.{name}"
                audit_key = key if audited else None
                taken[name].append(cycle(program, frame, events, fmt=fmt, output=output, audit_key=audit_key))
    rows = summarise(taken, events, config, len(frame))
    for name in FORMATS:
        figures = {row.metric: row.value for row in rows if row.params["format"] == name}
        target = f" (target: at least {CONSUMER_EVENTS_PER_SECOND:,})" if name == "json" else ""
        progress(
            f"{name}: {figures['events_per_second']:,.0f} events/s{target}, "
            f"{figures['cpu_ns_per_event']:.0f} CPU ns per event"
        )
    return write_results(SUITE, rows, config)


def summarise(
    taken: dict[str, list[dict[str, float]]], events: int, config: ExtractorConfig, frame_bytes: int
) -> list[Row]:
    """Per format: rates as medians over cycles, events written and lost as totals; the events produced
    (the workload, counted by the extractor) go in the parameters, as lab_throughput's frames do."""
    rows: list[Row] = []
    for name, figures in taken.items():
        params = {
            "format": name,
            "output": "file",
            "cycles": len(figures),
            "events_per_cycle": events,
            "events_produced": sum(f["events_produced"] for f in figures),
            "ring_bytes": config.ring_bytes,
            "frame_bytes": frame_bytes,
        }
        rows += [
            Row("consumer", "events_per_second", _median(figures, "events_per_second"), "events/s", params),
            Row("consumer", "cpu_ns_per_event", _median(figures, "cpu_ns_per_event"), "ns", params),
            Row("consumer", "events_written", sum(f["events_written"] for f in figures), "events", params),
            Row("consumer", "events_lost", sum(f["events_lost"] for f in figures), "events", params),
        ]
    return rows


def _median(figures: list[dict[str, float]], metric: str) -> float:
    return statistics.median(f[metric] for f in figures)


if __name__ == "__main__":
    import sys

    print(run(quick="--quick" in sys.argv))
