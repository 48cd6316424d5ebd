"""Bad input to any ``xhdr`` command: one stderr line that names the thing and the fix, exit 1, no traceback.

The table runs ``harness.cli.main.main`` in-process (an exception escaping it fails the test as a traceback
would, in milliseconds instead of a second of imports per case). What only a real process shows runs the
installed console script: a Ctrl-C while the subcommand modules import, and what imports print for a
non-root user whose home cannot be written.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.cli.main import EXIT_ERROR, EXIT_INTERRUPTED, main, run_command
from harness.cli.main import SCRIPT as XHDR
from harness.core.wait import wait_until
from netns.cleanup import TeardownError
from netns.clients import ClientError
from netns.lab import Lab, LabProcessError

ROOT = Path(__file__).resolve().parent.parent
EXIT_DEADLINE_S = 30.0
NOBODY = "65534"

# Inputs the table refers to as {key} (the file's path); {tmp} is the test's own directory.
FILES = {
    "file": ("file", "not a directory\n"),
    "list": ("list.json", "[]\n"),
    "corrupt": ("corrupt.json", '{"suite": \n'),
    "port_true": ("port_true.toml", "ports = [true]\n"),
    "sampled": ("sampled.toml", "[[rules]]\nname = 'one in 3'\naction = 'sample'\nevery = 3\n"),
    "bad_rule": ("bad_rule.toml", "[[rules]]\nname = 'x'\n[rules.when]\nCookie = { exact = 'a' }\n"),
    "result": (
        "result.json",
        '{"format": 1, "suite": "s", "created": "", "machine": {}, "config": {}, "rows": []}\n',
    ),
}

# name: (needs root, arguments, what the one line must contain)
ERRORS: dict[str, tuple[bool, list[str], list[str]]] = {
    "demo-out-is-a-file": (
        True,
        ["demo", "--out", "{file}"],
        ["--out {file} is not a directory", "give a directory"],
    ),
    "bench-compare-unknown-ref": (
        True,
        ["bench", "--compare", "no-such-ref-xyz", "--out", "{tmp}"],
        ["no-such-ref-xyz is not a file, a directory or a git commit", "give a stored program"],
    ),
    "bench-compare-missing-file": (
        True,
        ["bench", "--compare", "{tmp}/missing.c", "--out", "{tmp}"],
        ["{tmp}/missing.c is not a file", "give a stored program"],
    ),
    "bench-loads-beyond-the-dispatcher": (
        True,
        ["bench", "--loads", "25", "--compare", "HEAD", "--out", "{tmp}"],
        ["--loads 25 is too many", "the XDP dispatcher holds 48 programs", "at most 24 loads"],
    ),
    "bench-rounds-0": (
        True,
        ["bench", "--rounds", "0", "--compare", "HEAD", "--out", "{tmp}"],
        ["--rounds 0 is too few", "at least 5"],
    ),
    "bench-rounds-for-suites-without-rounds": (
        True,
        ["bench", "--rounds", "4", "--suite", "http_nginx", "--suite", "consumer", "--out", "{tmp}"],
        [
            "--rounds 4 applies to --compare, --suite lab_throughput or --suite http_nginx only",
            "add --compare",
        ],
    ),
    "bench-rounds-for-every-suite": (
        True,
        ["bench", "--rounds", "4", "--out", "{tmp}"],
        ["--rounds 4 applies to --compare, --suite lab_throughput or --suite http_nginx only"],
    ),
    "bench-suite-rounds-0": (
        True,
        ["bench", "--rounds", "0", "--suite", "lab_throughput", "--out", "{tmp}"],
        ["--rounds 0 is too few", "at least 1 round of every leg"],
    ),
    "bench-loads-without-compare": (
        True,
        ["bench", "--loads", "2", "--out", "{tmp}"],
        ["--loads 2 applies to --compare only", "add --compare"],
    ),
    "bench-caches-without-compare": (
        True,
        ["bench", "--caches", "l2_evicted", "--out", "{tmp}"],
        ["--caches l2_evicted applies to --compare or --profile only", "add one"],
    ),
    "bench-seconds-without-profile": (
        True,
        ["bench", "--seconds", "3", "--out", "{tmp}"],
        ["--seconds 3.0 applies to --profile only", "add --profile"],
    ),
    "bench-profile-with-a-suite": (
        True,
        ["bench", "--profile", "standard", "--suite", "http_nginx", "--rounds", "4", "--out", "{tmp}"],
        ["--suite does not apply to --profile standard", "drop --suite"],
    ),
    "bench-profile-with-rounds": (
        True,
        ["bench", "--profile", "standard", "--rounds", "4", "--out", "{tmp}"],
        ["--rounds does not apply to --profile standard", "drop --rounds"],
    ),
    "bench-profile-quick": (
        True,
        ["bench", "--profile", "standard", "--quick", "--out", "{tmp}"],
        ["--quick does not apply to --profile standard", "drop --quick"],
    ),
    "bench-negative-threshold": (
        True,
        ["bench", "--threshold", "-5", "--compare", "HEAD", "--out", "{tmp}"],
        ["--threshold -5 is below 0", "give a percentage"],
    ),
    "verify-directory": (
        True,
        ["verify", "{tmp}"],
        ["source {tmp} is a directory", "give the .c files"],
    ),
    "verify-json-into-a-directory": (
        True,
        ["verify", "--json", "{tmp}"],
        ["--json {tmp} is a directory", "give the name of a file"],
    ),
    "verify-threshold-without-baseline": (
        True,
        ["verify", "--threshold", "5"],
        ["--threshold 5 applies to --baseline or --compare only", "add one of them"],
    ),
    "verify-csv-into-a-directory": (
        True,
        ["verify", "--csv", "{tmp}"],
        ["--csv {tmp} is a directory", "give the name of a file"],
    ),
    "verify-compare-corrupt": (
        False,
        ["verify", "--compare", "{corrupt}", "{corrupt}"],
        ["result file {corrupt} is not JSON"],
    ),
    "verify-compare-missing": (
        False,
        ["verify", "--compare", "{tmp}/old.json", "{corrupt}"],
        ["result file {tmp}/old.json does not exist", "xhdr verify --json"],
    ),
    "verify-compare-with-a-source": (
        False,
        ["verify", "x.c", "--compare", "{corrupt}", "{corrupt}"],
        ["--compare reads two result files; SOURCE does not go with it"],
    ),
    "verify-object-without-bpf": (
        True,
        ["verify", "/bin/true"],
        ["/bin/true is not a BPF object libbpf can open: BPF object format invalid"],
    ),
    "fuzz-json-into-a-directory": (
        True,
        ["fuzz", "--json", "{tmp}"],
        ["--json {tmp} is a directory", "give the name of a file"],
    ),
    "log-text-into-a-directory": (
        True,
        ["log", "--iface", "lo", "--text", "{tmp}"],
        ["--text {tmp} is a directory", "give the name of a file"],
    ),
    "log-records-into-a-directory": (
        True,
        ["log", "--iface", "lo", "--records", "{tmp}"],
        ["--records {tmp} is a directory", "give the name of a file"],
    ),
    "decode-of-a-json-log": (
        False,
        ["decode", "{corrupt}"],
        ["{corrupt} is not a records file; pass a file that xhdr log --records wrote"],
    ),
    "decode-missing": (
        False,
        ["decode", "{tmp}/none.records"],
        ["cannot read {tmp}/none.records: No such file or directory; check the path"],
    ),
    "decode-text-into-a-directory": (
        False,
        ["decode", "{corrupt}", "--text", "{tmp}"],
        ["--text {tmp} is a directory", "give the name of a file"],
    ),
    "log-config-port-true": (
        True,
        ["log", "--iface", "lo", "--config", "{port_true}"],
        ["{port_true}", "port True in ports must be an integer"],
    ),
    "log-config-rule-on-a-hashed-header": (
        True,
        ["log", "--iface", "lo", "--config", "{bad_rule}"],
        ["{bad_rule}", "condition on 'Cookie', which is not logged by value"],
    ),
    "fuzz-a-sample-rule": (
        True,
        ["fuzz", "--config", "{sampled}"],
        ["rule 'one in 3' samples, which a fuzz campaign cannot judge"],
    ),
    "report-of-a-json-list": (
        False,
        ["report", "{list}", "--out", "{tmp}/r"],
        ["result file {list} is not an xhdr result file", "`xhdr bench`"],
    ),
    "report-of-corrupt-json": (
        False,
        ["report", "{corrupt}", "--out", "{tmp}/r"],
        ["result file {corrupt} is not valid JSON", "line 2"],
    ),
    "report-gate-of-corrupt-json": (
        False,
        ["report", "{result}", "--gate", "{corrupt}", "--out", "{tmp}/r"],
        ["gate file {corrupt} is not valid JSON"],
    ),
    "report-gate-of-another-document": (
        False,
        ["report", "{result}", "--gate", "{list}", "--out", "{tmp}/r"],
        ["gate file {list} is not a gate.json of `xhdr bench --compare`"],
    ),
    "report-gate-missing": (
        False,
        ["report", "{result}", "--gate", "{tmp}/gate.json", "--out", "{tmp}/r"],
        ["gate file {tmp}/gate.json does not exist"],
    ),
}


def one_error_line(err: str, command: str) -> str:
    """The single stderr line of a failed command, checked for the prefix every xhdr error carries."""
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got:\n{err}"
    assert lines[0].startswith(f"xhdr {command}: error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize("name", ERRORS)
def test_bad_input_is_one_line_naming_it(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    needs_root, argv, needles = ERRORS[name]
    if needs_root and os.geteuid() != 0:
        pytest.skip("the command checks for root before its arguments")
    places = {"tmp": str(tmp_path)}
    for key, (file, text) in FILES.items():
        (tmp_path / file).write_text(text)
        places[key] = str(tmp_path / file)
    code = main([arg.format_map(places) for arg in argv])
    out, err = capsys.readouterr()
    assert code == EXIT_ERROR and out == "", (code, out)
    line = one_error_line(err, argv[0])
    for needle in needles:
        assert needle.format_map(places) in line, line


def _raise(error: BaseException) -> Callable[[argparse.Namespace], int]:
    def run(_args: argparse.Namespace) -> int:
        raise error

    return run


def _lab_run_timeout(_args: argparse.Namespace) -> int:
    """Lab.run's own timeout, raised for real by a program that outlives it."""
    with Lab(sweep=False) as lab:
        lab.run(lab.client, ["sleep", "5"], timeout=0.2)
    return 0


