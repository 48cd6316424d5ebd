"""The statistic of every paired comparison the benchmarks make: two things measured round by round, side by
side, and the median of the rounds' ratios with a percentile bootstrap interval (numpy only).

Pairing is what makes a comparison survive this machine class: a slow spell of the machine hits both sides of
a round alike and cancels in the round's ratio, while the absolute figures move by tens of percent from one
run to the next. The median of the log ratios resists the one round a burst still spoils. Every kernel
figure's ratio to the empty program is this median (harness/core/cost.py); the regression gate
(bench/ab_gate.py) judges two builds with its interval; the nginx suite says with it whether ``xhdr log`` is
ahead of nginx's access log, behind it, or too close to tell.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 4000
MIN_ROUNDS = 5  # fewer paired rounds give no interval worth a verdict


@dataclasses.dataclass(frozen=True)
class PairedRatio:
    """current/reference: the median of the rounds' ratios and its interval at ``CONFIDENCE``."""

    estimate: float
    low: float
    high: float


def median_ratio(current: Sequence[float], reference: Sequence[float]) -> float:
    """current/reference over paired rounds: the median of the rounds' log ratios, as a ratio (for an odd
    number of rounds, the middle round's ratio)."""
    return float(np.exp(np.median(_log_ratios(current, reference))))


def _log_ratios(current: Sequence[float], reference: Sequence[float]) -> np.ndarray:
    """The rounds' log ratios: a ratio's log, unlike the ratio, is as far above 0 for 2x as below it for 0.5x."""
    current_a = np.asarray(current, dtype=float)
    reference_a = np.asarray(reference, dtype=float)
    if current_a.shape != reference_a.shape or not current_a.size:
        raise ValueError("paired rounds must be as many on both sides, and at least one")
    if (current_a <= 0).any() or (reference_a <= 0).any():
        raise ValueError("a round measured 0; measure longer rounds")
    return np.log(current_a / reference_a)


def paired_ratio(
    current: Sequence[float], reference: Sequence[float], loads: Sequence[tuple[int, int]] | None = None
) -> PairedRatio:
    """The median paired ratio over rounds and its percentile bootstrap interval.

    ``loads`` gives, per round, which load of the reference and which of the current side ran it (the gate's
    builds, each loaded several times): rounds of one load pair are not independent, so the bootstrap then
    resamples loads first, then rounds within the drawn load pairs (a two-stage bootstrap), and the interval
    includes the load-to-load spread instead of hiding it. The generator's seed is fixed, so the same
    measurements always give the same interval.
    """
    logs = _log_ratios(current, reference)
    if logs.size < MIN_ROUNDS:
        raise ValueError(f"an interval needs at least {MIN_ROUNDS} paired rounds, not {logs.size}")
    rng = np.random.default_rng(0)
    if loads is None or len(set(loads)) == 1:
        medians = np.median(logs[rng.integers(0, logs.size, (RESAMPLES, logs.size))], axis=1)
    else:
        medians = _two_stage_medians(logs, np.asarray(loads), rng, RESAMPLES)
    alpha = 1 - CONFIDENCE
    low, high = np.exp(np.quantile(medians, [alpha / 2, 1 - alpha / 2]))
    return PairedRatio(float(np.exp(np.median(logs))), float(low), float(high))


@dataclasses.dataclass(frozen=True)
class Judgement:
    """What paired rounds say of one side against the other, for a figure where higher is better."""

    ahead: bool | None  # None: too close to tell, or too few rounds for an interval
    says: str


def judge_rounds(ratios: Sequence[float]) -> Judgement:
    """The rounds' own ratios (ours over theirs, higher is better) in words: ahead or behind only when the
    interval of their median lies wholly above or below 1, else too close to tell; below MIN_ROUNDS rounds,
    how many to measure instead."""
    if len(ratios) < MIN_ROUNDS:
        return Judgement(None, f"too few rounds for an interval (give --rounds {MIN_ROUNDS} or more)")
    found = paired_ratio(ratios, [1.0] * len(ratios))
    ahead = True if found.low > 1 else False if found.high < 1 else None
    says = {True: "ahead", False: "behind", None: "too close to tell"}[ahead]
    return Judgement(ahead, f"{says} ({CONFIDENCE:.0%} interval {found.low:.3f}-{found.high:.3f})")


def _two_stage_medians(
    logs: np.ndarray, loads: np.ndarray, rng: np.random.Generator, resamples: int
) -> np.ndarray:
    """Medians of resamples that draw reference and current loads with replacement, then their rounds."""
    ref_ids, cur_ids = np.unique(loads[:, 0]), np.unique(loads[:, 1])
    by_pair = {
        (int(a), int(b)): logs[(loads[:, 0] == a) & (loads[:, 1] == b)] for a in ref_ids for b in cur_ids
    }
    medians = np.empty(resamples)
    for k in range(resamples):
        drawn = [
            by_pair[(int(a), int(b))]
            for a in rng.choice(ref_ids, ref_ids.size)
            for b in rng.choice(cur_ids, cur_ids.size)
        ]
        pooled = np.concatenate([d for d in drawn if d.size] or [logs])
        medians[k] = np.median(pooled[rng.integers(0, pooled.size, pooled.size)])
    return medians
