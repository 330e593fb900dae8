"""The benchmark's report: results.md (tables with intervals, per target, weight analysis), CSVs and heatmaps."""

from __future__ import annotations

import csv
import math
import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from benchmarks.transferbench.oracle import Source, arm_names, cell_sources, subset_text
from benchmarks.transferbench.settings import DESIGN_TARGETS, LAB, OPERATOR_MARK, Settings, parse_arm
from benchmarks.transferbench.sources import SourceInfo
from benchmarks.transferbench.stats import (
    accuracies,
    init_seconds,
    is_single,
    leave_one_target_out,
    lowest,
    mean_interval,
    oracle_delta,
    paired_delta,
    per_target_delta,
    share_of_oracle,
    single_gains,
    sooner,
    spearman,
    steps_to_reach,
)  # fmt: skip
from ensembling.operators import LINEAR
from ensembling.strategies import DEFAULT, NO_TRANSFER, RANDOM_POOL, UNIFORM, Composition, Family, Strategy, get_strategy, shuffled_of

GOAL_POINTS = 5.0
ORACLE_GOAL_PERCENT = 80.0
AUTO_WORST_POINTS = -1.0
AUTO_GAP_POINTS = 1.0
OPERATOR_GOAL_POINTS = 2.0  # issue 24: an operator replaces linear as the default only if it gains this much over it


def strategy_of(arm: str) -> Strategy:
    """The strategy of an arm (`loss+svd` is loss's, composed with svd; `el2n@20` el2n's, over 20 candidates)."""
    return get_strategy(parse_arm(arm).strategy)


def family_of(arm: str) -> str:
    return strategy_of(arm).family.value


def scored(arms: list[str]) -> list[str]:
    return [arm for arm in arms if strategy_of(arm).composition is Composition.SCORED and strategy_of(arm).family is not Family.CONTROL]


def mean(values) -> float:
    values = [value for value in values if value is not None and not math.isnan(value)]
    return statistics.fmean(values) if values else math.nan


def signed(value: float) -> str:
    """A correlation or difference with its sign; a dash where there is none to compute (no variation, too few points)."""
    return "–" if math.isnan(value) else f"{value:+.2f}"


def arms_in(runs: list[dict], settings: Settings) -> list[str]:
    present = {run["arm"] for run in runs}
    order = [NO_TRANSFER, *[name for name in settings.strategies if name != NO_TRANSFER]]
    return [arm for arm in order if arm in present]


def main_table(runs: list[dict], method: str, shots: int, arms: list[str]) -> list[str]:
    lines = [
        "| arm | family | test acc | Δ random [95 % CI] | Δ average | Δ random-pool | Δ own shuffled | worst target Δ | W/T/L targets | eff. sources | steps to random's dev | s/run |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | :---: | ---: | ---: | ---: |",
    ]
    mine = [run for run in runs if run["method"] == method and run["shots"] == shots]
    random_dev = {(run["target"], run["seed"]): run["dev_acc"] for run in mine if run["arm"] == NO_TRANSFER}
    for arm in arms:
        rows = [run for run in mine if run["arm"] == arm]
        if not rows:
            continue
        acc = mean(100 * run["test_acc"] for run in rows)
        cells = []
        for reference in (NO_TRANSFER, UNIFORM, RANDOM_POOL, shuffled_of(arm)):
            cells.append("–" if reference == arm or not any(r["arm"] == reference for r in mine) else paired_delta(runs, method, shots, arm, reference).text())
        targets = per_target_delta(runs, method, shots, arm, NO_TRANSFER) if arm != NO_TRANSFER else {}
        worst = "–"
        if targets:
            worst_target, worst_delta = lowest(targets)
            worst = f"{worst_delta:+.1f} ({worst_target})"
        tally = f"{sum(v > 0 for v in targets.values())}/{sum(v == 0 for v in targets.values())}/{sum(v < 0 for v in targets.values())}" if targets else "–"
        effective = mean(run["effective_sources"] for run in rows) if arm != NO_TRANSFER else math.nan
        reached = [steps_to_reach(run["history"], random_dev[(run["target"], run["seed"])]) for run in rows if (run["target"], run["seed"]) in random_dev]
        hits = [value for value in reached if value is not None]
        speed = f"{statistics.median(hits):.0f} ({len(hits)}/{len(reached)})" if hits else f"– (0/{len(reached)})"
        seconds = mean(init_seconds(run) + run["train_s"] + run["eval_s"] for run in rows)
        lines.append(
            f"| {arm} | {family_of(arm)} | {acc:.1f} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} | {worst} | {tally} | "
            f"{'–' if math.isnan(effective) else f'{effective:.1f}'} | {speed} | {seconds:.0f} |"
        )
    return lines


