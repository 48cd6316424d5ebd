"""``xhdr log``: attach the extractor to a real interface and print what it logs until stopped.

This is the extractor outside any test: a person (or a script, with ``--json``) watches the requests
that reach an interface. Stopping is the normal end, so Ctrl-C and SIGTERM both detach, print any
events still buffered and the counters, and exit 0; every other failure is one line on stderr and leaves nothing attached.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from pyroute2 import netns as pr_netns

from harness.cli import CommandError, require_root
from harness.config import ExtractorConfig, load_config
from harness.counters import Counter, Counts
from harness.event import HeaderEvent
from harness.program import Program
from harness.xdp import AttachError, XdpMode, attached_mode

# Short enough that a stop request is noticed at once, long enough that an idle logger does not spin.
POLL_TIMEOUT_MS = 100
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def register(subcommands: argparse._SubParsersAction) -> None:
    """Adds ``log`` to the ``xhdr`` command line (found through the xhdr.commands entry point)."""
    parser = subcommands.add_parser(
        "log",
        help="attach the extractor to an interface and print each logged request",
        description="Attach the extractor to an existing interface and print one line per logged request "
        "until Ctrl-C or SIGTERM; then detach and print the counters on stderr.",
    )
    parser.add_argument("--iface", required=True, help="interface to attach to")
    parser.add_argument("--netns", help="named network namespace that holds the interface (`ip netns list`)")
    parser.add_argument(
        "--mode",
        choices=[mode.value for mode in XdpMode],
        default=XdpMode.NATIVE.value,
        help="XDP mode: native (driver) or generic (skb); default native",
    )
    parser.add_argument("--config", type=Path, help="TOML file with an ExtractorConfig; defaults otherwise")
    parser.add_argument("--json", action="store_true", help="one JSON object per event instead of text")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Checks everything that can be checked cheaply before the (slow) compile, then streams events."""
    require_root("xhdr log")
    config = load_config(args.config) if args.config else ExtractorConfig()
    mode = XdpMode(args.mode)
    where = f"{args.iface} in namespace {args.netns}" if args.netns else args.iface
    check_interface(args.iface, args.netns)
    render = event_json if args.json else event_line
    # Signals are taken over only once compiled: a Ctrl-C during the compile just ends the command.
    with Program(config) as program, stop_signals() as stopped:
        with program.attached(args.iface, mode, args.netns):
            print(f"xhdr log: logging requests on {where} ({mode.value} mode); Ctrl-C stops", file=sys.stderr)
            stream(program, render, stopped)
        # Events that reached the ring buffer before the detach are still worth printing.
        with contextlib.suppress(BrokenPipeError):
            write_events(program.take_events(), render)
        print(summary(program.counters(), where), file=sys.stderr)
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
    """SIGINT and SIGTERM both ask the streaming loop to stop; the yielded list records them.

    The handler records instead of raising KeyboardInterrupt, for two reasons. While the loop waits,
    the only Python code that runs is the ring buffer's ctypes callback, and an exception raised there
    is printed as a traceback and swallowed by ctypes, losing the event being delivered. And an
    exception raised in the middle of the attach or the detach could leave a program attached. The loop
    polls with a short timeout and checks the list, so a stop takes effect within POLL_TIMEOUT_MS. The
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


def stream(program: Program, render: Callable[[HeaderEvent], str], stopped: list[int]) -> None:
    """Prints events as they come until a stop signal, or until nobody reads stdout any more."""
    while not stopped:
        try:
            write_events(program.poll_events(POLL_TIMEOUT_MS), render)
        except BrokenPipeError:
            # `xhdr log | head`: the reader left. Point stdout at /dev/null so the exit flush is quiet.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return


def write_events(events: list[HeaderEvent], render: Callable[[HeaderEvent], str]) -> None:
    """One line per event, flushed, so a reader of a pipe sees each request as it happens."""
    for event in events:
        print(render(event), flush=True)


def event_json(event: HeaderEvent) -> str:
    return json.dumps(event.to_json(), separators=(",", ":"))


def event_line(event: HeaderEvent) -> str:
    """``saddr:sport -> daddr:dport METHOD target HTTP/1.x | Name: shown | ...`` on one line.

    Header values may hold CR, NUL or other control bytes (docs/EXTRACTION.md R13); they are escaped so
    that an event can never span two lines or drive the terminal.
    """
    version = f"HTTP/{event.version // 10}.{event.version % 10}" if event.version else "HTTP/?"
    target = event.target.decode("latin-1") + ("..." if event.target_length > len(event.target) else "")
    parts = [
        f"{_endpoint(event.saddr, event.sport)} -> {_endpoint(event.daddr, event.dport)}",
        f"{event.method.decode('latin-1')} {target} {version}",
    ]
    text = " ".join(parts)
    for value in event.headers:
        if value.present:
            text += f" | {value.name}: {value.shown()}"
    if event.flags:
        text += f" [{','.join(flag.name.lower() for flag in type(event.flags) if event.flags & flag)}]"
    return printable(text)


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def printable(text: str) -> str:
    """Escapes every non-printable character (C0, DEL, C1 controls) as \\xNN."""
    return "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in text)


def summary(counts: Counts, where: str) -> str:
    """The counters of this run (the program was loaded for it, so they start at zero), one per line."""
    width = max(len(counter.label) for counter in Counter)
    lines = [f"xhdr log: detached from {where}; counters:"]
    lines += [f"  {counter.label:<{width}}  {counts[counter]}" for counter in Counter]
    return "\n".join(lines)
