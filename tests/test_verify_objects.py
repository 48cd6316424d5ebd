"""``xhdr verify`` on ELF objects built with clang and libbpf, the offline compare, CSV and ``--version``.

The objects are written here in libbpf style (tests/objects/*.bpf.c, each with its ``// xhdr-expect:``
line, like tests/verifier_cases/) and built with clang into a temporary directory at test time (about a
third of a second each); set-up installs clang and libbpf-dev.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from test_verify import expectation, verify

from harness.cli.main import main, package_version
from harness.core.native import DECLARATIONS, libbpf
from harness.verify.report import baseline_gate

OBJECTS = Path(__file__).parent / "objects"
XHDR = Path(sys.executable).with_name("xhdr")
CASES = sorted(OBJECTS.glob("*.bpf.c"))


@pytest.fixture(scope="module")
def objects(clang_object: Callable[..., Path]) -> dict[str, Path]:
    return {case.name.split(".")[0]: clang_object(case.name.split(".")[0]) for case in CASES}


def test_every_declared_libbpf_function_exists() -> None:
    """A misspelt declaration would only fail when first called; Debian's libbpf 1.1.2 has them all."""
    lib = libbpf()
    for name, _restype, _argtypes in DECLARATIONS:
        assert getattr(lib, name).argtypes is not None, name


def test_libbpf_is_declared_in_one_module() -> None:
    """Nothing outside harness/core/native.py opens libbpf or libbcc, and nothing else declares a C function's
    types."""
    top = Path(__file__).parents[1]
    offenders = []
    for path in [*top.glob("harness/**/*.py"), *top.glob("bench/**/*.py"), *top.glob("tests/**/*.py")]:
        if path.name in {"native.py", Path(__file__).name}:
            continue
        text = path.read_text()
        if 'find_library("bpf")' in text or 'CDLL("lib' in text or ".argtypes =" in text:
            offenders.append(str(path.relative_to(top)))
    assert not offenders


