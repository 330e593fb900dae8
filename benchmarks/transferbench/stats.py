"""Paired comparisons of arms over (target, seed) units, with bootstrap intervals."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from scipy.stats import spearmanr

from ensembling.strategies import NO_TRANSFER, SINGLE

BOOTSTRAP = 10_000
K = TypeVar("K")


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
    return mean_interval([mine[unit] - theirs[unit] for unit in units], seed)


def mean_interval(values: list[float], seed: int = 0) -> Delta:
    """The mean of per-unit values with its 95 % percentile-bootstrap interval over the units."""
    if not values:
        return Delta(math.nan, math.nan, math.nan, 0)
    array = np.array(values, dtype=float)
    low, high = _bootstrap(array, lambda sample: sample.mean(axis=1), seed)
    return Delta(float(array.mean()), float(low), float(high), len(array))


def per_target_delta(runs: list[dict], method: str, shots: int, arm: str, reference: str) -> dict[str, float]:
    """Mean over seeds of a − b, per target (only seeds both arms ran)."""
    mine, theirs = accuracies(runs, method, shots, arm), accuracies(runs, method, shots, reference)
    by_target: dict[str, list[float]] = defaultdict(list)
    # Set order follows the hash seed: a fixed order keeps every mean, and the sums over them, the same in every process.
    for unit in sorted(set(mine) & set(theirs)):
        by_target[unit[0]].append(mine[unit] - theirs[unit])
    return {target: float(np.mean(values)) for target, values in by_target.items()}


def lowest(deltas: Mapping[K, float]) -> tuple[K, float]:
    """The entry with the lowest Δ; a tie goes to the first key in sorted order, whatever order the mapping was built in."""
    return min(deltas.items(), key=lambda item: (item[1], item[0]))


def leave_one_target_out(runs: list[dict], method: str, shots: int, candidates: list[str]) -> tuple[dict[tuple[str, int], float], dict[str, str]]:
    """Per (target, seed): the gain over random of the candidate with the best mean per-target gain on the *other* targets,
    and that pick per target: a fixed strategy chosen the way a user reading the table would choose one for a new task.
    A candidate that did not run on the held-out target (a documented skip) gives way to the next best."""
    by_arm = {arm: per_target_delta(runs, method, shots, arm, NO_TRANSFER) for arm in candidates}
    random_acc = accuracies(runs, method, shots, NO_TRANSFER)
    gains: dict[tuple[str, int], float] = {}
    picks: dict[str, str] = {}
    for target in sorted({target for deltas in by_arm.values() for target in deltas}):
        elsewhere = {arm: [delta for other, delta in deltas.items() if other != target] for arm, deltas in by_arm.items()}
        ranked = sorted((arm for arm in candidates if elsewhere[arm] and target in by_arm[arm]), key=lambda arm: -float(np.mean(elsewhere[arm])))
        if not ranked:
            continue
        picks[target] = ranked[0]
        mine = accuracies(runs, method, shots, ranked[0])
        for unit in mine:
            if unit[0] == target and unit in random_acc:
                gains[unit] = mine[unit] - random_acc[unit]
    return gains, picks


def init_seconds(run: dict) -> float:
    """An arm's init cost as if it ran alone: its own seconds plus the scoring it reused from arms before it in the cell."""
    return run["init_s"] + run.get("reused_s", 0.0)


def is_single(arm: str) -> bool:
    """An oracle arm: one source alone (single:<task>, or single:<task>#<module id>)."""
    return arm.startswith(f"{SINGLE}:")


def single_gains(runs: list[dict], method: str, shots: int) -> dict[tuple[str, int], dict[str, float]]:
    """Per (target, seed): each single arm's gain in points over `random` (the target trained from that source alone)."""
    random_acc = accuracies(runs, method, shots, NO_TRANSFER)
    gains: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for run in runs:
        unit = (run["target"], run["seed"])
        if run["method"] == method and run["shots"] == shots and is_single(run["arm"]) and unit in random_acc:
            gains[unit][run["arm"]] = 100 * run["test_acc"] - random_acc[unit]
    return dict(gains)


