"""``xhdr log``: attach the extractor to a real interface and write what it logs until stopped.

The process is split where the work is. This one is the control plane: it has a helper process load the
program (harness/core/handover.py: BCC's LLVM stays in the helper, which exits), attaches it, prints the
counters, and detaches. The data plane is the compiled consumer (harness/log/consumer),
which maps the ring buffer and writes each event as a line at a few hundred nanoseconds per event; decoding
in Python cost about 36 us per event, more than the kernel spends extracting the request.

Stopping is the normal end: Ctrl-C, SIGTERM, ``--count`` or ``--duration`` detach first, then let the
consumer write what the ring still holds, then print the counters and exit 0. Every other failure is one
line on stderr and leaves nothing attached or running.

SIGHUP reloads the request rules (docs/EXTRACTION.md R27) from the ``--config`` file into the running program's
map: nothing is reloaded or detached, and events name their rule themselves, so none is misnamed. A file that
does not parse, or that changes anything but ``[[rules]]``, is one line on stderr; the running rules stay.
SIGUSR1 opens the output file again, for log rotation (harness/log/rotation.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from pyroute2 import netns as pr_netns

from harness.cli import options
from harness.cli.main import require_root
from harness.cli.textui import table
from harness.core.aggregates import Aggregate
from harness.core.config import ConfigError, ExtractorConfig, load_config
from harness.core.counters import Counter, Counts, counts_difference
from harness.core.errors import CommandError
from harness.core.handover import HandedOver
from harness.core.latencies import EndpointLatencies, read_latencies
from harness.core.xdp import AttachError, XdpMode, attached_mode
from harness.log.audit import AuditError, read_key
from harness.log.consumer import LogFormat, consumer_argv
from harness.log.format import printable
from harness.log.rotation import forwarding_reopen

# How often the control loop looks at the consumer and the stop request: a stop takes effect within this.
TICK_S = 0.1
CONSUMER_READY_S = 10.0
CONSUMER_EXIT_S = 30.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STATS_EVERY_S = 10.0  # the counter line's default period
TOP_EVERY_S = 2.0  # --top's, as top's own
RELOAD_SIGNAL = signal.SIGHUP
# Starts the line on stderr that says every program is attached and the consumer reads the ring: what a user,
# or a script running xhdr log, waits for before sending traffic it wants logged.
LOGGING_LINE = "xhdr log: logging requests on"
# The counters that say what happened to a packet or an event, shown in the periodic line when they moved.
REASONS = tuple(counter for counter in Counter if counter not in (Counter.PACKETS, Counter.EVENTS))


def register(subcommands: argparse._SubParsersAction) -> None:
    """Adds ``log`` to the ``xhdr`` command line (found through the xhdr.commands entry point)."""
    parser = subcommands.add_parser(
        "log",
        help="attach the extractor to an interface and write each logged request",
        description="Attach the extractor to an existing interface and write one line per logged request "
        "until Ctrl-C, SIGTERM, --count or --duration; then detach and print the counters on stderr. "
        "SIGHUP reloads the [[rules]] of --config; SIGUSR1 opens the output file again (log rotation).",
    )
    parser.add_argument("--iface", required=True, help="interface to attach to")
    parser.add_argument("--netns", help="named network namespace that holds the interface (`ip netns list`)")
    options.add_mode(parser)
    options.add_config(parser, "ports 80 and 8080 and the default header rules")
    written = parser.add_mutually_exclusive_group()
    options.add_json(parser, "the events (one object a line, appended)", group=written)
    options.add_text(parser, group=written)
    written.add_argument(
        "--records",
        type=Path,
        metavar="FILE",
        help="append the extractor's records themselves to FILE, the cheapest output for machines; "
        "`xhdr decode FILE` makes the lines later (docs/RECORDS.md)",
    )
    parser.add_argument(
        "--audit",
        type=Path,
        metavar="KEYFILE",
        help="seal each JSON line into a tamper-evident chain with this key (`xhdr audit newkey`, "
        "`xhdr audit verify`); needs --json FILE",
    )
    parser.add_argument(
        "--aggregates",
        type=Path,
        metavar="FILE",
        help="at exit, write what the rules that count by headers counted (docs/EXTRACTION.md R30) to FILE "
        "as JSON; the busiest are printed on stderr either way",
    )
    parser.add_argument(
        "--top",
        action="store_true",
        help="instead of the counter line, show the rules' hits and counts by header value on stderr, "
        "redrawn every --stats-every seconds like top (docs/EXTRACTION.md R27, R30)",
    )
    parser.add_argument("--count", type=_positive_int, help="stop after this many events")
    parser.add_argument("--duration", type=_positive_float, help="stop after this many seconds")
    parser.add_argument(
        "--stats-every",
        type=float,
        metavar="S",
        help="print a counter line on stderr every S seconds (0: only the summary at exit); default 10, "
        f"and {TOP_EVERY_S:g} with --top",
    )
    parser.set_defaults(run=run)


def log_file(args: argparse.Namespace) -> Path | None:
    """The file the events are appended to (``--json FILE``, ``--text FILE`` or ``--records FILE``); None for
    stdout."""
    target = next((t for t in (args.json, args.text, args.records) if t is not None), None)
    return None if target is None or str(target) == options.STDOUT else target


def log_format(args: argparse.Namespace) -> LogFormat:
    """What each event becomes: ``--json``, ``--records``, or text lines by default."""
    if args.json is not None:
        return LogFormat.JSON
    return LogFormat.RECORDS if args.records is not None else LogFormat.TEXT


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def run(args: argparse.Namespace) -> int:
    """Checks everything that can be checked cheaply before the (slow) compile, then streams events."""
    require_root("xhdr log")
    options.check(args)
    if log_format(args) is LogFormat.RECORDS and log_file(args) is None and sys.stdout.isatty():
        raise CommandError(
            "--records - writes binary records; send stdout to a file or a pipe, or give a FILE"
        )
    config = options.extractor_config(args, ExtractorConfig())
    if args.aggregates is not None:
        options.output_file(args.aggregates, "--aggregates")
    mode = XdpMode(args.mode)
    where = f"{args.iface} in namespace {args.netns}" if args.netns else args.iface
    check_interface(args.iface, args.netns)
    if args.audit is not None:
        if not args.json:
            raise CommandError("--audit seals JSON lines; add --json FILE")
        try:
            read_key(args.audit)
        except AuditError as error:
            raise CommandError(str(error)) from None
    # Stop signals are taken over only once compiled: a Ctrl-C during the compile just ends the command.
    with (
        forwarding_reopen() as reopen,
        HandedOver(config) as program,
        stop_signals() as stopped,
        reload_signal() as reloads,
    ):
        ring_fd = program.ring_fd
        argv = consumer_argv(
            config,
            ring_fd,
            fmt=log_format(args),
            count=args.count,
            output=log_file(args),
            audit_key=args.audit,
        )
        # Left in reverse order: detached first, so the consumer still writes what reached the ring.
        with (
            running_consumer(argv, ring_fd) as consumer,
            program.attached(args.iface, mode, args.netns),
            reopen.to(consumer.pid),
        ):
            print(f"{LOGGING_LINE} {where} ({mode.value} mode); Ctrl-C stops", file=sys.stderr)
            every = (
                args.stats_every
                if args.stats_every is not None
                else TOP_EVERY_S
                if args.top
                else STATS_EVERY_S
            )
            view = top_view if args.top else None
            watch(program, consumer, stopped, args.duration, every, Reloader(args.config, reloads), view)
        print(summary(program.counters(), where), file=sys.stderr)
        if program.config.rules:
            print(rules_summary(program.rule_hits()), file=sys.stderr)
        counted = program.aggregates()
        if counted:
            print(aggregates_summary(counted), file=sys.stderr)
        if args.aggregates is not None:
            write_aggregates(args.aggregates, counted)
        if config.responses:
            print(latency_summary(read_latencies(program.latencies_fd)), file=sys.stderr)
    return 0


def check_interface(ifname: str, netns: str | None) -> None:
    """Fails fast on a missing namespace, a missing interface, or an interface already running XDP.

    The namespace is checked first because pyroute2 creates a namespace it is asked to enter, so a
    typo would otherwise leave an empty namespace behind. The attach itself still refuses to replace
    a program (UPDATE_IF_NOEXIST), which covers one attached between this check and then.
    """
    if netns is not None and netns not in pr_netns.listnetns():
        raise CommandError(f"no network namespace named {netns!r}; list them with `ip netns list`")
    current = attached_mode(ifname, netns)
    if current:
        # `ip` names the mode it reports (xdp, xdpgeneric, xdpoffload); `<mode> off` detaches exactly that one.
        where = f"-n {netns} " if netns is not None else ""
        raise AttachError(
            f"{ifname} already has an XDP program attached ({current}); detach it first "
            f"(`ip {where}link set dev {ifname} {current} off`)"
        )


@contextlib.contextmanager
def stop_signals() -> Iterator[list[int]]:
    """SIGINT and SIGTERM both ask the control loop to stop; the yielded list records them.

    The handler records instead of raising KeyboardInterrupt: an exception raised in the middle of the
    attach or the detach could leave a program attached. The loop checks the list every TICK_S. The
    previous handlers are restored on the way out.
    """
    received: list[int] = []

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = {number: signal.signal(number, interrupt) for number in STOP_SIGNALS}
    try:
        yield received
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def reload_signal() -> Iterator[list[int]]:
    """SIGHUP asks for the rules to be reloaded; the yielded list records each, for the control loop."""
    received: list[int] = []
    previous = signal.signal(RELOAD_SIGNAL, lambda signum, _frame: received.append(signum))
    try:
        yield received
    finally:
        signal.signal(RELOAD_SIGNAL, previous)


class Reloader:
    """R27: applies the ``--config`` file's rules to the running program when SIGHUP asked for it."""

    def __init__(self, path: Path | None, requests: list[int]) -> None:
        self.path = path
        self.requests = requests

    def __call__(self, program: HandedOver) -> None:
        if not self.requests:
            return
        self.requests.clear()
        if self.path is None:
            print(
                "xhdr log: SIGHUP ignored: rules are reloaded from --config FILE, and none was given",
                file=sys.stderr,
            )
            return
        try:
            config = load_config(self.path)
        except ConfigError as error:
            print(f"xhdr log: rules not reloaded, the running ones stay: {error}", file=sys.stderr)
            return
        changed = [
            key
            for key, value in vars(config).items()
            if key != "rules" and value != vars(program.config)[key]
        ]
        if changed:
            print(
                f"xhdr log: rules not reloaded, the running ones stay: {self.path} changes {changed[0]}, which "
                "needs a restart of xhdr log; SIGHUP reloads [[rules]] only",
                file=sys.stderr,
            )
            return
        program.load_rules(config)
        names = ", ".join(rule.name for rule in config.rules) or "none"
        print(f"xhdr log: reloaded {len(config.rules)} rules from {self.path}: {names}", file=sys.stderr)


