"""``xhdr verify`` against the running kernel's verifier: the default matrix, negative controls, the
baseline gate, and bad input.

Negative controls live in tests/verifier_cases/*.c, each carrying its expectation in its first lines
(``// xhdr-expect: accept`` or ``// xhdr-expect: reject "<verifier message>"``, optionally
``// xhdr-args: <extra xhdr verify arguments>``); a new case is a new file. The command runs in-process
through harness.cli.main.main so the tests can also check that no BPF object is left open afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.core.config import LIMIT_RANGES
from harness.verify.variants import DEFAULT_BASELINE, DEFAULT_MATRIX, load_matrix
from harness.verify.verifier import STATS

pytestmark = pytest.mark.kernel

CASES = sorted((Path(__file__).parent / "verifier_cases").glob("*.c"))
_EXPECT = re.compile(r'^// xhdr-expect: (accept|reject "([^"]+)")\s*$', re.MULTILINE)
_ARGS = re.compile(r"^// xhdr-args: (.*)$", re.MULTILINE)


def expectation(case: Path) -> tuple[bool, str | None, list[str]]:
    """(accepted?, the verifier message a rejection must carry, extra arguments) from the case's comments."""
    text = case.read_text()
    match = _EXPECT.search(text)
    assert match, f'{case.name} has no `// xhdr-expect: accept|reject "message"` line'
    extra = _ARGS.search(text)
    return match.group(1) == "accept", match.group(2), shlex.split(extra.group(1)) if extra else []


def bpf_fds() -> int:
    """BPF programs and maps this process holds open: what a run must not leave behind."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("anon_inode:bpf-")
        except OSError:
            pass
    return count


def verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Runs `xhdr verify ARGS`; returns (exit code, stdout, stderr) and checks nothing BPF stayed open."""
    before = bpf_fds()
    code = main(["verify", *args])
    out, err = capsys.readouterr()
    assert bpf_fds() == before, f"xhdr verify {' '.join(args)} left BPF objects open"
    return code, out, err


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict, str]:
    """The default matrix once for the module, gated against the repository's baseline."""
    out = tmp_path_factory.mktemp("verify") / "results.json"
    code = main(["verify", "--json", str(out), "--baseline", str(DEFAULT_BASELINE)])
    return code, json.loads(out.read_text()), out.read_text()


def test_default_matrix_is_accepted_with_every_statistic(default_run: tuple[int, dict, str]) -> None:
    code, document, _ = default_run
    assert code == 0
    assert document["commit"] not in ("", "unknown"), "the commit of bpf/xhdr.c tells results apart over time"
    names = [variant.name for variant in load_matrix(DEFAULT_MATRIX)]
    assert [variant["variant"] for variant in document["variants"]] == names
    for variant in document["variants"]:
        assert variant["accepted"], variant["rejection"]
        assert {p["name"] for p in variant["programs"]} == {
            "xhdr_extract",
            "xhdr_scan",
            "xhdr_chunks",
            "xhdr_values",
            "xhdr_hash",
            "xhdr_emit",
            "xhdr_tls",
            "xhdr_responses",  # the TC egress program (R24, R25), verified as SCHED_CLS
        }
        missing = [stat.name for stat in STATS if variant["stats"].get(stat.name) is None]
        assert not missing, f"{variant['key']} lacks {missing}"
        for program in variant["programs"]:
            assert program["stats"]["verified_insns"] == program["stats"]["processed_insns"] > 0
            assert program["stats"]["jited_bytes"] > 0 and program["stats"]["xlated_bytes"] > 0
        assert variant["stats"]["verified_insns"] == sum(
            p["stats"]["verified_insns"] for p in variant["programs"]
        )


def test_default_matrix_covers_both_ends_of_every_limit() -> None:
    variants = load_matrix(DEFAULT_MATRIX)
    for limit, (low, high) in LIMIT_RANGES.items():
        values = {variant.limits.get(limit) for variant in variants}
        assert {low, high} <= values, f"{limit}: the default matrix lacks { ({low, high} - values) }"
    assert {variant.defines.get("XHDR_STEP_WORDS", 8) for variant in variants} == {4, 8}


def test_statistics_follow_the_limits(default_run: tuple[int, dict, str]) -> None:
    """Larger limits cost the verifier more and ask for more map memory (the ring buffer grows 4096x)."""
    stats = {variant["variant"]: variant["stats"] for variant in default_run[1]["variants"]}
    assert stats["smallest"]["verified_insns"] < stats["defaults"]["verified_insns"]
    assert stats["step-4"]["verified_insns"] < stats["defaults"]["verified_insns"]
    assert stats["smallest"]["map_bytes"] < stats["defaults"]["map_bytes"] < stats["largest"]["map_bytes"]


def test_repository_baseline_passes(default_run: tuple[int, dict, str]) -> None:
    gate = default_run[1]["gate"]
    assert gate["passed"], gate["failures"]
    assert not gate["new_variants"], (
        "harness/verify/variants/baseline.json is missing variants; regenerate it"
    )
    gated = {row["key"] for row in gate["rows"] if row["stat"] == "verified_insns"}
    assert gated == {variant["key"] for variant in default_run[1]["variants"]}


