"""Every built-in corpus case through every driver: the kernel's events and counters equal the reference's."""

from __future__ import annotations

import pytest

from harness import reference
from harness.compare import outcome_differences
from harness.corpus import load_corpus
from harness.counters import OUTCOMES

CASES = load_corpus()

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_kernel_matches_reference(driver, case) -> None:
    outcomes = driver.feed(case.frames)
    for index, (frame, outcome) in enumerate(zip(case.frames, outcomes, strict=True)):
        expected = reference.extract(frame, driver.program.config, driver.program.key)
        differences = outcome_differences(outcome, expected)
        assert not differences, f"{case.name} frame {index} via {driver.name}:\n  " + "\n  ".join(differences)


def test_corpus_exercises_every_outcome() -> None:
    """The corpus is only a good driver test if frames end in every outcome the extractor can give."""
    seen = {reference.extract(frame).outcome for case in CASES for frame in case.frames}
    assert OUTCOMES <= seen, f"no corpus case ends in {sorted(c.label for c in OUTCOMES - seen)}"
