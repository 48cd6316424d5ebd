"""Every built-in corpus case through every driver: the kernel's events and counters equal the reference's.

A case is one TCP flow: the kernel gets the SYN that opens it, then its frames (``feed_flows``), and each
frame is compared with the reference fed the same sequence (``CorpusCase.expected``; the hand-written
expectations are held to the same in tests/test_reference.py).
"""

from __future__ import annotations

import pytest

from harness.core.counters import OUTCOMES, Counter
from harness.core.driver import feed_flows
from harness.oracle.corpus import load_corpus
from harness.oracle.differences import outcome_differences

CASES = load_corpus()


@pytest.mark.kernel
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_kernel_matches_reference(driver, case) -> None:
    outcomes = feed_flows(driver, [case.frames])
    expected = case.expected(driver.program.config, driver.program.key)
    for index, (outcome, wanted) in enumerate(zip(outcomes, expected, strict=True)):
        differences = outcome_differences(outcome, wanted)
        assert not differences, f"{case.name} frame {index} via {driver.name}:\n  " + "\n  ".join(differences)


def test_corpus_exercises_every_outcome() -> None:
    """The corpus is only a good driver test if frames end in every outcome the extractor can give. The corpus
    runs without rules, so a blocked flow (R29) is left to tests/test_rules.py and the rules fuzz campaign."""
    seen = {expected.outcome for case in CASES for expected in case.expected()}
    wanted = OUTCOMES - {Counter.BLOCKED}
    assert wanted <= seen, f"no corpus case ends in {sorted(c.label for c in wanted - seen)}"
