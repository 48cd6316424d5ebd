"""``xhdr bench --suite cache_cost``: the cache sizes it evicts, its pinning to one core (harness.core.testrun's
``on_one_cpu``), and the quick suite end to end.

Only the bookkeeping is asserted, never a timing: which caches are evicted with how many bytes, that the
process gets its cores back, and that every state has its figures (the events of every run are counted
by harness.core.rounds.interleaved_round, which fails the run when one is missing).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bench import cache_cost
from harness.core.testrun import on_one_cpu


def fake_cache_tree(root: Path, indexes: list[tuple[int, str, str]]) -> None:
    """sysfs's cache directory of cpu0: one indexN per (level, type, size)."""
    for number, (level, kind, size) in enumerate(indexes):
        index = root / "cpu0" / "cache" / f"index{number}"
        index.mkdir(parents=True)
        (index / "level").write_text(f"{level}\n")
        (index / "type").write_text(f"{kind}\n")
        (index / "size").write_text(f"{size}\n")


def test_the_evicted_sizes_are_the_cores_l2_and_last_level_cache(tmp_path: Path, monkeypatch) -> None:
    fake_cache_tree(
        tmp_path,
        [(1, "Data", "32K"), (1, "Instruction", "64K"), (2, "Unified", "1024K"), (3, "Unified", "32M")],
    )
    monkeypatch.setattr(cache_cost, "CACHE_DIR", str(tmp_path / "cpu{cpu}" / "cache"))
    assert cache_cost.cache_bytes(0) == {"l2_evicted": 1 << 20, "llc_evicted": 32 << 20}


def test_a_core_with_two_levels_evicts_its_l2_for_both(tmp_path: Path, monkeypatch) -> None:
    fake_cache_tree(tmp_path, [(1, "Data", "48K"), (2, "Unified", "2048K")])
    monkeypatch.setattr(cache_cost, "CACHE_DIR", str(tmp_path / "cpu{cpu}" / "cache"))
    assert cache_cost.cache_bytes(0) == {"l2_evicted": 2 << 20, "llc_evicted": 2 << 20}


def test_a_cache_larger_than_the_cap_is_written_over_as_far_as_the_cap(tmp_path: Path, monkeypatch) -> None:
    fake_cache_tree(tmp_path, [(2, "Unified", "1024K"), (3, "Unified", "1152M")])
    monkeypatch.setattr(cache_cost, "CACHE_DIR", str(tmp_path / "cpu{cpu}" / "cache"))
    assert cache_cost.cache_bytes(0) == {"l2_evicted": 1 << 20, "llc_evicted": cache_cost.LARGEST_CACHE_BYTES}


def test_without_sysfs_the_sizes_are_the_assumed_ones(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(cache_cost, "CACHE_DIR", str(tmp_path / "missing" / "cpu{cpu}"))
    assert cache_cost.cache_bytes(0) == cache_cost.ASSUMED_BYTES


def test_the_penalty_is_the_extractors_extra_time_less_the_empty_programs_round_by_round() -> None:
    taken = {
        "warm": ([1000.0, 1100.0, 900.0], [50.0, 60.0, 40.0]),
        "l2_evicted": ([1900.0, 2300.0, 1500.0], [250.0, 160.0, 140.0]),
        "llc_evicted": ([9000.0, 9100.0, 8900.0], [650.0, 660.0, 640.0]),
    }
    sizes = {"l2_evicted": 1 << 20, "llc_evicted": 32 << 20}
    rows = cache_cost.summarise(taken, sizes, runs=40, frame_bytes=417)
    figures = {(row.method, row.metric, row.params["caches"]): row for row in rows}
    # rounds: (1900-1000)-(250-50) = 700, (2300-1100)-(160-60) = 1100, (1500-900)-(140-40) = 500
    assert figures["extractor", "cache_penalty_ns", "l2_evicted"].value == 700
    assert figures["extractor", "cache_penalty_ns", "llc_evicted"].value == 8000 - 600
    assert figures["extractor", "ns_per_run", "l2_evicted"].value == 1900
    assert figures["empty", "ns_per_run", "warm"].value == 50
    assert ("extractor", "cache_penalty_ns", "warm") not in figures
    assert figures["extractor", "ns_per_run", "llc_evicted"].params["written_bytes"] == 64 << 20


def test_pinning_holds_one_core_and_gives_the_others_back() -> None:
    allowed = os.sched_getaffinity(0)
    with on_one_cpu() as cpu:
        assert os.sched_getaffinity(0) == {cpu}
        assert cpu == min(allowed)
    assert os.sched_getaffinity(0) == allowed


@pytest.mark.kernel
def test_quick_cache_suite_measures_every_state_of_both_programs(
    quick_suite: Callable[[str], tuple[dict, str]],
) -> None:
    result, stderr = quick_suite("cache_cost")
    assert result["suite"] == "cache_cost"
    rows = {(row["method"], row["metric"], row["params"]["caches"]): row for row in result["rows"]}
    sizes = cache_cost.cache_bytes(min(os.sched_getaffinity(0)))
    for state in cache_cost.STATES:
        for method in ("extractor", "empty"):
            assert rows[method, "ns_per_run", state]["value"] > 0, (method, state)
        assert rows["extractor", "ns_per_run", state]["params"]["written_bytes"] == 2 * sizes.get(state, 0)
        assert (("extractor", "cache_penalty_ns", state) in rows) == (state != "warm"), state
        assert f"{state.replace('_', ' ')}: extractor" in stderr, state