def target_table(runs: list[dict], method: str, shots: int, arms: list[str], targets: list[str]) -> list[str]:
    shown = [arm for arm in arms if arm != NO_TRANSFER]
    lines = ["| target | random acc | " + " | ".join(shown) + " |", "| --- | ---: | " + " | ".join("---:" for _ in shown) + " |"]
    for target in targets:
        base = [
            100 * run["test_acc"] for run in runs if run["method"] == method and run["shots"] == shots and run["arm"] == NO_TRANSFER and run["target"] == target
        ]
        if not base:
            continue
        parts = []
        for arm in shown:
            deltas = per_target_delta(runs, method, shots, arm, NO_TRANSFER)
            parts.append(f"{deltas[target]:+.1f}" if target in deltas else "–")
        lines.append(f"| {target} | {mean(base):.1f} | " + " | ".join(parts) + " |")
    return lines


def top_sources(runs: list[dict], method: str, arms: list[str], targets: list[str], categories: dict[str, str]) -> list[str]:
    """Per target and scored strategy: the source most often weighted highest (over shots and seeds), its mean weight."""
    chosen = scored(arms)
    lines = ["| target (category) | " + " | ".join(chosen) + " |", "| --- | " + " | ".join("---" for _ in chosen) + " |"]
    for target in targets:
        parts = []
        for arm in chosen:
            tops = []
            for run in runs:
                if run["method"] == method and run["arm"] == arm and run["target"] == target and run["weights"]:
                    source, _score, weight = max(run["weights"], key=lambda row: row[2])
                    tops.append((source, weight))
            if not tops:
                parts.append("–")
                continue
            source, count = Counter(name for name, _ in tops).most_common(1)[0]
            weight = mean(w for name, w in tops if name == source)
            same = "=" if categories.get(source) == categories.get(target) else "≠"
            parts.append(f"{source} {same} ({weight:.2f}, {count}/{len(tops)})")
        lines.append(f"| {target} ({categories.get(target, '?')}) | " + " | ".join(parts) + " |")
    return lines


