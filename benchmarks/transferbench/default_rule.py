"""The lab-scale default: a rule fixed before the runs it reads, applied to the full pool's design targets and judged on the others.

The rule (written before the 16-shot and second-seed runs; the first seed's 4-shot runs had been read):

- Candidates: the arms a user picks by name that read the target's sample only to score sources or to rank them by
  dataset embedding (no fitting on it: not lorahub, guarded or auto), whose selection costs at most MAX_SELECTION_S
  per target at the full pool on the machine that ran them.
- On the design targets at the full pool, over the (target, shots, seed) units that every candidate and `random` ran
  (the same data for each): under GOAL_JUNK % of the weight
  on junk, and no design target below −MAX_LOSS points against `random` at any shots count.
- The best mean Δ vs `random` over the design units wins; a candidate within TIE_POINTS of it ties, and a tie goes
  to the one with the least selection time.

The judged targets then say whether the choice holds where nothing was designed: Δ vs `random-pool`, `random` and
`group-average` (the default chosen on the WordNet pool), paired, with intervals, its worst target and its junk share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import mean

from benchmarks.transferbench.curve import GOAL_JUNK, junk_percent
from benchmarks.transferbench.report import fixed, strategy_of
from benchmarks.transferbench.stats import init_seconds, lowest, paired_delta, per_target_delta
from ensembling.strategies import BY_CATEGORY, NO_TRANSFER, RANDOM_POOL, Needs

MAX_SELECTION_S = 60.0  # the bound on selection per target at >= 200 modules on 2 cores
MAX_LOSS = 1.0  # the standard default's rule: no design target more than a point below random
TIE_POINTS = 1.0
READS_ONLY = frozenset({Needs.SCORING, Needs.SIMILARITY})


@dataclass(frozen=True)
class Candidate:
    arm: str
    gain: float  # mean Δ vs random over the design units, points
    units: int
    worst: tuple[str, int, float]  # (target, shots, Δ vs random over seeds) of the lowest design target
    junk: float  # % of the weight on junk over the design runs
    selection_s: float

    def failed(self) -> str | None:
        if math.isnan(self.junk):
            return "no run records its modules' weights"
        if self.junk >= GOAL_JUNK:
            return f"junk {self.junk:.1f} % ≥ {GOAL_JUNK:g} %"
        if self.worst[2] < -MAX_LOSS:
            return f"{self.worst[0]} {self.worst[2]:+.1f} at {self.worst[1]} shots"
        return None


def eligible(arms: Sequence[str], runs: Sequence[dict], design: Sequence[str]) -> list[str]:
    """The arms the rule may choose: picked by name, reading the sample only to score or rank, selecting within the bound
    (over all of its runs), and run on a design target."""
    found = []
    for arm in fixed(list(arms)):
        mine = [run for run in runs if run["arm"] == arm]
        if not any(run["target"] in design for run in mine):
            continue
        if strategy_of(arm).needs <= READS_ONLY and mean(init_seconds(run) for run in mine) <= MAX_SELECTION_S:
            found.append(arm)
    return found


def candidates(
    runs: Sequence[dict], method: str, shots_list: Sequence[int], arms: Sequence[str], design: Sequence[str], kind_of: Mapping[int, str]
) -> list[Candidate]:
    """Each arm on the design units (target, shots, seed) that every arm and random ran: all are read on the same data.

    An arm skipped on a unit (a documented skip) takes that unit out for all of them.
    """
    design_runs = [run for run in runs if run["method"] == method and run["target"] in design]
    ran = [{(run["target"], run["shots"], run["seed"]) for run in design_runs if run["arm"] == arm} for arm in [NO_TRANSFER, *arms]]
    common = set.intersection(*ran)
    compared = [run for run in design_runs if (run["target"], run["shots"], run["seed"]) in common]
    found = []
    for arm in arms if common else ():
        by_shots = [paired_delta(compared, method, shots, arm, NO_TRANSFER) for shots in shots_list]
        gain = sum(delta.mean * delta.units for delta in by_shots if delta.units) / len(common)
        per_target = {(target, shots): delta for shots in shots_list for target, delta in per_target_delta(compared, method, shots, arm, NO_TRANSFER).items()}
        (target, shots), worst = lowest(per_target)
        mine = [run for run in compared if run["arm"] == arm]
        found.append(Candidate(arm, gain, len(common), (target, shots, worst), junk_percent(mine, kind_of), mean(init_seconds(run) for run in mine)))
    return found


def choose(found: Sequence[Candidate]) -> Candidate | None:
    kept = [candidate for candidate in found if candidate.failed() is None]
    if not kept:
        return None
    best = max(candidate.gain for candidate in kept)
    tied = [candidate for candidate in kept if candidate.gain >= best - TIE_POINTS]
    return min(tied, key=lambda candidate: (candidate.selection_s, -candidate.gain))


def section(
    runs: Sequence[dict], method: str, shots_list: Sequence[int], arms: Sequence[str], design: Sequence[str], judged: Sequence[str],
    kind_of: Mapping[int, str],
) -> list[str]:  # fmt: skip
    """The rule's table on the design targets, its choice, and the choice judged on the other targets (markdown lines)."""
    runs = [run for run in runs if run["method"] == method]
    found = sorted(candidates(runs, method, shots_list, eligible(arms, runs, design), design, kind_of), key=lambda candidate: -candidate.gain)
    heading = [f"## The default at lab scale ({method}, full pool)", ""]
    if not found:
        return [*heading, "No candidate has run with random on a design unit (target, shots, seed) yet.", ""]
    chosen = choose(found)
    lines = [
        *heading,
        f"The rule (benchmarks/transferbench/default_rule.py): among the arms that read the sample only to score or rank sources and select in "
        f"≤ {MAX_SELECTION_S:g} s per target, on the design targets ({', '.join(design)}) over the (target, shots, seed) units every candidate and random ran: under "
        f"{GOAL_JUNK:g} % of the weight on junk and no design target below −{MAX_LOSS:g} point vs random; the best mean Δ vs random, a tie "
        f"(within {TIE_POINTS:g} point) going to the least selection time.",
        "",
        "| candidate | design units | mean Δ random | worst design target | junk % | selection s/target | verdict |",
        "| --- | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for candidate in found:
        worst = f"{candidate.worst[2]:+.1f} ({candidate.worst[0]}, {candidate.worst[1]}-shot)"
        verdict = "chosen" if candidate is chosen else (candidate.failed() or "kept")
        lines.append(
            f"| {candidate.arm} | {candidate.units} | {candidate.gain:+.1f} | {worst} | {candidate.junk:.1f} | {candidate.selection_s:.1f} | {verdict} |"
        )
    lines.append("")
    if chosen is None:
        return [*lines, "No candidate meets the rule on the design targets.", ""]
    judged_runs = [run for run in runs if run["target"] in judged]
    lines += [
        f"Judged targets ({', '.join(judged)}), {chosen.arm} against `{RANDOM_POOL}`, `{NO_TRANSFER}` and `{BY_CATEGORY}` (the standard run's default):",
        "",
        f"| shots | Δ {RANDOM_POOL} [95 % CI] | Δ {NO_TRANSFER} [95 % CI] | Δ {BY_CATEGORY} [95 % CI] | worst target Δ {NO_TRANSFER} | junk % |",
        "| ---: | --- | --- | --- | --- | ---: |",
    ]
    for shots in shots_list:
        deltas = [paired_delta(judged_runs, method, shots, chosen.arm, reference) for reference in (RANDOM_POOL, NO_TRANSFER, BY_CATEGORY)]
        if not deltas[1].units:
            continue
        target, worst = lowest(per_target_delta(judged_runs, method, shots, chosen.arm, NO_TRANSFER))
        junk = junk_percent([run for run in judged_runs if run["arm"] == chosen.arm and run["shots"] == shots], kind_of)
        lines.append(f"| {shots} | {' | '.join(delta.text() for delta in deltas)} | {worst:+.1f} ({target}) | {junk:.1f} |")
    return [*lines, ""]
