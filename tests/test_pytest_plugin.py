"""The pytest plugin (harness/pytest_plugin.py, netns/pytest_plugin.py) as a user meets it.

The README's example test is taken from README.md itself and run by a pytest of its own (pytester, in a
subprocess, so the plugin comes in through its pytest11 entry points as in a user's project, without this
repository's conftest.py) against tests/objects/pass_count.bpf.c built with clang: its three tests pass, the
lab test once per XDP mode. The loaders' one-line errors are checked here directly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.core.loader import load
from harness.core.program import ProgramError

README = Path(__file__).parents[1] / "README.md"
EXAMPLE_MARK = "<!-- plugin example -->"


def readme_example() -> str:
    """The python block right after the README's example mark."""
    text = README.read_text()
    match = re.search(re.escape(EXAMPLE_MARK) + r"\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, f"README.md has no python block after {EXAMPLE_MARK}"
    return match.group(1)


@pytest.mark.kernel
@pytest.mark.lab
def test_the_readme_example_passes_through_the_entry_points(
    pytester: pytest.Pytester, clang_object: Callable[..., Path]
) -> None:
    example = readme_example()
    assert 'PARSER = Path("my_prog.bpf.o")' in example
    built = clang_object("pass_count")
    pytester.makepyfile(test_my_prog=example.replace('Path("my_prog.bpf.o")', f"Path({str(built)!r})"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=4)  # the test run, the lab test in native and in generic mode, the cost


@pytest.mark.kernel
def test_a_source_and_an_object_load_alike(clang_object: Callable[..., Path], tmp_path: Path) -> None:
    with load(clang_object("pass_count")) as built, load(Path("bpf/xdp_pass.c")) as source:
        assert (built.name, source.name) == ("pass_count", "xdp_pass")
        assert built.fd > 0 and source.fd > 0
        assert built.lookup("packets", bytes(4), 8) == bytes(8)
    with load(clang_object("pass_count")) as built, pytest.raises(ProgramError, match=r"it has: packets"):
        built.map_fd("nope")
    missing = tmp_path / "missing.bpf.o"
    with pytest.raises(ProgramError, match=r"is not a file; give a \.c source or a \.bpf\.o object"):
        load(missing)
    with pytest.raises(ProgramError, match=r"has no XDP program named other; it has: pass_count"):
        load(clang_object("pass_count"), "other")