@contextlib.contextmanager
def running_consumer(argv: list[str], ring_fd: int) -> Iterator[subprocess.Popen[bytes]]:
    """The consumer, started on the ring buffer and ready; on the way out it drains the ring and ends.

    It gets its own process group, so a Ctrl-C at the terminal reaches only this process, which decides
    when the consumer stops: after the detach, so no event is lost. The consumer asks the kernel for a
    SIGTERM should this process die first (consumer.c), so a killed logger leaves no consumer behind.
    """
    consumer = subprocess.Popen(argv, pass_fds=(ring_fd,), stderr=subprocess.PIPE, process_group=0)
    try:
        await_ready(consumer)
        yield consumer
    finally:
        if consumer.poll() is None:
            consumer.send_signal(signal.SIGTERM)
        try:
            errors = consumer.communicate(timeout=CONSUMER_EXIT_S)[1]
        except subprocess.TimeoutExpired:
            consumer.kill()
            errors = consumer.communicate()[1]
    if consumer.returncode != 0:
        raise CommandError(f"the event consumer failed: {last_stderr_line(errors, consumer.returncode)}")


def await_ready(consumer: subprocess.Popen[bytes]) -> None:
    """Returns once the consumer said ``ready`` on stderr; one-line error if it exits or stays silent."""
    assert consumer.stderr is not None
    said = b""
    deadline = time.monotonic() + CONSUMER_READY_S
    while b"ready\n" not in said:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([consumer.stderr], [], [], remaining)[0]:
            raise CommandError(f"the event consumer did not start within {CONSUMER_READY_S:.0f} s")
        chunk = os.read(consumer.stderr.fileno(), 4096)
        if not chunk:
            raise CommandError(f"the event consumer did not start: {last_stderr_line(said, consumer.wait())}")
        said += chunk


