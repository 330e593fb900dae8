"""The lab preset's pool-size curve: per pool size, each arm against `random` and `random-pool`, as a table and a plot.

Per (method, shots, pool size, arm) over (target, seed) units: Δ vs random-pool and vs random with their paired
95 % intervals, the same Δ vs random-pool on the judged targets alone (nothing was designed on them), the worst
target, the share of the oracle (where the oracle's single-source arms ran), the selection seconds per target
(the arm's init as if it ran alone: search, scoring, composition) and the share of its weight on junk modules.
The goal (issue: lab scale) is read at the full pool: the best arm that reads no test label beats random-pool by
at least GOAL_POINTS with an interval excluding 0, reaches GOAL_ORACLE % of the oracle, and puts under GOAL_JUNK %
of its weight on junk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import mean

from benchmarks.transferbench.oracle import subset_text
from benchmarks.transferbench.pool import ALL, junk_share
from benchmarks.transferbench.settings import parse_arm
from benchmarks.transferbench.stats import Delta, init_seconds, is_single, lowest, paired_delta, per_target_delta, share_of_oracle
from ensembling.strategies import NO_TRANSFER, RANDOM_POOL

GOAL_POINTS = 5.0
GOAL_ORACLE = 80.0
GOAL_JUNK = 5.0


@dataclass(frozen=True)
class Pool:
    """One pool size's stored runs: `size` as asked (ALL: every eligible module) and `modules`, how many it holds."""

    size: int
    modules: int
    runs: Sequence[dict]

    @property
    def label(self) -> str:
        return f"all ({self.modules})" if self.size == ALL else str(self.modules)


@dataclass(frozen=True)
class Point:
    arm: str
    pool: Pool
    vs_pool: Delta
    vs_random: Delta
    judged_vs_pool: Delta
    worst: tuple[str, float] | None
    oracle: Delta
    selection_s: float
    junk_percent: float


def junk_percent(runs: Sequence[dict], kind_of: Mapping[int, str]) -> float:
    """Mean over runs of the share of the absolute weight on junk modules, in %; NaN where no run records its modules."""
    shares = [junk_share({int(module): weight for module, weight in run["module_weights"]}, kind_of) for run in runs if run.get("module_weights")]
    return 100 * mean(shares) if shares else math.nan


def points(pool: Pool, method: str, shots: int, arms: Sequence[str], judged: Sequence[str], kind_of: Mapping[int, str]) -> list[Point]:
    """One point per arm (besides random) that ran on this pool at these shots."""
    runs = list(pool.runs)
    judged_runs = [run for run in runs if run["target"] in judged]
    found = []
    for arm in arms:
        mine = [run for run in runs if run["method"] == method and run["shots"] == shots and run["arm"] == arm]
        if arm == NO_TRANSFER or not mine:
            continue
        targets = per_target_delta(runs, method, shots, arm, NO_TRANSFER)
        worst = lowest(targets) if targets else None
        found.append(
            Point(
                arm, pool,
                paired_delta(runs, method, shots, arm, RANDOM_POOL),
                paired_delta(runs, method, shots, arm, NO_TRANSFER),
                paired_delta(judged_runs, method, shots, arm, RANDOM_POOL),
                worst,
                share_of_oracle(runs, method, shots, arm),
                mean(init_seconds(run) for run in mine),
                junk_percent(mine, kind_of),
            )
        )  # fmt: skip
    return found


def panels(
    pools: Sequence[Pool], methods: Sequence[str], shots_list: Sequence[int], arms: Sequence[str], judged: Sequence[str], kind_of: Mapping[int, str]
) -> dict[tuple[str, int], list[Point]]:
    """(method, shots) -> the points of every pool size there, in arm order then pool size; panels without a run left out."""
    found = {}
    for method in methods:
        for shots in shots_list:
            rows = [point for pool in pools for point in points(pool, method, shots, arms, judged, kind_of)]
            if rows:
                found[(method, shots)] = sorted(rows, key=lambda point: (list(arms).index(point.arm), point.pool.modules))
    return found


DELTA_PART = f"Δ ≥ +{GOAL_POINTS:g} with the interval above 0"
ORACLE_PART = f"≥ {GOAL_ORACLE:g} % of the oracle"
JUNK_PART = f"< {GOAL_JUNK:g} % junk"


