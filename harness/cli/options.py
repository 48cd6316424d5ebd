"""The options several ``xhdr`` subcommands take, each defined once.

An option means the same thing, takes the same value and is checked the same way in every command that
has it (as xdp-tools' xdp-bench shares one definition per option):

- ``--json FILE``: write this command's machine output as JSON to FILE, ``-`` for stdout (``xhdr log``: the
  events, one object a line, appended; ``verify`` and ``fuzz``: the results document).
- ``--text FILE``: write the events as text lines to FILE, appended (``xhdr log``, ``xhdr decode``); ``-`` for
  stdout, where they go by default.
- ``--markdown FILE``: the same output as markdown, e.g. ``"$GITHUB_STEP_SUMMARY"``; ``-`` for stdout.
- ``--csv FILE``: the same output as CSV, one row per program (``verify``), a header first; ``-`` for stdout.
- ``--threshold PCT``: a gate fails on a regression of more than PCT percent (``verify``: verified
  instructions over the baseline; ``bench --compare``: the slowdown against the reference build).
- ``--config FILE``: the extractor configuration, a TOML file read by ``harness.core.config.load_config``.
- ``--mode MODE``: the XDP attach mode, ``native`` (driver) or ``generic`` (skb).
- ``--object FILE``, ``--program NAME``, ``--ring MAP``: a user's own XDP program instead of the extractor (a
  clang/libbpf ``.bpf.o`` or a BCC ``.c``), which of its XDP programs to load, and the ring buffer it logs to
  (``fuzz``, ``bench``).
- ``--out DIR``: the directory a command writes its files into (``bench``, ``demo``, ``report``); created
  with its parents if missing, and a file in the way is the command's one-line error (:func:`output_directory`).

Values a type cannot refuse on its own (a file that would be written in a directory that does not exist,
a negative percentage) are checked by :func:`check`, which every command calls first, so the error is the
command's one line (``xhdr CMD: error: ...``), before anything slow has started.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from harness.core.config import ExtractorConfig, load_config
from harness.core.errors import CommandError
from harness.core.xdp import XdpMode

STDOUT = "-"
OUTPUT_OPTIONS = ("json", "markdown", "csv", "text", "records")


def add_json(
    parser: argparse.ArgumentParser, what: str, *, group: argparse._ActionsContainer | None = None
) -> None:
    (group or parser).add_argument(
        "--json", type=Path, metavar="FILE", help=f"write {what} as JSON to FILE ('-': stdout)"
    )


def add_text(parser: argparse.ArgumentParser, *, group: argparse._ActionsContainer | None = None) -> None:
    (group or parser).add_argument(
        "--text", type=Path, metavar="FILE", help="append the events as text lines to FILE (default: stdout)"
    )


def add_markdown(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--markdown", type=Path, metavar="FILE", help=f"write {what} as markdown to FILE ('-': stdout)"
    )


def add_csv(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--csv", type=Path, metavar="FILE", help=f"write {what} as CSV to FILE ('-': stdout)")


def add_out(parser: argparse.ArgumentParser, default: Path, what: str) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=default,
        metavar="DIR",
        help=f"directory for {what} (default {default}; created if missing)",
    )


def add_your_program(parser: argparse.ArgumentParser, what: str) -> argparse._ArgumentGroup:
    """The "your own program" group: ``--object``, ``--program``, ``--ring``; ``what`` says what the command does
    with it. Returns the group, for a command's further options about it."""
    yours = parser.add_argument_group("your own program", what)
    yours.add_argument(
        "--object", type=Path, metavar="FILE", help="your program: a clang/libbpf .bpf.o or a BCC .c"
    )
    yours.add_argument("--program", metavar="NAME", help="its XDP program to load, when the file has several")
    yours.add_argument(
        "--ring", metavar="MAP", help="the ring buffer map it logs to (default: its only one, if it has one)"
    )
    return yours


def check_without_object(args: argparse.Namespace, *also: str) -> None:
    """Without ``--object``, its companions (``--program``, ``--ring`` and a command's ``also``) are mistakes."""
    for option in ("program", "ring", *also):
        if getattr(args, option) is not None:
            raise CommandError(
                f"--{option} goes with --object (your own program); add --object FILE or drop it"
            )


def add_threshold(parser: argparse.ArgumentParser, regression: str, default: float) -> None:
    """Left None when not given, so a command can refuse it without its gate; the gate's default applies."""
    parser.add_argument(
        "--threshold",
        type=float,
        metavar="PCT",
        help=f"the gate fails on {regression} of more than PCT percent (default {default:g})",
    )


def threshold(args: argparse.Namespace, default: float) -> float:
    """``--threshold`` as given, else the gate's default."""
    return default if args.threshold is None else args.threshold


def add_config(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"extractor configuration, a TOML file (default: {default})",
    )


def add_mode(parser: argparse.ArgumentParser, default: XdpMode | None = XdpMode.NATIVE) -> None:
    """One mode with a default, or (``default=None``) repeatable, every mode when none is given."""
    choices = [mode.value for mode in XdpMode]
    what = "XDP mode: native (driver) or generic (skb)"
    if default is None:
        parser.add_argument(
            "--mode", choices=choices, action="append", help=f"{what}; repeatable (default: both)"
        )
    else:
        parser.add_argument(
            "--mode", choices=choices, default=default.value, help=f"{what} (default {default.value})"
        )


def extractor_config(args: argparse.Namespace, default: ExtractorConfig) -> ExtractorConfig:
    """The configuration ``--config`` names, else ``default``."""
    return load_config(args.config) if args.config else default


def check(args: argparse.Namespace) -> None:
    """Checks the shared options ``args`` has; a bad value is a CommandError naming the option."""
    for name in OUTPUT_OPTIONS:
        target = getattr(args, name, None)
        if target is not None and str(target) != STDOUT:
            output_file(target, f"--{name}")
    threshold = getattr(args, "threshold", None)
    if threshold is not None and threshold < 0:
        raise CommandError(f"--threshold {threshold:g} is below 0; give a percentage such as 10")


def to_stdout(args: argparse.Namespace) -> bool:
    """Whether ``--json``, ``--markdown`` or ``--csv`` writes to stdout, where the human rendering must then not go."""
    return any(str(getattr(args, name, None)) == STDOUT for name in OUTPUT_OPTIONS)


def human_stream(args: argparse.Namespace) -> TextIO:
    """Where the table for people goes: stdout, or stderr when stdout carries the machine output."""
    return sys.stderr if to_stdout(args) else sys.stdout


def write_output(target: Path, text: str) -> None:
    """Writes ``text`` to the file named by ``--json``, ``--markdown`` or ``--csv``, or to stdout for ``-``."""
    if str(target) == STDOUT:
        sys.stdout.write(text)
    else:
        target.write_text(text, encoding="utf-8")


def output_directory(path: Path, option: str = "--out") -> Path:
    """Creates a command's output directory (and its parents); a file in the way is one line, not a traceback."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise CommandError(
            f"{option} {path} is not a directory (a file is in the way); give a directory, it is created if missing"
        ) from None
    return path


def output_file(path: Path, option: str) -> Path:
    """Checks a file a command will write before the work starts: found only at the end, a directory or a
    missing parent would lose the results."""
    if path.is_dir():
        raise CommandError(f"{option} {path} is a directory; give the name of a file in it")
    if not path.parent.is_dir():
        raise CommandError(f"{option} {path}: no directory {path.parent}; create it first")
    return path
