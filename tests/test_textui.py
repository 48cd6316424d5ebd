"""harness/cli/textui.py: tables aligned by their cells, progress that writes terminal codes only to a terminal."""

from __future__ import annotations

import io

from harness.cli.textui import CLEAR_LINE, Progress, table


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_table_aligns_text_left_and_numbers_right() -> None:
    text = table(["case", "ns", "verdict"], [["standard", "2,700", "pass"], ["headers_32", "12", "fail"]])
    header, rule, first, second = text.splitlines()
    assert rule == "----------  -----  -------"
    assert first == "standard    2,700  pass"
    assert second == "headers_32     12  fail"
    assert header.index("ns") + len("ns") == first.index("2,700") + len("2,700"), (
        "numbers end under the header"
    )


def test_progress_to_a_log_is_plain_lines() -> None:
    log = io.StringIO()
    shown = Progress("xhdr bench: ", stream=log)
    shown.status("round 1")  # a status is for a terminal only
    shown.tick("cycle 1")
    shown.note("done")
    shown.close()
    assert log.getvalue() == "xhdr bench: cycle 1\nxhdr bench: done\n"
    assert "\x1b" not in log.getvalue() and "\r" not in log.getvalue()


def test_progress_on_a_terminal_rewrites_its_status_line() -> None:
    terminal = Terminal()
    shown = Progress(stream=terminal)
    shown.status("round 1")
    shown.status("round 2")
    shown.note("case done")
    shown.tick("next")
    shown.close()
    assert terminal.getvalue() == (
        f"{CLEAR_LINE}round 1{CLEAR_LINE}round 2{CLEAR_LINE}case done\n{CLEAR_LINE}next{CLEAR_LINE}"
    )