def oracle_delta(runs: list[dict], method: str, shots: int, seed: int = 0) -> Delta:
    """The oracle's gain over random: the best single source per (target, seed), chosen by test accuracy."""
    return mean_interval([max(gains.values()) for gains in single_gains(runs, method, shots).values()], seed)


def share_of_oracle(runs: list[dict], method: str, shots: int, arm: str, seed: int = 0) -> Delta:
    """An arm's mean gain over random as a percentage of the oracle's mean gain, over the same (target, seed) units."""
    gains = single_gains(runs, method, shots)
    mine, random_acc = accuracies(runs, method, shots, arm), accuracies(runs, method, shots, NO_TRANSFER)
    units = sorted(unit for unit in gains if unit in mine)
    if not units:
        return Delta(math.nan, math.nan, math.nan, 0)
    pairs = np.array([[mine[unit] - random_acc[unit], max(gains[unit].values())] for unit in units])
    if pairs[:, 1].mean() <= 0:  # the oracle gains nothing over random: a share of it means nothing
        return Delta(math.nan, math.nan, math.nan, len(units))
    ratio = lambda sample: 100 * sample[..., 0].mean(axis=-1) / sample[..., 1].mean(axis=-1)  # noqa: E731
    with np.errstate(divide="ignore", invalid="ignore"):  # a resample may hold only units the oracle does not gain on
        low, high = _bootstrap(pairs, ratio, seed)
    return Delta(float(ratio(pairs)), low, high, len(units))


def _bootstrap(values: np.ndarray, statistic, seed: int) -> tuple[float, float]:
    """95 % percentile interval of `statistic` over resamples of the units (the first axis of `values`)."""
    rng = np.random.default_rng(seed)
    resampled = statistic(values[rng.integers(0, len(values), size=(BOOTSTRAP, len(values)))])
    low, high = np.nanpercentile(resampled, [2.5, 97.5])
    return float(low), float(high)


def spearman(x: list[float], y: list[float]) -> float:
    """Rank correlation; NaN when there are fewer than 3 points or either side is constant."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(spearmanr(x, y).statistic)


def steps_to_reach(history: list[list[float]], goal: float) -> int | None:
    """First evaluated step whose dev accuracy reaches `goal` (0: the init already does); None: never."""
    reached = reach(history, goal)
    return None if reached is None else int(reached[0])


def reach(history: list[list[float]], goal: float) -> tuple[float, float | None] | None:
    """(step, seconds into training) of the first evaluation whose dev accuracy reaches `goal`; None: never.

    A history row is [step, dev] or, since training records it, [step, dev, seconds]; seconds is None for the older rows.
    """
    for step, dev, *rest in history:
        if dev is not None and not math.isnan(dev) and dev >= goal - 1e-9:
            return step, rest[0] if rest else None
    return None


@dataclass(frozen=True)
class Sooner:
    """How much sooner an arm reaches `random`'s best k-shot dev accuracy than `random` itself, over (target, seed) units.

    `steps` and `seconds`: the mean per-unit ratio of the arm's steps (seconds, its init's included) to
    `random`'s own, with a 95 % bootstrap interval; units where random's best is its init (0 steps) have
    no ratio. `never`: units where the arm never reaches random's best.
    """

    steps: Delta
    seconds: Delta
    never: int
    units: int


def sooner(runs: list[dict], method: str, shots: int, arm: str, seed: int = 0) -> Sooner:
    mine = [run for run in runs if run["method"] == method and run["shots"] == shots]
    randoms = {(run["target"], run["seed"]): run for run in mine if run["arm"] == NO_TRANSFER}
    step_ratios, second_ratios, never, units = [], [], 0, 0
    for run in mine:
        base = randoms.get((run["target"], run["seed"]))
        if run["arm"] != arm or base is None:
            continue
        units += 1
        own = reach(base["history"], base["dev_acc"])
        theirs = reach(run["history"], base["dev_acc"])
        if theirs is None:
            never += 1
            continue
        if own is None or own[0] == 0:
            continue
        step_ratios.append(theirs[0] / own[0])
        if own[1] and theirs[1] is not None:
            second_ratios.append((init_seconds(run) + theirs[1]) / own[1])
    return Sooner(mean_interval(step_ratios, seed), mean_interval(second_ratios, seed), never, units)
