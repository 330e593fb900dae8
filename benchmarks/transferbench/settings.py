"""What a transfer benchmark run is: its suite, its arms and every budget, with the presets."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import NamedTuple

from ensembling.errors import EnsemblingError
from ensembling.operators import LINEAR, parse_operator
from ensembling.strategies import DEFAULT, NO_TRANSFER, RANDOM_POOL, STRATEGIES, Family, Needs, get_strategy, of_family, shuffled_of
from hub.devices import AUTO_DEVICE

OPERATOR_MARK = "+"  # an arm `<strategy>+<operator>` (loss+svd) composes the strategy's weights with that operator (--combine)
CANDIDATES_MARK = "@"  # an arm `<strategy>@<N>` (el2n@20) weighs the N sources nearest the target (--candidates)

BASELINES = tuple(of_family(Family.BASELINE))
PAPER = tuple(of_family(Family.PAPER))
PEERS = tuple(of_family(Family.PEER))
AUTO = tuple(of_family(Family.AUTO))
# The quick smoke test: the paper's strategies that only read the sources' predictions (no θ_t, no gradients).
SCORING_ONLY = tuple(name for name in PAPER if STRATEGIES[name].needs == {Needs.SCORING} and not STRATEGIES[name].reads_gradients)

# The standard run's targets: two per learnable category, one per yes/no category (which MiniLM
# does not learn at these budgets, so they show whether an init can rescue a task that random cannot).
STANDARD_TARGETS = (
    "wn-supersense-noun-c", "wn-supersense-verb-c", "wn-definition-adj", "wn-term-verb",
    "wn-cloze-adj", "wn-antonym-verb", "wn-isa-plant", "wn-synonym-adv",
)  # fmt: skip
# The default init was chosen on these four standard targets; the report judges it on the others.
DESIGN_TARGETS = STANDARD_TARGETS[:4]
# The lab preset's targets besides DESIGN_TARGETS: two from each of the other suites, which nothing was designed on.
LAB_JUDGED_TARGETS = ("senti-polarity", "senti-most-negative", "pho-stress", "pho-rhyme", "man-section", "man-name")
STANDARD_SOURCES = (
    "wn-supersense-noun-a", "wn-supersense-noun-b", "wn-supersense-verb-a", "wn-definition-adv", "wn-definition-noun",
    "wn-term-noun", "wn-cloze-noun", "wn-cloze-verb", "wn-antonym-adj", "wn-antonym-noun", "wn-isa-animal", "wn-synonym-noun",
)  # fmt: skip


class Arm(NamedTuple):
    strategy: str
    operator: str
    candidates: int | None  # two-stage: the strategy weighs only the N sources whose datasets are nearest the target's


def parse_arm(arm: str) -> Arm:
    """An arm's strategy, composition operator and candidates; refused in one line.

    `loss` is (loss, linear, all sources), `loss+svd` (loss, svd, all), `el2n@20` (el2n, linear, the 20 nearest),
    as `adapters ensemble --candidates 20` narrows. The one place an arm name is read: the protocol composes with it
    and the run's check refuses a bad arm before any work.
    """
    selection, mark, operator = arm.rpartition(OPERATOR_MARK)
    if not mark:
        selection, operator = arm, LINEAR
    if CANDIDATES_MARK in operator:
        raise EnsemblingError(f"arm {arm}: the candidates come before the operator, e.g. el2n@20+svd")
    strategy, at, count = selection.partition(CANDIDATES_MARK)
    candidates = None
    if at:
        if not (count.isascii() and count.isdigit()) or int(count) < 1:
            raise EnsemblingError(f"arm {arm}: the count after {CANDIDATES_MARK} must be a whole number of candidates of at least 1, e.g. el2n@20")
        candidates = int(count)
    get_strategy(strategy)
    parse_operator(operator)
    if strategy == NO_TRANSFER and (operator != LINEAR or candidates is not None):
        raise EnsemblingError(f"arm {arm}: {NO_TRANSFER} composes nothing, so it takes no operator or candidates; name it {NO_TRANSFER}")
    return Arm(strategy, operator, candidates)


@dataclass(frozen=True)
class Settings:
    suite: Path
    out: Path
    registry: Path
    tasks: tuple[str, ...] = ()  # every task is a source; empty: all of the suite
    targets: tuple[str, ...] = ()  # empty: every task
    methods: tuple[str, ...] = ("lora",)
    shots: tuple[int, ...] = (4, 16)
    seeds: tuple[int, ...] = (0, 1, 2)
    strategies: tuple[str, ...] = ()  # empty: every registered strategy, the controls included
    base_model: str = "minilm"
    # Sources: trained on the task's full train split to their best dev checkpoint.
    source_lr: float = 2e-3
    source_max_steps: int = 300
    source_eval_every: int = 25
    source_patience: int = 3
    source_dev_cap: int = 64
    # Targets (every arm), θ_t and tuned sources: the k-shot train split, early stopping on the k-shot dev.
    target_lr: float = 2e-3
    target_max_steps: int = 60
    target_eval_every: int = 4
    target_patience: int = 5
    target_min_steps: int = 0  # no run may end by patience before this many steps
    batch_size: int = 8
    test_cap: int | None = None
    score_examples: int = 50
    tune_steps: int = 60
    pool_size: int = 3
    device: str = AUTO_DEVICE
    oracle: bool = False  # also train each target from every source alone (its single arms), for the oracle
    # The oracle's sources per cell: the `nearest` by dataset embedding plus `drawn` at random (oracle.py); None: every source.
    oracle_subset: tuple[int, int] | None = None
    workers: int = 1
    preset: str = "custom"
    budget: str = "custom"  # the name of the target budget (BUDGETS); its values are what the digest records
    report_only: bool = False

    @property
    def source_tag(self) -> str:
        return f"transfer-source:lr={self.source_lr:g},cap={self.source_max_steps},every={self.source_eval_every},patience={self.source_patience},bs={self.batch_size}"

    def protocol_digest(self) -> str:
        """What makes two runs of one (target, shots, seed, arm) comparable: every budget, not the bookkeeping."""
        skip = {
            "suite",
            "out",
            "registry",
            "tasks",
            "targets",
            "methods",
            "shots",
            "seeds",
            "strategies",
            "device",
            "oracle",
            "oracle_subset",
            "workers",
            "preset",
            "budget",
            "report_only",
        }
        values = {field.name: getattr(self, field.name) for field in fields(self) if field.name not in skip}
        # A field added after runs were stored enters the digest only when set, so those runs keep theirs.
        if values["target_min_steps"] == 0:
            del values["target_min_steps"]
        return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def to_json(self) -> dict:
        return {key: (str(value) if isinstance(value, Path) else value) for key, value in asdict(self).items()}


# Target budgets (every arm, θ_t and tuned sources alike). `standard` is short: the default init is often
# still improving when it ends, so a gain under it may be a gain in speed. `converged` lets the default
# init finish: a cap 5.5× the standard one, evaluations every 10 steps, patience of 5 evaluations that
# starts counting only after 60 steps (benchmarks/results/transfer-converged/results.md: the share of
# runs each arm ended by patience rather than by the cap).
BUDGETS = {
    "standard": dict(target_max_steps=36, target_eval_every=6, target_patience=2, target_min_steps=0),
    "converged": dict(target_max_steps=200, target_eval_every=10, target_patience=5, target_min_steps=60),
}

QUICK = dict(
    preset="quick",
    tasks=STANDARD_TARGETS[:4] + STANDARD_SOURCES[:4],
    targets=STANDARD_TARGETS[:2],
    shots=(4,),
    seeds=(0,),
    strategies=BASELINES + SCORING_ONLY + (RANDOM_POOL,) + tuple(shuffled_of(name) for name in SCORING_ONLY),
    source_max_steps=100,
    source_patience=2,
    target_max_steps=24,
    test_cap=100,
    workers=2,
)

# Sized for 2 CPU cores: about 2.5 hours from an empty registry (README: the measured cost per arm).
# euclidean and performance tune every source on every sample (19 trainings per arm) and weight-cos
# is not one of the paper's five; the shuffled controls are those of the strategies that only read
# predictions (kl's and grand's would add about 20 minutes). All of them run with --strategies, and
# in the full run on a GPU.
STANDARD = dict(
    preset="standard",
    tasks=STANDARD_TARGETS + STANDARD_SOURCES,
    targets=STANDARD_TARGETS,
    shots=(4, 16),
    seeds=(0, 1),
    # auto last: it reuses the inits its candidates' arms built on the same sample (the shared memo).
    strategies=BASELINES + PAPER + PEERS + (RANDOM_POOL,) + tuple(shuffled_of(name) for name in SCORING_ONLY) + AUTO,
    source_max_steps=150,
    source_patience=2,
    budget="standard",
    **BUDGETS["standard"],
    test_cap=60,
    workers=2,
)

# The pool-size axis (--lab): the sources are the lab pool's modules (benchmarks/lab_pool.py trained them with
# STANDARD's source budget), the targets DESIGN_TARGETS, on which anything tuned on the pool is designed, and
# LAB_JUDGED_TARGETS, on which it is judged; the arms that read the pool, the default last. The target budget is the
# standard one: the converged one costs 4-5x as much (standard run's seconds per arm: the whole curve about 60 core-hours
# against about 19 on 2 cores). The goal is read against random-pool, itself a composed init, which the standard budget
# flatters as it flatters the others; Δ vs random is partly a gain in speed under it (docs/benchmarks.md, "Budgets").
LAB_CANDIDATES = 20
TWO_STAGE = tuple(f"{name}{CANDIDATES_MARK}{LAB_CANDIDATES}" for name in SCORING_ONLY)
LAB = dict(
    preset="lab",
    targets=DESIGN_TARGETS + LAB_JUDGED_TARGETS,
    shots=(4, 16),
    seeds=(0, 1),
    # Two stages for the scoring strategies: the cost of scoring every module grows with the pool (selection_cost.py).
    strategies=tuple(dict.fromkeys(BASELINES + SCORING_ONLY + PEERS + TWO_STAGE + (RANDOM_POOL, DEFAULT))),  # the default may be one of the others
    source_max_steps=STANDARD["source_max_steps"],
    source_patience=STANDARD["source_patience"],
    budget="standard",
    **BUDGETS["standard"],
    test_cap=60,
    workers=2,
    # The oracle runs at the full pool only, at the smallest shots (run_curve); one single arm per module there is about
    # 200 trainings per cell, so it is over a subset, a lower bound.
    oracle=True,
    oracle_subset=(20, 10),
)