@pytest.mark.parametrize(
    ("run", "needle"),
    [
        (_raise(LabProcessError("false in xhdr-1-2-abc-cli exited 1: (no output)")), "false in xhdr-1-2"),
        (_raise(ClientError("curl GET http://10.0.0.1/ exited 7: refused")), "curl GET"),
        (_raise(TeardownError("lab xhdr-1-2-abc teardown: remove netns: OSError: busy")), "teardown"),
        (lambda _args: wait_until(lambda: False, 0.01, "a condition never met"), "a condition never met"),
        pytest.param(_lab_run_timeout, "did not finish within 0.2s", marks=pytest.mark.lab),
    ],
    ids=["lab-command", "client", "teardown", "wait-deadline", "lab-run-timeout"],
)
def test_lab_and_wait_errors_are_one_line(
    run: Callable[[argparse.Namespace], int], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """netns's errors and a missed deadline are user errors for harness/cli/main.py, which imports no netns."""
    code = run_command(argparse.Namespace(command="demo", run=run))
    assert code == EXIT_ERROR
    assert needle in one_error_line(capsys.readouterr().err, "demo")


def test_ctrl_c_while_the_subcommands_import_is_one_line_and_130(
    tmp_path: Path, interruptible: Callable[[list[str]], list[str]]
) -> None:
    """SIGINT while the subcommand modules load, which takes a second or more.

    Under PYTHONPROFILEIMPORTTIME Python reports each finished import on stderr: an import reported after
    harness.cli.main's own is one that main() made, loading the entry points. Those lines are left out of the check.
    """
    err_path = tmp_path / "stderr"

    def loading_subcommands() -> bool:
        imports = [line for line in err_path.read_text().splitlines() if line.startswith("import time:")]
        done = [index for index, line in enumerate(imports) if line.endswith("| harness.cli.main")]
        return bool(done) and done[0] < len(imports) - 1

    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    with err_path.open("w") as err:
        proc = subprocess.Popen(
            interruptible([str(XHDR), "report", str(tmp_path / "absent.json")]), cwd=ROOT, stderr=err, env=env
        )
    try:
        wait_until(
            lambda: loading_subcommands() or proc.poll() is not None,
            EXIT_DEADLINE_S,
            "xhdr to load its subcommands",
        )
        assert proc.poll() is None, "xhdr ended before the test could interrupt it"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=EXIT_DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    said = [line for line in err_path.read_text().splitlines() if not line.startswith("import time:")]
    assert said == ["xhdr: interrupted; everything xhdr started was removed"], "\n".join(said[-8:])
    assert code == EXIT_INTERRUPTED


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_non_root_with_an_unwritable_home_gets_only_the_message(tmp_path: Path) -> None:
    """Nothing an import prints (matplotlib's cache directory warning) comes before the one line."""
    home = tmp_path / "home-that-does-not-exist"  # inside root's private pytest directory
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8"}
    done = subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            str(XHDR),
            "log",
            "--iface",
            "lo",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=EXIT_DEADLINE_S,
    )
    assert done.returncode == EXIT_ERROR
    assert "needs root" in one_error_line(done.stderr, "log")