@pytest.mark.kernel
@pytest.mark.parametrize("case", CASES, ids=[case.name.split(".")[0] for case in CASES])
def test_object_case(
    case: Path, objects: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every tests/objects/*.bpf.c is verified as its `// xhdr-expect:` line says: a new case is a new file."""
    accepted, message, extra = expectation(case)
    out_json = tmp_path / "out.json"
    code, _, _ = verify(capsys, *extra, str(objects[case.name.split(".")[0]]), "--json", str(out_json))
    (variant,) = json.loads(out_json.read_text())["variants"]
    assert variant["accepted"] is accepted and code == (0 if accepted else 1)
    if not accepted:
        assert message in variant["rejection"]["error"]


@pytest.mark.kernel
def test_object_is_accepted_with_plausible_statistics(
    objects: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    accepted, _, _ = expectation(OBJECTS / "pass_count.bpf.c")
    assert accepted
    out_json = tmp_path / "out.json"
    code, out, _ = verify(capsys, str(objects["pass_count"]), "--json", str(out_json), "--programs")
    assert code == 0
    (variant,) = json.loads(out_json.read_text())["variants"]
    assert variant["key"] == "pass_count.bpf.o/default" and variant["cflags"] == []
    (program,) = variant["programs"]
    assert program["name"] == "pass_count" and program["accepted"]
    stats = program["stats"]
    assert 5 <= stats["verified_insns"] < 100
    assert stats["processed_insns"] == stats["verified_insns"]
    assert stats["peak_states"] >= 1 and stats["stack_depth"] >= 4  # the key lives on the stack
    assert stats["xlated_bytes"] >= 8 * stats["verified_insns"] // 2 and stats["jited_bytes"] > 0
    assert stats["load_ms"] is not None
    assert variant["stats"]["map_bytes"] > 0 and variant["stats"]["compile_ms"] is None
    assert "pass_count.bpf.o/default  ok" in out


@pytest.mark.kernel
def test_bad_object_is_rejected_with_one_line_naming_the_program(
    objects: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    accepted, message, _ = expectation(OBJECTS / "bad_read.bpf.c")
    assert not accepted and message
    code, out, err = verify(capsys, str(objects["bad_read"]))
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith("xhdr verify: 1 of 1 variants rejected (bad_read.bpf.o/default program bad_read: ")
    assert message in line
    assert "REJECTED bad_read.bpf.o/default: program bad_read" in out
    assert "at:         bad_read.bpf.c:11: if (data[0] == 0xff)" in out


@pytest.mark.kernel
def test_object_with_a_matrix_is_one_line(
    objects: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = verify(
        capsys, str(objects["pass_count"]), "--matrix", "harness/verify/variants/default.toml"
    )
    assert code == 1 and out == ""
    assert err.strip() == (
        f"xhdr verify: error: --matrix builds sources with -D values; {objects['pass_count']} is an object, "
        "built already: drop --matrix"
    )


@pytest.mark.kernel
def test_csv_has_a_header_and_a_row_per_program(
    objects: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = verify(
        capsys, str(objects["pass_count"]), str(objects["bad_read"]), "--csv", "-", "--jobs", "1"
    )
    assert code == 1
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(row["key"], row["program"], row["accepted"]) for row in rows] == [
        ("pass_count.bpf.o/default", "pass_count", "True"),
        ("bad_read.bpf.o/default", "bad_read", "False"),
    ]
    assert int(rows[0]["verified_insns"]) > 0 and rows[0]["error"] == ""
    assert rows[1]["verified_insns"] == "" and "invalid access to packet" in rows[1]["error"]
    assert "variant" in err  # the table went to stderr, stdout carries the CSV


def _document(verified: int, jited: int) -> dict:
    program = {"name": "pass_count", "accepted": True, "error": None, "source_line": None, "log_tail": []}
    stats = {"verified_insns": verified, "stack_depth": 8, "xlated_bytes": 144, "jited_bytes": jited}
    return {
        "tool": "xhdr verify",
        "schema": 1,
        "kernel": "6.18",
        "variants": [
            {
                "key": "pass_count.bpf.o/default",
                "accepted": True,
                "rejection": None,
                "stats": {**stats, "map_bytes": 320},
                "programs": [{**program, "stats": stats}],
            }
        ],
    }


def test_offline_compare_without_root() -> None:
    """Two result files, compared by a user without any capability: deltas per variant and program;
    exit 1 only with --threshold."""
    with tempfile.TemporaryDirectory() as where:  # pytest's tmp_path is under a root-only directory
        tmp_path = Path(where)
        tmp_path.chmod(0o755)
        _compare_as_nobody(tmp_path)


def _compare_as_nobody(tmp_path: Path) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(_document(100, 90)))
    new.write_text(json.dumps(_document(125, 94)))
    command = [str(XHDR), "verify", "--compare", str(old), str(new)]

    def as_nobody(*extra: str) -> subprocess.CompletedProcess[str]:
        demote = (lambda: (os.setgid(65534), os.setuid(65534))) if os.geteuid() == 0 else None
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        return subprocess.run(
            [*command, *extra],
            check=False,
            capture_output=True,
            text=True,
            preexec_fn=demote,
            env=env,
            timeout=60,
        )

    shown = as_nobody()
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    variant = next(line for line in lines if line.startswith("pass_count.bpf.o/default"))
    program = next(line for line in lines if line.startswith("  pass_count"))
    for line in (variant, program):
        assert line.split()[1:4] == ["100", "125", "+25.0"], line
    assert "+4 (+4.4%)" in program
    assert "regression (no gate without --threshold)" in shown.stdout
    gated = as_nobody("--threshold", "10")
    assert gated.returncode == 1
    assert gated.stderr.strip() == (
        "xhdr verify: compare gate failed: pass_count.bpf.o/default: verified_insns grew 100 -> 125 "
        "(+25, +25.0%), past the +10% threshold"
    )
    assert main(["verify", "--compare", str(old), str(new), "--threshold", "30"]) == 0


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"xhdr {package_version()}\n"
    assert package_version()[0].isdigit()


def test_a_renamed_object_is_compared_with_its_old_name() -> None:
    """old.bpf.o/default against new.bpf.o/default: the same variant of a file that was renamed, compared
    (and said so), where matching keys alone would list it as new."""
    old, new = _document(100, 90), _document(125, 94)
    new["variants"][0]["key"] = "renamed.bpf.o/default"
    gate = baseline_gate(new, old, 10.0)
    assert gate["new_variants"] == []
    assert {row["key"] for row in gate["rows"]} == {"renamed.bpf.o/default (was pass_count.bpf.o/default)"}
    assert not gate["passed"]  # +25% verified instructions, past the threshold
    other = _document(100, 90)
    other["variants"][0]["key"] = "renamed.bpf.o/smallest"  # another variant: not the same build renamed
    assert baseline_gate(other, old, 10.0)["new_variants"] == ["renamed.bpf.o/smallest"]