def last_stderr_line(stderr: bytes, status: int) -> str:
    """The consumer's one-line error without its prefix, or its exit status when it said nothing."""
    lines = stderr.decode(errors="replace").strip().splitlines()
    return lines[-1].removeprefix("xhdr log: ") if lines else f"exit status {status}"


def watch(
    program: HandedOver,
    consumer: subprocess.Popen[bytes],
    stopped: list[int],
    duration: float | None,
    stats_every: float,
    reload: Reloader,
    view: Callable[[HandedOver, str], str] | None = None,
) -> None:
    """Waits for a stop: a signal, ``duration`` seconds from now, or the consumer ending (--count, closed pipe).

    Every ``stats_every`` seconds it prints one counter line on stderr, or with ``view`` (``--top``) what the
    view makes of the program and that line; a SIGHUP reloads the rules.
    """
    last_counts, last_time = program.counters(), time.monotonic()
    deadline = last_time + duration if duration else None
    # A pidfd wakes this loop once a tick: Popen.wait(timeout) polls several times a tick, each poll a
    # wakeup taken from the gateway's CPUs.
    ended = os.pidfd_open(consumer.pid)
    try:
        while not stopped:
            reload(program)
            if select.select([ended], [], [], TICK_S)[0]:
                consumer.wait()
                return  # it ended: --count reached, or its reader went away
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            if stats_every > 0 and now - last_time >= stats_every:
                counts = program.counters()
                hits = program.rule_hits() if program.config.rules and not view else {}  # --top: in a table
                line = counter_line(counts_difference(counts, last_counts), now - last_time, hits)
                print(view(program, line) if view else line, file=sys.stderr, flush=True)
                last_counts, last_time = counts, now
    finally:
        os.close(ended)