def goal_parts(point: Point) -> dict[str, bool | None]:
    """Each part of the goal for one arm at the full pool: met, not met, or None where it was not measured.

    The oracle is not measured where its arms did not run on this panel's units, or where it gains nothing over random
    (a share of it means nothing); the junk weight is not recorded where no run names its modules.
    """
    oracle = point.oracle.units > 0 and not math.isnan(point.oracle.mean)
    junk = not math.isnan(point.junk_percent)
    return {
        DELTA_PART: point.vs_pool.mean >= GOAL_POINTS and point.vs_pool.low > 0,
        ORACLE_PART: point.oracle.mean >= GOAL_ORACLE if oracle else None,
        JUNK_PART: point.junk_percent < GOAL_JUNK if junk else None,
    }


def verdict(full: Sequence[Point]) -> str:
    """The goal read at the full pool: each part for the arm with the best Δ vs random-pool, then which arms meet the most.

    The best Δ alone can hide an arm that also meets the Δ part with far less junk, so among the arms that meet the
    Δ part, those that miss no part are named (with any part not measured), else those that meet the most parts.
    """
    ranked = sorted((point for point in full if point.arm != RANDOM_POOL and point.vs_pool.units), key=lambda point: (-point.vs_pool.mean, point.arm))
    if not ranked:
        return "Goal at the full pool: no arm besides random-pool has run there yet."
    best = ranked[0]
    word = {True: "met", False: "not met", None: "not measured"}
    parts = goal_parts(best)
    oracle = "–" if parts[ORACLE_PART] is None else f"{best.oracle.text()} %"
    junk = "–" if parts[JUNK_PART] is None else f"{best.junk_percent:.1f} %"
    text = (
        f"Goal at the full pool, best arm {best.arm}: Δ vs random-pool {best.vs_pool.text()} over {best.vs_pool.units} units, "
        f"share of the oracle {oracle}, weight on junk {junk}. " + "; ".join(f"{part}: {word[ok]}" for part, ok in parts.items()) + "."
    )
    contenders = {point.arm: found for point in ranked if (found := goal_parts(point))[DELTA_PART]}
    if not contenders:
        return text + " No arm meets the Δ part."
    complete = {arm: [part for part, ok in found.items() if ok is None] for arm, found in contenders.items() if False not in found.values()}
    if complete:
        return (
            text
            + " Arms meeting every part: "
            + ", ".join(arm + (f" ({', '.join(gaps)}: not measured)" if gaps else "") for arm, gaps in complete.items())
            + "."
        )
    met_by_arm = {arm: [part for part, ok in found.items() if ok] for arm, found in contenders.items()}
    most = max(len(met) for met in met_by_arm.values())
    leaders = ", ".join(f"{arm} ({', '.join(met)})" for arm, met in met_by_arm.items() if len(met) == most)
    return text + f" No arm meets every part; of those meeting the Δ part, the most met ({most} of {len(parts)}): {leaders}."


def oracle_scope(pools: Sequence[Pool], subset: tuple[int, int] | None) -> str:
    """Where the oracle ran and over which modules: a lower bound where over a subset of the pool."""
    counts: dict[tuple, int] = {}
    for pool in pools:
        for run in pool.runs:
            if is_single(run["arm"]):
                unit = (pool.label, run["method"], run["shots"], run["target"], run["seed"])
                counts[unit] = counts.get(unit, 0) + 1
    if not counts:
        return "The oracle has not run on any pool yet."
    where = sorted({(label, method, shots) for label, method, shots, _target, _seed in counts}, key=str)
    modules = {pool.label: pool.modules for pool in pools}
    scope = subset_text(subset, list(counts.values()), [modules[unit[0]] for unit in counts])
    return "The oracle ran at " + ", ".join(f"pool {label} ({method}, {shots}-shot)" for label, method, shots in where) + "." + (f" {scope}" if scope else "")