def related_or_sharp(runs: list[dict], cells: list[dict], method: str, arms: list[str], categories: dict[str, str]) -> list[str]:
    """Does a strategy weight sources of the target's category, or merely confident ones?"""
    diagnostics = {(cell["target"], cell["shots"], cell["seed"]): {row["source"]: row for row in cell["sources"]} for cell in cells if cell["method"] == method}
    lines = [
        "| strategy | weight on same-category sources | uniform share | ρ(weight, same category) | ρ(weight, source confidence) | ρ(weight, source zero-shot acc) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    uniform = [arm for arm in arms if strategy_of(arm).composition is Composition.UNIFORM and arm != UNIFORM]
    for arm in scored(arms) + uniform:
        share, uniform, weights, same, confidence, zero_shot = [], [], [], [], [], []
        for run in runs:
            if run["method"] != method or run["arm"] != arm or not run["weights"]:
                continue
            category = categories.get(run["target"])
            diag = diagnostics.get((run["target"], run["shots"], run["seed"]), {})
            share.append(sum(w for source, _s, w in run["weights"] if categories.get(source) == category))
            uniform.append(sum(categories.get(source) == category for source in diag) / max(len(diag), 1))
            for source, _score, weight in run["weights"]:
                if source in diag:
                    weights.append(weight)
                    same.append(float(categories.get(source) == category))
                    confidence.append(diag[source]["confidence"])
                    zero_shot.append(diag[source]["zero_shot"])
        if not share:
            continue
        lines.append(
            f"| {arm} | {mean(share):.2f} | {mean(uniform):.2f} | {signed(spearman(weights, same))} | {signed(spearman(weights, confidence))} | {signed(spearman(weights, zero_shot))} |"
        )
    return lines


def weights_by_arm(run: dict, named: dict[str, Source]) -> dict[str, float]:
    """A run's weight on each source, keyed by the source's single arm (of the cell's sources `named` by arm)."""
    arm_of = {(source.task, source.module_id): arm for arm, source in named.items()}
    # Runs and cell lines stored before module ids were recorded have none: their tasks are unique, and both sides key on (task, None).
    ids = [module_id for module_id, _weight in run.get("module_weights", ())] or [None] * len(run["weights"])
    return {arm_of[(task, module_id)]: weight for (task, _score, weight), module_id in zip(run["weights"], ids) if (task, module_id) in arm_of}


def oracle_lines(runs: list[dict], cells: list[dict], method: str, shots: int, arms: list[str], subset: tuple[int, int] | None) -> list[str]:
    """Each arm's gain as a share of the oracle's (and over which sources the oracle is), and whether its weights (or dataset
    similarity) follow the single-source gains."""
    oracle = oracle_delta(runs, method, shots)
    if oracle.units == 0:
        return []
    gains = single_gains(runs, method, shots)
    named = {
        (cell["target"], cell["seed"]): dict(zip(arm_names(cell_sources(cell)), cell_sources(cell)))
        for cell in cells
        if cell["method"] == method and cell["shots"] == shots
    }
    similarity = {unit: {arm: source.similarity for arm, source in sources.items() if source.similarity is not None} for unit, sources in named.items()}
    by_similarity = mean(spearman([similarity[unit][s] for s in gains[unit] if s in similarity.get(unit, {})],
                                  [gains[unit][s] for s in gains[unit] if s in similarity.get(unit, {})]) for unit in gains)  # fmt: skip
    scope = subset_text(subset, [len(gains[unit]) for unit in gains], [len(named.get(unit, gains[unit])) for unit in gains])
    lines = [
        f"Oracle: the best single source per (target, seed), picked by test accuracy (so no arm can reach it by choice): "
        f"Δ random {oracle.text()} over {oracle.units} units.{' ' + scope if scope else ''} ρ(dataset-embedding similarity, single-source "
        f"gain), mean over units: {'–' if math.isnan(by_similarity) else f'{by_similarity:+.2f}'} (does `adapters search` rank the sources "
        "that help first?).",
        "",
        "| arm | Δ random | % of oracle [95 % CI] | ρ(weights, single-source gains) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for arm in arms:
        if arm == NO_TRANSFER:
            continue
        share = share_of_oracle(runs, method, shots, arm)
        if share.units == 0:
            continue
        rho = []
        for run in runs:
            unit = (run["target"], run["seed"])
            if run["method"] == method and run["shots"] == shots and run["arm"] == arm and unit in gains and run["weights"]:
                weights = weights_by_arm(run, named.get(unit, {}))
                shared = [source for source in weights if source in gains[unit]]
                rho.append(spearman([weights[source] for source in shared], [gains[unit][source] for source in shared]))
        rho_text = "–" if math.isnan(mean(rho)) else f"{mean(rho):+.2f}"
        share_text = "–" if math.isnan(share.mean) else f"{share.mean:.0f} % [{share.low:.0f}, {share.high:.0f}]"
        lines.append(f"| {arm} | {paired_delta(runs, method, shots, arm, NO_TRANSFER).text()} | {share_text} | {rho_text} |")
    return lines


def goal_lines(runs: list[dict], method: str, shots_list: list[int], arms: list[str]) -> list[str]:
    lines = []
    for arm in scored(arms):
        verdicts = []
        for shots in shots_list:
            vs_random = paired_delta(runs, method, shots, arm, NO_TRANSFER)
            if vs_random.units == 0:
                continue
            checks = [f"Δ random {vs_random.text()}{' ≥ 5' if vs_random.mean >= GOAL_POINTS else ' < 5'}"]
            passed = vs_random.mean >= GOAL_POINTS and vs_random.excludes_zero
            for reference in (UNIFORM, RANDOM_POOL, shuffled_of(arm)):
                delta = paired_delta(runs, method, shots, arm, reference)
                if delta.units == 0:
                    checks.append(f"{reference} not run")
                    passed = False
                    continue
                beats = delta.mean > 0 and delta.excludes_zero
                passed = passed and beats
                checks.append(f"{'beats' if beats else 'does not beat'} {reference}")
            verdicts.append(f"{shots}-shot: {'MET' if passed else 'not met'} ({'; '.join(checks)})")
        lines.append(f"- `{arm}`: " + " · ".join(verdicts))
    return lines


def operator_lines(runs: list[dict], method: str, shots: int, arms: list[str]) -> list[str]:
    """Each `<strategy>+<operator>` arm against its strategy composed linearly: paired Δ, worst target, init seconds; the goal's verdict."""
    lines = [
        f"| arm | Δ vs linear [95 % CI] | worst target Δ | init s (linear) | goal: ≥ {OPERATOR_GOAL_POINTS:g} points, interval excluding 0 |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for arm in arms:
        if parse_arm(arm).operator == LINEAR:
            continue
        linear = arm.rpartition(OPERATOR_MARK)[0]  # the same arm composed linearly (el2n@20+svd against el2n@20)
        delta = paired_delta(runs, method, shots, arm, linear)
        if delta.units == 0:
            continue
        targets = per_target_delta(runs, method, shots, arm, linear)
        worst = lowest(targets)[0]
        seconds = [
            mean(init_seconds(run) for run in runs if run["method"] == method and run["shots"] == shots and run["arm"] == name) for name in (arm, linear)
        ]
        met = delta.mean >= OPERATOR_GOAL_POINTS and delta.excludes_zero
        lines.append(f"| {arm} | {delta.text()} | {targets[worst]:+.1f} ({worst}) | {seconds[0]:.1f} ({seconds[1]:.1f}) | {'MET' if met else 'not met'} |")
    return lines if len(lines) > 2 else []


def fixed(arms: list[str]) -> list[str]:
    """The arms a user could pick by name to transfer: not the default init, a control, the oracle, or auto."""
    return [arm for arm in arms if arm != NO_TRANSFER and strategy_of(arm).family not in (Family.CONTROL, Family.ORACLE, Family.AUTO)]


def auto_lines(runs: list[dict], method: str, shots_list: list[int], arms: list[str]) -> list[str]:
    """auto's goal per shot count: worst target ≥ −1 point vs random, mean within 1 point of the best fixed strategy; what it chose."""
    lines = []
    for arm in [arm for arm in arms if strategy_of(arm).family is Family.AUTO]:
        for shots in shots_list:
            # Every figure below on the units that this arm, random and every fixed strategy ran, so that an
            # interrupted arm is never ranked on units of its own.
            runs_shared, shared = shared_units(runs, method, shots, [arm, NO_TRANSFER, *fixed(arms)])
            mine = paired_delta(runs_shared, method, shots, arm, NO_TRANSFER)
            if mine.units == 0:
                continue
            targets, worst, means, best = versus_fixed(runs_shared, method, shots, arm, arms)
            if best is None:
                continue
            gap = paired_delta(runs_shared, method, shots, arm, best)
            safe = targets[worst] >= AUTO_WORST_POINTS
            # On the units both ran: the paired difference, not two means over different units.
            close = gap.units > 0 and gap.mean >= -AUTO_GAP_POINTS
            chosen = Counter(run.get("chosen") or "?" for run in runs_shared if run["method"] == method and run["shots"] == shots and run["arm"] == arm)
            picks = ", ".join(f"{name} {count}" for name, count in chosen.most_common())
            lines.append(
                f"- `{arm}`, {shots}-shot: {'MET' if safe and close else 'not met'} — worst target Δ random {targets[worst]:+.1f} ({worst}; goal ≥ {AUTO_WORST_POINTS:+.0f}); "
                f"mean Δ random {mine.text()} vs the best fixed strategy `{best}` {means[best].text()} (goal: paired "
                f"Δ {best} ≥ −{AUTO_GAP_POINTS:.0f}, measured {gap.text()}); over {mine.units} units it chose: {picks}"
                f"{'' if shared == all_units(runs, method, shots) else f' (the {shared} units every compared arm ran, of {all_units(runs, method, shots)})'}."
            )
            lines += leave_one_out_lines(runs_shared, method, shots, arm, arms)
    return lines


def versus_fixed(runs: list[dict], method: str, shots: int, arm: str, arms: list[str]) -> tuple[dict[str, float], str, dict, str | None]:
    """`arm`'s Δ random per target, its worst target, every fixed strategy's Δ random, and the best of those (None if none ran)."""
    targets = per_target_delta(runs, method, shots, arm, NO_TRANSFER)
    worst = lowest(targets)[0]
    means = {other: paired_delta(runs, method, shots, other, NO_TRANSFER) for other in fixed(arms)}
    best = max((other for other in means if means[other].units), key=lambda other: means[other].mean, default=None)
    return targets, worst, means, best


def versus_leave_one_target_out(runs: list[dict], method: str, shots: int, arm: str, arms: list[str]):
    """The leave-one-target-out choice's gain per unit, its pick per target, and `arm` minus it, paired over the units."""
    gains, picks = leave_one_target_out(runs, method, shots, fixed(arms))
    mine, random_acc = accuracies(runs, method, shots, arm), accuracies(runs, method, shots, NO_TRANSFER)
    paired = mean_interval([mine[unit] - random_acc[unit] - gains[unit] for unit in sorted(gains) if unit in mine])
    return gains, picks, paired


def default_lines(runs: list[dict], method: str, shots_list: list[int], arms: list[str]) -> list[str]:
    """The default init, judged on the targets it was not designed on: its gain, worst target, the alternatives, its cost."""
    if DEFAULT not in arms:
        return []
    held_out = [run for run in runs if run["target"] not in DESIGN_TARGETS]
    lines = [
        f"Designed on {', '.join(DESIGN_TARGETS)}; judged here on the other targets only "
        f"({', '.join(sorted({run['target'] for run in held_out})) or 'none run yet'}).",
        "",
        "| shots | units | Δ random [95 % CI] | worst target Δ | Δ best fixed strategy [95 % CI] | Δ leave-one-target-out choice [95 % CI] | "
        "init s/run | random's training s/run | kept the default init |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for shots in shots_list:
        shared, units = shared_units(held_out, method, shots, [DEFAULT, NO_TRANSFER, *fixed(arms)])
        mine = paired_delta(shared, method, shots, DEFAULT, NO_TRANSFER)
        if mine.units == 0:
            continue
        targets, worst, _means, best = versus_fixed(shared, method, shots, DEFAULT, arms)
        gap = paired_delta(shared, method, shots, DEFAULT, best).text() + f" ({best})" if best else "–"
        _gains, _picks, loto = versus_leave_one_target_out(shared, method, shots, DEFAULT, arms)
        rows = [run for run in shared if run["arm"] == DEFAULT and run["method"] == method and run["shots"] == shots]
        randoms = [run for run in shared if run["arm"] == NO_TRANSFER and run["method"] == method and run["shots"] == shots]
        kept = sum(run.get("chosen") == NO_TRANSFER for run in rows)
        lines.append(
            f"| {shots} | {units} | {mine.text()} | {targets[worst]:+.1f} ({worst}) | {gap} | {loto.text()} | "
            f"{mean(init_seconds(run) for run in rows):.0f} | {mean(run['train_s'] for run in randoms):.0f} | {kept}/{len(rows)} |"
        )
    return lines


def shared_units(runs: list[dict], method: str, shots: int, arms: list[str]) -> tuple[list[dict], int]:
    """The runs of (target, seed) units that every arm of `arms` that ran at all ran, and how many units that is."""
    mine = [run for run in runs if run["method"] == method and run["shots"] == shots]
    present = [arm for arm in arms if any(run["arm"] == arm for run in mine)]
    units = None
    for arm in present:
        ran = {(run["target"], run["seed"]) for run in mine if run["arm"] == arm}
        units = ran if units is None else units & ran
    units = units or set()
    return [run for run in mine if (run["target"], run["seed"]) in units], len(units)


def all_units(runs: list[dict], method: str, shots: int) -> int:
    return len({(run["target"], run["seed"]) for run in runs if run["method"] == method and run["shots"] == shots})


def leave_one_out_lines(runs: list[dict], method: str, shots: int, arm: str, arms: list[str]) -> list[str]:
    """The obvious alternative to auto's cross-validation: per target, the fixed strategy that did best on the other targets."""
    gains, picks, paired = versus_leave_one_target_out(runs, method, shots, arm, arms)
    if not gains:
        return []
    by_target: dict[str, list[float]] = defaultdict(list)
    for (target, _seed), gain in gains.items():
        by_target[target].append(gain)
    worst = lowest({target: mean(values) for target, values in by_target.items()})[0]
    chosen = ", ".join(f"{name} {count}" for name, count in Counter(picks.values()).most_common())
    return [
        f"  - Against the fixed strategy picked leave-one-target-out (per target, the one with the best mean Δ random on the "
        f"other targets; it picked {chosen} of {len(picks)} targets): that choice gains Δ random {mean_interval(list(gains.values())).text()}, "
        f"worst target {mean(by_target[worst]):+.1f} ({worst}); `{arm}` − it, paired over {paired.units} units: {paired.text()}."
    ]


_FIGURE = re.compile(r"([\w:-]+) (\d+\.\d+)")


def cross_validated(chosen: str, reason: str) -> dict[str, float]:
    """auto's cross-validated accuracy per candidate init, read back from its one-line reason; empty when it validated none."""
    head = reason.split(";", 1)[0]
    if "cross-validated accuracy" not in head:
        return {}
    lead, _, others = head.partition("(")
    figures = [float(value) for value in re.findall(r"\d+\.\d+", lead)]
    found = {name: float(value) for name, value in _FIGURE.findall(others)}
    found[chosen] = figures[0]
    if chosen != NO_TRANSFER:
        found[NO_TRANSFER] = figures[1]
    return found


def auto_check_lines(runs: list[dict], method: str, shots: int, arms: list[str]) -> list[str]:
    """Did auto's cross-validation on the k-shot data rank its candidate inits as the test split does? Per unit, and over units."""
    mine = [run for run in runs if run["method"] == method and run["shots"] == shots]
    test = {(run["target"], run["seed"], run["arm"]): 100 * run["test_acc"] for run in mine}
    lines: list[str] = []
    for arm in [arm for arm in arms if strategy_of(arm).family is Family.AUTO]:
        rows, picked_best, regret, ceiling, rhos, sizes = [], 0, [], {}, [], set()
        for run in sorted((run for run in mine if run["arm"] == arm), key=lambda run: (run["target"], run["seed"])):
            unit = (run["target"], run["seed"])
            validated = cross_validated(run["chosen"] or "", run["rationale"] or "")
            if not validated or any((*unit, name) not in test for name in validated):
                continue
            base = test[(*unit, NO_TRANSFER)]
            gains = {name: test[(*unit, name)] - base for name in validated}
            best, own = max(gains.values()), 100 * run["test_acc"] - base
            picked_best += own >= best
            regret.append(best - own)
            ceiling[unit] = best
            rhos.append(spearman([validated[name] for name in gains], list(gains.values())))
            sizes.add(len(gains))
            winners = ", ".join(name for name, gain in gains.items() if gain == best)
            rows.append(
                f"| {run['target']} | {run['seed']} | {run['chosen']} ({validated[run['chosen']]:.3f}) | {validated[NO_TRANSFER]:.3f} | "
                f"{own:+.1f} | {best:+.1f} ({winners}) |"
            )
        if not rows:
            continue
        by_target: dict[str, list[float]] = defaultdict(list)
        for (target, _seed), value in ceiling.items():
            by_target[target].append(value)
        worst = lowest({target: mean(values) for target, values in by_target.items()})[0]
        lines += [
            f"`{arm}`, {shots}-shot, over {len(rows)} units: it chose the candidate best on the test split (ties included) in "
            f"{picked_best} of {len(rows)}; it lost {mean_interval(regret).text()} points to that candidate; ρ(cross-validated "
            f"accuracy, test Δ) over its {'/'.join(map(str, sorted(sizes)))} candidates, mean over units: {mean(rhos):+.2f}. A chooser that knew the "
            f"test split, among the same candidates (the default init included): Δ random {mean_interval(list(ceiling.values())).text()}, "
            f"worst target {mean(by_target[worst]):+.1f} ({worst}).",
            "",
            "| target | seed | chose (cross-validated acc) | default init (cross-validated acc) | its test Δ random | best candidate on test: Δ random |",
            "| --- | ---: | --- | ---: | ---: | --- |",
            *rows,
            "",
        ]
    return lines


def budget_lines(runs: list[dict], method: str, shots: int, arms: list[str]) -> list[str]:
    """Per arm: what ended its runs (patience or the cap), and how much sooner than random it reaches random's best k-shot dev."""
    lines = [
        "| arm | runs | ended by patience | ended by the cap | best at the last step | steps to random's best, ÷ random's [95 % CI] | "
        "seconds (init + training) to random's best, ÷ random's [95 % CI] | never reach it |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for arm in arms:
        rows = [run for run in runs if run["method"] == method and run["shots"] == shots and run["arm"] == arm]
        if not rows:
            continue
        recorded = [run for run in rows if "stopped_by" in run]
        patience = sum(run["stopped_by"] == "patience" for run in recorded)
        ended = f"{patience}/{len(recorded)}" if recorded else "–"
        capped = f"{len(recorded) - patience}/{len(recorded)}" if recorded else "–"
        last = sum(run["best_step"] == run["steps"] and run["steps"] > 0 for run in rows)
        if arm == NO_TRANSFER:
            ratio = seconds = "1 (itself)"
            never = "–"
        else:
            fast = sooner(runs, method, shots, arm)
            ratio = _ratio(fast.steps)
            seconds = _ratio(fast.seconds)
            never = f"{fast.never}/{fast.units}"
        lines.append(f"| {arm} | {len(rows)} | {ended} | {capped} | {last}/{len(rows)} | {ratio} | {seconds} | {never} |")
    return lines


def _ratio(delta) -> str:
    return "–" if delta.units == 0 else f"{delta.mean:.2f} [{delta.low:.2f}, {delta.high:.2f}] ({delta.units})"


def time_lines(runs: list[dict], arms: list[str]) -> list[str]:
    lines = ["| arm | runs | init (scoring, tuning, composing) s | training s | test s | tuning steps / run |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for arm in arms:
        rows = [run for run in runs if run["arm"] == arm]
        lines.append(time_row(arm, rows))
    singles = [run for run in runs if is_single(run["arm"])]
    if singles:
        lines.append(time_row("oracle (its single:<source> arms)", singles))
    return lines


def time_row(label: str, rows: list[dict]) -> str:
    return (
        f"| {label} | {len(rows)} | {sum(r['init_s'] for r in rows):.0f} | {sum(r['train_s'] for r in rows):.0f} | {sum(r['eval_s'] for r in rows):.0f} | "
        f"{mean(r['tuning_steps'] for r in rows):.0f} |"
    )


def source_lines(sources: list[SourceInfo]) -> list[str]:
    lines = ["| source task | category | method | dev acc | chance | steps (best) | train s | note |", "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for info in sources:
        note = "AT CHANCE" if info.at_chance else ""
        if info.reused:
            note = (note + " reused").strip()
        lines.append(
            f"| {info.task} | {info.category} | {info.method} | {100 * info.dev_acc:.1f} | {100 * info.chance:.1f} | {info.steps} ({info.best_step}) | {info.seconds:.0f} | {note} |"
        )
    return lines


def targets_text(targets: list[str], settings: Settings) -> str:
    """The report's targets; the lab preset's in two groups, so that no reader takes a design target's figure for a judged one."""
    if settings.preset != LAB["preset"]:
        return f"Targets ({len(targets)}): {', '.join(targets)}."
    design, judged = [name for name in targets if name in DESIGN_TARGETS], [name for name in targets if name not in DESIGN_TARGETS]
    return (
        f"Targets ({len(targets)}): design targets (the default and anything tuned on the lab pool was designed on these) "
        f"{', '.join(design) or 'none'}; judged targets {', '.join(judged) or 'none'}."
    )


def sources_text(count: int, settings: Settings) -> str:
    if settings.preset != LAB["preset"]:
        return f"the other tasks of {count}"
    return f"{count} modules of the lab pool's manifest (benchmarks/lab_pool.py), none of a target's task"


def render(
    runs: list[dict],
    cells: list[dict],
    skips: list[dict],
    sources: list[SourceInfo],
    settings: Settings,
    command: str,
    wall_s: float | None,
    targets: list[str],
    left_out: list[str] = (),
) -> str:
    """results.md over `runs`: every stored run of the protocol (its shot counts and seeds, whichever invocation ran them)."""
    categories = {info.task: info.category for info in sources}
    arms = arms_in(runs, settings)
    shots_list = sorted({run["shots"] for run in runs})
    seeds = sorted({run["seed"] for run in runs})
    run_hours = sum(run["init_s"] + run["train_s"] + run["eval_s"] for run in runs) / 3600
    this = "" if wall_s is None else f" This invocation: {wall_s / 60:.1f} min."
    smoke = settings.preset == "quick"
    parts = [
        "# Transfer benchmark" + (" — QUICK SMOKE TEST (too few targets and seeds for any conclusion)" if smoke else ""),
        "",
        f"Command: `{command}`  ",
        f"Preset: {settings.preset}. Runs reported: {len(runs)}, {run_hours:.1f} hours of init, training and testing in all (each run on one "
        f"process).{this} {targets_text(targets, settings)}  ",
        f"Sources: {sources_text(len(sources) // max(len(settings.methods), 1), settings)} ({', '.join(settings.methods)}). "
        f"Shots: {', '.join(map(str, shots_list))}. Seeds: {', '.join(map(str, seeds))}.",
        "",
        "Protocol: per (target, shots, seed) one k-shot sample (k train + k dev examples per label, drawn from the target's train split) "
        "is all that every arm reads; the test split is read only for the final score. Every arm trains with the same budget: "
        f"lr {settings.target_lr:g}, batch {settings.batch_size}, at most {settings.target_max_steps} steps, dev evaluation every "
        f"{settings.target_eval_every} steps, early stop after {settings.target_patience} evaluations without a better k-shot dev score "
        f"(accuracy, ties broken by dev loss){f', counted only after {settings.target_min_steps} steps' if settings.target_min_steps else ''}, "
        f"best checkpoint kept (budget: {settings.budget}, protocol {settings.protocol_digest()}). Scoring strategies score on up to "
        f"{settings.score_examples} k-shot dev examples; kl and weight-cos take the trained `random` arm as θ_t. Sources: full train "
        f"split, lr {settings.source_lr:g}, dev evaluation every {settings.source_eval_every} steps on up to {settings.source_dev_cap} dev examples, "
        f"patience {settings.source_patience}, cap {settings.source_max_steps} steps, best checkpoint. Test: "
        f"{'up to ' + str(settings.test_cap) + ' examples (a content-hash sample, the same for every arm)' if settings.test_cap else 'the whole split'}. "
        f"random-pool: {settings.pool_size} sources.",
        "",
        "Δ columns: mean paired difference in test-accuracy points over (target, seed) units, with a 95 % percentile-bootstrap "
        "interval (10,000 resamples of the units). Worst target: the target whose mean Δ vs random (over seeds) is lowest. "
        "Steps to random's dev: median over runs of the first evaluated step whose k-shot dev accuracy reaches the `random` arm's "
        "best (0: the init already does), with how many runs reach it. An arm's init seconds count the scoring it reused from "
        "arms before it in its cell (the arms of a cell share one evaluator), so each is its cost as if it ran alone.",
        "",
    ]
    for method in settings.methods:
        for shots in shots_list:
            if not any(run["shots"] == shots and run["method"] == method for run in runs):
                continue
            parts += [
                f"## {method}, {shots}-shot",
                "",
                *main_table(runs, method, shots, arms),
                "",
                "Per target: mean test accuracy of random, Δ of each arm vs random (points, mean over seeds).",
                "",
            ]
            parts += [*target_table(runs, method, shots, arms, targets), ""]
            parts += [
                f"### Better, or only sooner? ({method}, {shots}-shot)",
                "",
                "What ended each arm's runs, and the steps (and seconds, the init's included) each arm takes until its k-shot dev "
                "accuracy first reaches the best that `random` reaches, as a ratio to `random`'s own (mean over units, 95 % bootstrap "
                "interval, units with a ratio in brackets; 0: the init already does; units where random's best is its init have no ratio).",
                "",
                *budget_lines(runs, method, shots, arms),
                "",
            ]
            operators = operator_lines(runs, method, shots, arms)
            if operators:
                parts += [f"### Composition operators ({method}, {shots}-shot): each against its strategy composed linearly", "", *operators, ""]
            oracle = oracle_lines(runs, cells, method, shots, arms, settings.oracle_subset)
            if oracle:
                parts += [f"### The oracle ({method}, {shots}-shot; goal: the best strategy ≥ {ORACLE_GOAL_PERCENT:.0f} % of it)", "", *oracle, ""]
        parts += [
            "## The goal: ≥ 5 points over random, and above average and both controls, each interval excluding 0",
            "",
            *goal_lines(runs, method, shots_list, arms),
            "",
        ]
        default = default_lines(runs, method, shots_list, arms)
        if default:
            parts += [f"## The default init (`{DEFAULT}`) on held-out targets ({method})", "", *default, ""]
        auto = auto_lines(runs, method, shots_list, arms)
        if auto:
            parts += [
                f"## auto: transfer that should not hurt (goal: worst target ≥ {AUTO_WORST_POINTS:+.0f} point vs random, mean within "
                f"{AUTO_GAP_POINTS:.0f} point of the best fixed strategy)",
                "",
                *auto,
                "",
            ]
            for shots in shots_list:
                check = auto_check_lines(runs, method, shots, arms)
                if check:
                    parts += [f"### auto's cross-validation against the test split ({method}, {shots}-shot)", "", *check]
        parts += [
            f"## What the strategies pick ({method})",
            "",
            "Top-weighted source per target (the most frequent top source over shots and seeds; = same category as the target, ≠ another; its mean weight, how often it was top):",
            "",
            *top_sources(runs, method, arms, targets, categories),
            "",
            "Related or merely sharp? Over every (run, source): the weight a strategy puts on sources of the target's category (against the "
            "share of such sources), and the rank correlation of the weights with same-category, with the source's confidence on the "
            "target's scoring examples (mean top probability) and with its zero-shot accuracy there.",
            "",
            *related_or_sharp(runs, cells, method, arms, categories),
            "",
        ]
    parts += ["## Wall time per arm (all runs)", "", *time_lines(runs, arms), "", "## Sources", "", *source_lines(sources), ""]
    if left_out:
        parts += ["## Stored but not reported", "", *(f"- {line}" for line in left_out), ""]
    if skips:
        parts += ["## Skipped", "", *(f"- {row['arm']} for {row['target']} ({row['shots']}-shot, seed {row['seed']}): {row['reason']}" for row in skips), ""]
    return "\n".join(parts)


def write_csvs(out: Path, runs: list[dict], sources: list[SourceInfo]) -> None:
    fields = [
        "target",
        "category",
        "method",
        "shots",
        "seed",
        "arm",
        "test_acc",
        "dev_acc",
        "steps",
        "best_step",
        "init_s",
        "train_s",
        "eval_s",
        "tuning_steps",
        "effective_sources",
    ]
    with (out / "runs.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(runs)
    with (out / "weights.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["target", "method", "shots", "seed", "arm", "source", "score", "weight"])
        for run in runs:
            for source, score, weight in run["weights"]:
                writer.writerow(
                    [run["target"], run["method"], run["shots"], run["seed"], run["arm"], source, "" if score is None else f"{score:.6g}", f"{weight:.6g}"]
                )
    with (out / "sources.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "category", "method", "module_id", "dev_acc", "chance", "steps", "best_step", "train_s", "reused"])
        for info in sources:
            writer.writerow(
                [
                    info.task,
                    info.category,
                    info.method,
                    info.module_id,
                    f"{info.dev_acc:.4f}",
                    f"{info.chance:.4f}",
                    info.steps,
                    info.best_step,
                    f"{info.seconds:.1f}",
                    int(info.reused),
                ]
            )


def heatmaps(out: Path, runs: list[dict], settings: Settings, targets: list[str], tasks: list[str]) -> list[Path]:
    """weights-<arm>.png: target × source mean weight over shots and seeds, one panel per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    for old in out.glob("weights-*.png"):
        old.unlink()
    written = []
    for arm in [arm for arm in arms_in(runs, settings) if arm != NO_TRANSFER]:
        figure, axes = plt.subplots(
            1, len(settings.methods), figsize=(max(7, 0.45 * len(tasks) + 4) * len(settings.methods), max(3.5, 0.4 * len(targets) + 3)), squeeze=False
        )
        for axis, method in zip(axes[0], settings.methods):
            sums = defaultdict(float)
            counts = defaultdict(int)
            for run in runs:
                if run["arm"] == arm and run["method"] == method:
                    counts[run["target"]] += 1
                    for source, _score, weight in run["weights"]:
                        sums[(run["target"], source)] += weight
            matrix = np.full((len(targets), len(tasks)), np.nan)
            for i, target in enumerate(targets):
                for j, source in enumerate(tasks):
                    if source != target and counts[target]:
                        matrix[i, j] = sums[(target, source)] / counts[target]
            image = axis.imshow(
                np.ma.masked_invalid(matrix),
                vmin=min(0.0, float(np.nanmin(matrix))) if np.isfinite(matrix).any() else 0,  # fitted weights (lorahub's) may be negative
                vmax=max(1e-9, float(np.nanmax(matrix))) if np.isfinite(matrix).any() else 1,
                cmap="viridis",
                aspect="auto",
            )
            axis.set_xticks(range(len(tasks)), tasks, rotation=60, ha="right", fontsize=7)
            axis.set_yticks(range(len(targets)), targets, fontsize=7)
            axis.set_xlabel("source")
            axis.set_ylabel("target")
            axis.set_title(f"{arm} ({method}): mean weight", fontsize=9)
            figure.colorbar(image, ax=axis, fraction=0.03)
        figure.tight_layout()
        path = out / f"weights-{arm.replace(':', '-')}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written
