"""The ``xhdr`` command line.

Subcommands are found by convention, not imported here: each package that offers one declares it in
pyproject.toml under ``[project.entry-points."xhdr.commands"]``, pointing at a module with a
``register(subcommands)`` function. That keeps harness free of imports from netns, bench, fuzz and
reports while ``xhdr demo`` (netns) and later ``xhdr bench`` (bench) live with the code they drive.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import entry_points

from harness.bcc_loader import BccUnavailable
from harness.config import ConfigError
from harness.program import ProgramError
from harness.wait import install_interrupt_handler
from harness.xdp import AttachError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Errors whose message is already one line that names the thing and the fix.
USER_ERRORS = (ConfigError, ProgramError, BccUnavailable, AttachError, FileNotFoundError, PermissionError)


class CommandError(RuntimeError):
    """A subcommand's own one-line failure."""


def require_root(what: str) -> None:
    """Loading BPF and building namespaces need CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN."""
    if os.geteuid() != 0:
        raise PermissionError(f"{what} needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN); run it with sudo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xhdr", description="Test and benchmark XDP programs that log HTTP headers."
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for entry in sorted(entry_points(group="xhdr.commands"), key=lambda e: e.name):
        try:
            module = entry.load()
        except ImportError as error:
            _register_unavailable(subcommands, entry.name, error)
            continue
        module.register(subcommands)
    return parser


def _register_unavailable(subcommands: argparse._SubParsersAction, name: str, error: ImportError) -> None:
    """A subcommand whose module does not import still shows up, and says why, instead of breaking the rest."""
    reason = f"xhdr {name} is unavailable ({error}); reinstall with `bash harness/bootstrap.sh`"
    parser = subcommands.add_parser(name, help=f"(unavailable: {error})")
    parser.add_argument("ignored", nargs="*", help=argparse.SUPPRESS)

    def fail(_args: argparse.Namespace) -> int:
        raise CommandError(reason)

    parser.set_defaults(run=fail)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    install_interrupt_handler()
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("xhdr: interrupted; everything xhdr started was removed", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (*USER_ERRORS, CommandError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"xhdr {args.command}: error: {message}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    # Import by name so `python -m harness.cli` and the installed script share one module (one CommandError).
    from harness.cli import main as installed_main

    sys.exit(installed_main())
