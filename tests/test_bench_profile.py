"""``xhdr bench --profile``: samples of a real extractor under test runs, charged to its programs and lines.

Only the structure is checked (no timing): every sample lands in one of the extractor's programs, the
shares add up, and the costliest lines are real source lines of bpf/xhdr.c, helpers named where called.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bench.profile import Profile, render, run
from harness.cli.main import SCRIPT
from harness.core.errors import CommandError
from harness.core.program import ENTRY_POINT, EXTRACTOR_SOURCE, STAGES

pytestmark = pytest.mark.kernel
PROGRAMS = {ENTRY_POINT, *STAGES}


@pytest.fixture(scope="module")
def profile() -> Profile:
    return run("standard", seconds=2.0, top=40, progress=lambda _: None)


def test_every_sample_is_charged_to_a_program_and_the_shares_add_up(profile: Profile) -> None:
    assert profile.samples > 100
    assert set(profile.programs) <= PROGRAMS
    assert {ENTRY_POINT, "xhdr_scan", "xhdr_emit"} <= set(profile.programs)  # the standard request runs them
    assert sum(profile.programs.values()) == pytest.approx(1.0)


def test_lines_are_source_lines_of_the_extractor_costliest_first(profile: Profile) -> None:
    source = EXTRACTOR_SOURCE.read_text()
    shares = [line.share for line in profile.lines]
    assert shares == sorted(shares, reverse=True)
    # BCC rewrites map calls (flows.lookup(...) becomes bpf_map_lookup_elem(bpf_pseudo_fd(...), ...)) and tail
    # calls (stages.call(...) becomes a cast of BPF_FUNC_tail_call, near the top 40 in some runs); the rest is
    # the file's own text
    own = [line for line in profile.lines if not line.calls and "(no source line)" != line.source]
    rewritten = ("bpf_pseudo_fd", "BPF_FUNC_tail_call")
    assert own and all(line.source in source for line in own if not any(r in line.source for r in rewritten))
    # the ring-buffer output is a helper: its time is charged to the line that calls it
    assert any(line.calls == "bpf_ringbuf_output" for line in profile.lines)
    assert render(profile).splitlines()[0].startswith("profile of standard, caches warm: ")


def test_an_unknown_case_is_one_line_naming_the_choices() -> None:
    with pytest.raises(CommandError, match="no benchmark case 'nope'; choose one of .*standard"):
        run("nope", seconds=1.0, top=5, progress=lambda _: None)


@pytest.mark.parametrize(("caches", "suffix"), [("warm", ""), ("l2_evicted", "_l2_evicted")])
def test_the_command_prints_the_table_and_writes_it_as_json(tmp_path: Path, caches: str, suffix: str) -> None:
    """Warm, or with the core's L2 written over before every run (one run at a time): where cold misses go."""
    xhdr = str(SCRIPT)
    argv = [
        xhdr,
        "bench",
        "--profile",
        "headers_8",
        "--seconds",
        "1",
        "--caches",
        caches,
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"profile of headers_8, caches {caches}: ")
    written = json.loads((tmp_path / f"profile_headers_8{suffix}.json").read_text())
    assert written["case"] == "headers_8" and written["caches"] == caches
    assert written["samples"] > 0 and set(written["programs"]) <= PROGRAMS
    both = subprocess.run(
        [*argv, "--compare", "HEAD"], capture_output=True, text=True, check=False, timeout=60
    )
    assert (both.returncode, both.stderr.strip().splitlines()[-1]) == (
        1,
        "xhdr bench: error: --profile and --compare are separate runs; give one of them",
    )
