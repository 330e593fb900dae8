"""Paired comparisons of arms over (target, seed) units, with bootstrap intervals."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

BOOTSTRAP = 10_000


@dataclass(frozen=True)
class Delta:
    """Mean paired difference a − b in points, its 95 % percentile-bootstrap interval, and the units it rests on."""

    mean: float
    low: float
    high: float
    units: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def text(self) -> str:
        if self.units == 0:
            return "–"
        return f"{self.mean:+.1f} [{self.low:+.1f}, {self.high:+.1f}]"


def accuracies(runs: list[dict], method: str, shots: int, arm: str) -> dict[tuple[str, int], float]:
    """Test accuracy in points per (target, seed)."""
    return {(run["target"], run["seed"]): 100 * run["test_acc"] for run in runs if run["method"] == method and run["shots"] == shots and run["arm"] == arm}


def paired_delta(runs: list[dict], method: str, shots: int, arm: str, reference: str, seed: int = 0) -> Delta:
    mine, theirs = accuracies(runs, method, shots, arm), accuracies(runs, method, shots, reference)
    units = sorted(set(mine) & set(theirs))
    if not units:
        return Delta(math.nan, math.nan, math.nan, 0)
    differences = np.array([mine[unit] - theirs[unit] for unit in units])
    rng = np.random.default_rng(seed)
    means = differences[rng.integers(0, len(units), size=(BOOTSTRAP, len(units)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Delta(float(differences.mean()), float(low), float(high), len(units))


def per_target_delta(runs: list[dict], method: str, shots: int, arm: str, reference: str) -> dict[str, float]:
    """Mean over seeds of a − b, per target (only seeds both arms ran)."""
    mine, theirs = accuracies(runs, method, shots, arm), accuracies(runs, method, shots, reference)
    by_target: dict[str, list[float]] = defaultdict(list)
    for unit in set(mine) & set(theirs):
        by_target[unit[0]].append(mine[unit] - theirs[unit])
    return {target: float(np.mean(values)) for target, values in by_target.items()}


def spearman(x: list[float], y: list[float]) -> float:
    """Rank correlation; NaN when there are fewer than 3 points or either side is constant."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(spearmanr(x, y).statistic)


def steps_to_reach(history: list[list[float]], goal: float) -> int | None:
    """First evaluated step whose dev accuracy reaches `goal` (0: the init already does); None: never."""
    for step, dev in history:
        if dev is not None and not math.isnan(dev) and dev >= goal - 1e-9:
            return int(step)
    return None
