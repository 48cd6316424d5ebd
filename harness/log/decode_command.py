"""``xhdr decode``: the lines ``xhdr log`` would have written, made from what ``xhdr log --records`` wrote.

The compiled consumer renders them (``consumer --input``), with the same code that writes ``xhdr log``'s
lines, so a decoded log equals a log written directly byte for byte (tests/test_records.py). SIGUSR1 opens
the output file again, for log rotation (harness/log/rotation.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from harness.cli import options
from harness.core.errors import CommandError
from harness.log.command import last_stderr_line, log_file, log_format
from harness.log.consumer import decoder_argv
from harness.log.records import MAGIC
from harness.log.rotation import forwarding_reopen

EVENTS_SAID = b"consumer events="


def register(subcommands: argparse._SubParsersAction) -> None:
    """Adds ``decode`` to the ``xhdr`` command line (found through the xhdr.commands entry point)."""
    parser = subcommands.add_parser(
        "decode",
        help="make log lines from a records file of xhdr log --records",
        description="Write the lines `xhdr log` would have written for the events of a records file "
        "(`xhdr log --records FILE`), text by default, or JSON with --json. SIGUSR1 opens the output file "
        "again (log rotation).",
    )
    parser.add_argument(
        "input",
        type=Path,
        metavar="FILE",
        help="a records file written by xhdr log --records, or - to read them from standard input as they "
        "come (xhdr log --records - | xhdr decode -)",
    )
    written = parser.add_mutually_exclusive_group()
    options.add_json(parser, "the events (one object a line, appended)", group=written)
    options.add_text(parser, group=written)
    parser.set_defaults(
        run=run, records=None
    )  # it makes lines: log_file() and log_format() read no --records


def run(args: argparse.Namespace) -> int:
    options.check(args)
    stdin = str(args.input) == "-"
    if not stdin:
        _check_start(args.input)
    argv = decoder_argv(args.input, fmt=log_format(args), output=log_file(args))
    with (
        forwarding_reopen() as reopen,
        subprocess.Popen(argv, stderr=subprocess.PIPE) as consumer,
        reopen.to(consumer.pid),
    ):
        stderr = consumer.communicate()[1]
    # The consumer's last line says how many events it wrote, after its error if it had one; an input that is
    # no records file ends it before it says so.
    said, counted, events = stderr.rpartition(EVENTS_SAID)
    said = said if counted else stderr
    if consumer.returncode != 0:
        raise CommandError(last_stderr_line(said, consumer.returncode))
    source = "standard input" if stdin else args.input
    print(f"xhdr decode: {events.decode().strip()} events from {source}", file=sys.stderr)
    return 0


def _check_start(path: Path) -> None:
    """A file that is no records file is named before anything runs (standard input is checked by the consumer,
    which reads it as it comes)."""
    try:
        with path.open("rb") as records:
            start = records.read(len(MAGIC))
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}; check the path") from None
    if start != MAGIC:
        raise CommandError(f"{path} is not a records file; pass a file that xhdr log --records wrote")
