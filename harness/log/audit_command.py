"""``xhdr audit``: check a log written by ``xhdr log --audit``, or make the key it needs."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.core.errors import CommandError
from harness.log.audit import AuditError, new_key, read_key, verify


def register(subcommands: argparse._SubParsersAction) -> None:
    """Adds ``audit verify`` and ``audit newkey`` (found through the xhdr.commands entry point)."""
    parser = subcommands.add_parser(
        "audit",
        help="check a tamper-evident log of xhdr log --audit, or make its key",
        description="Check that a log written by `xhdr log --json FILE --audit KEY` is whole: no line changed, "
        "removed, moved or cut off. Exit status 0 when intact, 1 with the first line at fault otherwise.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("verify", help="check a log with its key")
    check.add_argument("log", type=Path, help="the JSON lines xhdr log wrote (its --json FILE)")
    check.add_argument("--key", type=Path, required=True, help="the key file given to xhdr log --audit")
    check.set_defaults(run=run_verify)
    make = actions.add_parser("newkey", help="write a new random key to a new file (mode 0600)")
    make.add_argument("key", type=Path, help="where to write it; an existing file is never replaced")
    make.set_defaults(run=run_newkey)


def run_verify(args: argparse.Namespace) -> int:
    try:
        key = read_key(args.key)
        with args.log.open("rb") as lines:
            summary = verify(lines, key)
    except AuditError as error:
        raise CommandError(f"{args.log}: {error}") from None
    except OSError as error:
        raise CommandError(f"cannot read {args.log}: {error.strerror}") from None
    print(f"{args.log}: intact: {summary.events} events in {summary.runs} runs ({summary.lines} lines)")
    return 0


def run_newkey(args: argparse.Namespace) -> int:
    try:
        new_key(args.key)
    except AuditError as error:
        raise CommandError(str(error)) from None
    print(f"xhdr audit: wrote a new key to {args.key}; give it to `xhdr log --json FILE --audit {args.key}`")
    return 0