@pytest.mark.parametrize("case", CASES, ids=[case.stem for case in CASES])
def test_verifier_case(case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    accepted, message, extra = expectation(case)
    out_json = tmp_path / "out.json"
    code, out, err = verify(capsys, *extra, str(case), "--json", str(out_json))
    (variant,) = json.loads(out_json.read_text())["variants"]
    assert variant["accepted"] is accepted
    if accepted:
        assert code == 0
        assert variant["stats"]["verified_insns"] > 0
        return
    assert code == 1
    assert message in variant["rejection"]["error"]
    assert variant["rejection"]["log_tail"] and message in "\n".join(variant["rejection"]["log_tail"])
    assert f"REJECTED {case.name}/default" in out and message in out
    assert "1 of 1 variants rejected" in err


def test_negative_controls_cover_three_reasons() -> None:
    reasons = {expectation(case)[1] for case in CASES if not expectation(case)[0]}
    assert len(reasons) >= 3
    assert any(expectation(case)[0] for case in CASES), "no case that must be accepted"


def test_rejection_names_the_source_line(capsys: pytest.CaptureFixture[str]) -> None:
    case = next(case for case in CASES if case.stem == "unchecked_packet_read")
    line = next(n for n, text in enumerate(case.read_text().splitlines(), 1) if "data[0]" in text)
    code, out, _ = verify(capsys, str(case))
    assert code == 1
    assert f"at:         {case.name}:{line}: if (data[0] == 0xff)" in out


def test_gate_fails_on_a_smaller_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A baseline with 20% fewer verified instructions: the variant is named with its delta.

    The accepted control stands in for the extractor (a matrix run of its own costs seconds per variant);
    the extractor's variants are gated against the repository's baseline in test_repository_baseline_passes.
    """
    case = next(case for case in CASES if expectation(case)[0])
    results = tmp_path / "now.json"
    assert verify(capsys, str(case), "--json", str(results))[0] == 0
    document = json.loads(results.read_text())
    now = document["variants"][0]["stats"]["verified_insns"]
    was = now * 4 // 5
    document["variants"][0]["stats"]["verified_insns"] = was
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(document))
    code, out, err = verify(capsys, str(case), "--baseline", str(baseline))
    assert code == 1
    pct = (now - was) * 100 / was
    expected = f"{case.name}/default: verified_insns grew {was} -> {now} ({now - was:+d}, {pct:+.1f}%)"
    assert expected in out and expected in err
    code, _, _ = verify(capsys, str(case), "--baseline", str(baseline), "--threshold", f"{pct + 1:.1f}")
    assert code == 0, "a threshold above the growth must pass"


def test_gate_fails_when_an_accepted_variant_is_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = next(case for case in CASES if case.stem == "unchecked_packet_read")
    accepted = next(case for case in CASES if expectation(case)[0])
    results = tmp_path / "accepted.json"
    assert verify(capsys, str(accepted), "--json", str(results))[0] == 0
    baseline = json.loads(results.read_text())
    baseline["variants"][0]["key"] = f"{case.name}/default"
    (tmp_path / "baseline.json").write_text(json.dumps(baseline))
    code, out, _ = verify(capsys, str(case), "--baseline", str(tmp_path / "baseline.json"))
    assert code == 1
    assert f"GATE FAILED {case.name}/default: accepted in the baseline, now rejected" in out


BAD_MATRICES = {
    "unknown key": ('[[variant]]\nname = "x"\nlimitz = { max_value_len = 64 }\n', "unknown key 'limitz'"),
    "unknown limit": (
        '[[variant]]\nname = "x"\nlimits = { max_values = 64 }\n',
        "unknown limit 'max_values'",
    ),
    "limit out of range": (
        '[[variant]]\nname = "big"\nlimits = { max_scan_bytes = 4096 }\n',
        "variant 'big': max_scan_bytes = 4096 is out of range; choose an integer from 64 to 1536",
    ),
    "unknown top-level key": ('sources = ["a.c"]\n[[variant]]\nname = "x"\n', "unknown key 'sources'"),
    "duplicate name": ('[[variant]]\nname = "x"\n[[variant]]\nname = "x"\n', "'x' is used twice"),
    "bad rule": (
        '[[variant]]\nname = "r"\n[[variant.rules]]\nname = "x"\naction = "block"\n',
        "variant 'r': rule \"x\": action 'block' is unknown",
    ),
}


def _one_error_line(err: str, expected: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("xhdr verify: error: ") and expected in lines[0], lines[0]


@pytest.mark.parametrize("name", BAD_MATRICES)
def test_bad_matrix(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, expected = BAD_MATRICES[name]
    matrix = tmp_path / "matrix.toml"
    matrix.write_text(text)
    code, out, err = verify(capsys, "--matrix", str(matrix))
    assert code == 1 and out == ""
    _one_error_line(err, expected)


def test_missing_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = verify(capsys, str(tmp_path / "absent.c"))
    assert code == 1 and out == ""
    _one_error_line(err, f"source file {tmp_path / 'absent.c'} does not exist")


def test_source_that_does_not_compile_shows_the_compiler_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "broken.c"
    source.write_text(
        "#include <uapi/linux/bpf.h>\n\nint xdp_broken(struct xdp_md *ctx)\n{\n\treturn nope;\n}\n"
    )
    code, out, err = verify(capsys, str(source))
    assert code == 1 and out == ""
    _one_error_line(err, "did not compile: broken.c:5:9: error: use of undeclared identifier 'nope'")


def test_source_without_an_xdp_program(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "kprobe.c"
    source.write_text("int count(struct pt_regs *ctx)\n{\n\treturn 0;\n}\n")
    code, out, err = verify(capsys, str(source))
    assert code == 1 and out == ""
    _one_error_line(err, "has no XDP program")


def test_missing_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = verify(capsys, "--baseline", str(tmp_path / "none.json"))
    assert code == 1 and out == ""
    _one_error_line(err, "does not exist")
