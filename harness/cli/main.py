"""The ``xhdr`` command line.

Subcommands are found by convention, not imported here: each package that offers one declares it in
pyproject.toml under ``[project.entry-points."xhdr.commands"]``, pointing at a module with a
``register(subcommands)`` function. That keeps harness free of imports from netns, bench, fuzz and
reports while ``xhdr demo`` (netns) and ``xhdr bench`` (bench) live with the code they drive.
Clean-ups of killed runs are found the same way, under ``xhdr.sweepers`` (see sweep_leftovers).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path

from harness.core.errors import CommandError, UserError
from harness.core.wait import install_interrupt_handler

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
# The console script installed next to the running interpreter: how the benchmarks and the tests run a
# command as users run it, in a process of its own.
SCRIPT = Path(sys.executable).parent / "xhdr"

# Errors whose message is already one line that names the thing and the fix. Only light modules are imported
# above, so the moment before main() installs its SIGINT handler (a Ctrl-C there is a traceback) stays short.
USER_ERRORS = (UserError, FileNotFoundError, PermissionError)


def require_root(what: str) -> None:
    """Loading BPF and building namespaces need CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN."""
    if os.geteuid() != 0:
        raise PermissionError(f"{what} needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN); run it with sudo")


def package_version() -> str:
    """The installed distribution's version (pyproject.toml's, through the package metadata)."""
    try:
        return version("xhdr")
    except PackageNotFoundError:
        return "unknown (not installed: run `bash harness/bootstrap.sh`)"


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: with a subcommand named there, only that one's module is imported.

    Each subcommand module imports what it drives (``xhdr report`` numpy and matplotlib, ``xhdr fuzz``
    Hypothesis), and a process stays as large as everything it imported: ``xhdr log``, which runs for days on
    a gateway, would hold all of that for nothing. Without a subcommand (``--help``, a typo) all are listed.
    """
    parser = argparse.ArgumentParser(
        prog="xhdr", description="Test and benchmark XDP programs that log HTTP headers."
    )
    parser.add_argument("--version", action="version", version=f"xhdr {package_version()}")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = sorted(entry_points(group="xhdr.commands"), key=lambda e: e.name)
    words = [word for word in (sys.argv[1:] if argv is None else argv) if not word.startswith("-")]
    chosen = [entry for entry in commands if words and entry.name == words[0]]
    for entry in chosen or commands:
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


def sweep_leftovers(command: str) -> None:
    """Removes what killed xhdr runs left behind (namespaces and what runs in them) before a command starts.

    A run killed outright cannot clean up after itself, so every command cleans up after the dead ones.
    Each package that can leave something registers a function under the ``xhdr.sweepers`` entry points
    (harness imports none of them); it returns the names of what it removed, said here in one line. A
    sweeper that cannot run is noted and skipped: the command itself does not depend on it.
    """
    removed: list[str] = []
    for entry in entry_points(group="xhdr.sweepers"):
        try:
            removed += entry.load()()
        except (ImportError, OSError) as error:
            print(f"xhdr {command}: note: sweeper {entry.name} did not run ({error})", file=sys.stderr)
    if removed:
        print(f"xhdr {command}: removed what killed xhdr runs left: {', '.join(removed)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    # Before the subcommand modules load (a second or more of imports): a Ctrl-C at any moment from here
    # on ends with the same one line and exit status.
    install_interrupt_handler()
    try:
        args = build_parser(argv).parse_args(argv)
        sweep_leftovers(args.command)
        return run_command(args)
    except KeyboardInterrupt:
        print("xhdr: interrupted; everything xhdr started was removed", file=sys.stderr)
        return EXIT_INTERRUPTED


def run_command(args: argparse.Namespace) -> int:
    """Runs the chosen subcommand; a user error becomes one line on stderr and exit status 1."""
    try:
        return int(args.run(args) or 0)
    except USER_ERRORS as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"xhdr {args.command}: error: {message}", file=sys.stderr)
        return EXIT_ERROR