# What starts a redraw on a terminal: the cursor home, then the screen cleared.
CLEAR_SCREEN = "\x1b[H\x1b[2J"


def top_view(program: HandedOver, line: str) -> str:
    """``--top``: the counter line, each rule's hits and the busiest counts by header value, drawn over the
    last view on a terminal (one after the other in a file)."""
    parts = [line]
    if program.config.rules:
        parts.append(rules_summary(program.rule_hits()))
    counted = program.aggregates()
    parts.append(aggregates_summary(counted) if counted else "xhdr log: counts by header value: none yet")
    return (CLEAR_SCREEN if sys.stderr.isatty() else "") + "\n".join(parts)


def counter_line(moved: Counts, seconds: float, hits: dict[str, int] | None = None) -> str:
    """``xhdr log: 1,234 events/s, 0 lost; http_request 12340, mid_stream 2`` for one interval, then with rules
    each rule's hits since it was loaded: ``; rule hits block-scanner 3, search 120`` (R27)."""
    reasons = ", ".join(f"{c.label} {moved[c]}" for c in REASONS if moved[c] and c is not Counter.EVENTS_LOST)
    line = f"xhdr log: {moved[Counter.EVENTS] / seconds:,.0f} events/s, {moved[Counter.EVENTS_LOST]} lost"
    line = f"{line}; {reasons}" if reasons else line
    return line + "; rule hits " + ", ".join(f"{name} {n}" for name, n in hits.items()) if hits else line


# Endpoints the exit summary lists, the busiest first; the latencies map holds up to 1,024.
SHOWN_ENDPOINTS = 20


def latency_summary(endpoints: dict[bytes, EndpointLatencies]) -> str:
    """R26: the busiest endpoints' response latencies, as the kernel counted them in powers of two: each
    percentile is the upper bound of its bucket (at most twice the true figure)."""
    busiest = sorted(endpoints.values(), key=lambda e: (-e.responses, e.path))[:SHOWN_ENDPOINTS]
    rows = [
        (
            printable(e.path.decode("latin-1")),
            e.responses,
            *(f"<= {e.percentile_us(share):,}" for share in (0.5, 0.9, 0.99)),
        )
        for e in busiest
        if e.responses
    ]
    header = ("endpoint", "responses", "p50 us", "p90 us", "p99 us")
    shown = f"busiest {len(rows)} of {len(endpoints)}" if len(endpoints) > len(rows) else f"{len(rows)}"
    body = table(header, rows, rule=False, indent="  ", right={1, 2, 3, 4}) if rows else "  (no responses)"
    return f"xhdr log: response latency by endpoint ({shown}):\n{body}"


def rules_summary(hits: dict[str, int]) -> str:
    """R27: the requests each running rule matched since it was loaded."""
    rows = list(hits.items())
    return "xhdr log: rule hits:\n" + table(("rule", "hits"), rows, rule=False, indent="  ", right={1})


# Counts by header value the exit summary lists, the most counted first; the map holds up to 4,096.
SHOWN_AGGREGATES = 20


def aggregates_summary(counted: list[Aggregate]) -> str:
    """R30: the most counted (rule, endpoint, header, value) entries."""
    rows = [
        (a.rule, printable(a.endpoint.decode("latin-1")), a.header, _shown_value(a), a.count)
        for a in counted[:SHOWN_AGGREGATES]
    ]
    shown = f"busiest {len(rows)} of {len(counted)}" if len(counted) > len(rows) else f"{len(rows)}"
    body = table(
        ("rule", "endpoint", "header", "value", "requests"), rows, rule=False, indent="  ", right={4}
    )
    return f"xhdr log: counts by header value ({shown}):\n{body}"


def _shown_value(aggregate: Aggregate) -> str:
    if not aggregate.present:
        return "(absent)"
    text = printable(aggregate.shown.decode("latin-1"))
    return text + "..." if aggregate.length > len(aggregate.shown) else text


def write_aggregates(path: Path, counted: list[Aggregate]) -> None:
    """R30: every entry as JSON, for machines; the file is replaced whole, never left half-written."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(json.dumps([a.to_json() for a in counted], indent=1) + "\n")
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise CommandError(
            f"cannot write --aggregates {path}: {error.strerror}; point it at a writable file"
        ) from None


def summary(counts: Counts, where: str) -> str:
    """The counters of this run (the program was loaded for it, so they start at zero), one per line."""
    rows = [(counter.label, counts[counter]) for counter in Counter]
    return f"xhdr log: detached from {where}; counters:\n" + table(rows[0], rows[1:], rule=False, indent="  ")