def render(
    pools: Sequence[Pool], by_panel: Mapping[tuple[str, int], Sequence[Point]], judged: Sequence[str], command: str, subset: tuple[int, int] | None
) -> str:
    lines = [
        "# Transfer at lab scale: selection against pool size",
        "",
        f"Command: `{command}`  ",
        "Pools: " + ", ".join(f"{pool.label} modules ({len({(run['target'], run['seed']) for run in pool.runs})} target-seed units)" for pool in pools) + ". "
        "Each pool is a fixed, seeded subset of the lab pool without the targets' tasks; the smaller pools are inside the larger.",
        "",
        "Δ columns: mean paired difference in test-accuracy points over (target, seed) units with a 95 % percentile-bootstrap interval. "
        f"Judged: the targets nothing was designed on ({', '.join(judged) or 'none'}). Worst target: lowest mean Δ vs random over seeds. "
        "% of oracle: the arm's mean gain over random as a share of the best single source's, where the oracle ran. Selection s/target: "
        "the arm's init seconds as if it ran alone (search, scoring, composition). Junk: share of the absolute weight on early, "
        "undertrained and shuffled-label modules and on runs whose best checkpoint was their first (the default init). " + oracle_scope(pools, subset),
        "",
    ]
    for (method, shots), rows in by_panel.items():
        lines += [
            f"## {method}, {shots}-shot",
            "",
            "| arm | pool | Δ random-pool [95 % CI] | Δ random [95 % CI] | judged: Δ random-pool | worst target Δ random | % of oracle | selection s/target | junk weight % |",
            "| --- | --- | --- | --- | --- | --- | --- | ---: | ---: |",
        ]
        for point in rows:
            worst = f"{point.worst[1]:+.1f} ({point.worst[0]})" if point.worst else "–"
            oracle = point.oracle.text() if point.oracle.units else "–"
            junk = "–" if math.isnan(point.junk_percent) else f"{point.junk_percent:.1f}"
            lines.append(
                f"| {point.arm} | {point.pool.label} | {point.vs_pool.text()} | {point.vs_random.text()} | {point.judged_vs_pool.text()} | "
                f"{worst} | {oracle} | {point.selection_s:.1f} | {junk} |"
            )
        lines += ["", verdict([point for point in rows if point.pool.size == ALL]), ""]
    return "\n".join(lines) + "\n"


def plot(pools: Sequence[Pool], by_panel: Mapping[tuple[str, int], Sequence[Point]], path: Path) -> Path:
    """Δ vs random-pool against pool size, one line per arm with its 95 % band, one panel per (method, shots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    arms = list(dict.fromkeys(point.arm for rows in by_panel.values() for point in rows if point.arm != RANDOM_POOL and point.vs_pool.units))
    # A colour per strategy, the same in every panel, and its two-stage arm (el2n@20) dashed in the strategy's colour:
    # the dark shades of tab20 first, since the default cycle repeats after 10 and the lab preset runs more arms.
    strategies = list(dict.fromkeys(parse_arm(arm).strategy for arm in arms))
    shades = plt.get_cmap("tab20").colors
    colour = dict(zip(strategies, shades[0::2] + shades[1::2]))
    style = {arm: (colour[parse_arm(arm).strategy], "--" if parse_arm(arm).candidates else "-") for arm in arms}
    figure, axes = plt.subplots(1, max(len(by_panel), 1), figsize=(6 * max(len(by_panel), 1) + 2, 4.5), squeeze=False)
    for axis, ((method, shots), rows) in zip(axes[0], by_panel.items()):
        for arm in arms:
            found = [(point.pool.modules, point.vs_pool) for point in rows if point.arm == arm and point.vs_pool.units]
            if not found:
                continue
            xs = [size for size, _ in found]
            axis.plot(xs, [delta.mean for _, delta in found], marker="o", color=style[arm][0], linestyle=style[arm][1])
            axis.fill_between(xs, [delta.low for _, delta in found], [delta.high for _, delta in found], color=style[arm][0], alpha=0.06)
        axis.axhline(0, color="black", linewidth=0.8)
        axis.set_xscale("log")
        axis.minorticks_off()  # the log axis's own labels (3×10¹ …) would sit over the pool sizes
        axis.set_xticks([pool.modules for pool in pools], [pool.label for pool in pools])
        axis.set_xlabel("modules in the pool")
        axis.set_ylabel("Δ test accuracy vs random-pool (points)")
        axis.set_title(f"{method}, {shots}-shot", fontsize=10)
    if arms:  # a pool with runs of random-pool alone has no line yet
        handles = [Line2D([], [], color=style[arm][0], linestyle=style[arm][1], marker="o", label=arm) for arm in arms]
        figure.legend(handles=handles, loc="center right", fontsize=8)
    figure.tight_layout(rect=(0, 0, 0.86, 1) if arms else None)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
