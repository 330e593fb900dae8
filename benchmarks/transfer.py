"""Task-transfer benchmark: the protocol of DESIGN.md ("Benchmark protocol") on any suite directory.

    python benchmarks/transfer.py --suite suites/wordnet --quick      # 2 CPU cores, < 30 min
    python benchmarks/transfer.py --suite suites/wordnet              # the full run (meant for a GPU)

Protocol
- Sources: one module per task and PET method, trained on the task's full train
  split for a fixed budget (``--source-steps`` steps, batch 8, lr ``--source-lr``,
  seed 0, no early stopping), pushed into the benchmark registry (``--registry``,
  default ``out/transfer/registry``) with the tag ``transfer-source:<budget>``.
  A rerun looks each source up by task name + method + that tag + the dataset's
  fingerprint and reuses it; a changed budget or changed data trains anew.
- Leave-one-out: for target T the sources are the modules of every *other*
  benchmark task (exactly those: modules of other budgets or tasks that happen to
  be in the registry are not candidates).
- Inits: every strategy and baseline of ``ensembling`` (scored, weighted and
  composed by ``ensembling.ensemble.run`` with the hub's live evaluator, as
  ``hub.transfer.ensemble`` does, nothing registered), plus two controls built
  from the same sources with ``ensembling.compose``:
  ``shuffled:<s>`` (strategy s's weights randomly permuted across its sources)
  and ``random-pool`` (a uniform average of ``--pool-k`` randomly drawn sources).
- Scoring data (identical for every strategy): the target's few-shot data. The
  data-based strategies score on one batch of ``--score-examples`` labelled dev
  examples (``hub.transfer.scoring_examples``: the paper's "few-shot dev data",
  the same batch whatever the shot count); the strategies that tune (kl's
  reference, weight-cos, euclidean, performance) tune on the k-shot train split,
  so their inits are rebuilt per shot count.
- Target training: ``Dataset.few_shot(shots, seed)`` for the train split; the
  same TrainConfig for every init (lr ``--target-lr``, batch 8, seed, a number of
  steps fixed per shot count: ``--target-epochs`` epochs of the k-shot split,
  clamped to [``--target-min-steps``, ``--target-max-steps``]); no dev-based
  early stopping (``hub.training.train`` without a dev split keeps the epoch with
  the lowest training loss). Test accuracy on the test split (capped at
  ``--test-cap`` examples, a content-hash sample, when set); dev accuracy on
  ``--dev-cap`` dev examples (reported, used only to pick the strategy whose
  weights ``--shuffled best`` permutes).

Outputs in ``--out``: results.md (the tables, also printed), runs.csv (every run),
weights.csv (every source weight), sources.csv, weights-<strategy>.png heatmaps
(target x source, mean over shots and seeds).
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]

PAPER_STRATEGIES = ("loss", "kl", "el2n", "grand", "cos")
WEIGHT_STRATEGIES = ("weight-cos", "euclidean", "performance")
BASELINES = ("random", "average", "group-average")
RANDOM_POOL = "random-pool"
SHUFFLED = "shuffled"
# Strategies that read the target's train split (so their init depends on the shot count).
READS_TRAIN = {"kl", "weight-cos", "euclidean", "performance"}
SCORED = set(PAPER_STRATEGIES) | set(WEIGHT_STRATEGIES)


@dataclass(frozen=True)
class Settings:
    suite: Path
    out: Path
    registry: Path
    tasks: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    num_targets: int | None = None
    methods: tuple[str, ...] = ("lora",)
    shots: tuple[int, ...] = (4, 16, 64)
    seeds: tuple[int, ...] = (0, 1, 2)
    strategies: tuple[str, ...] = BASELINES + PAPER_STRATEGIES + WEIGHT_STRATEGIES
    shuffled: str = "all"  # "all" (every scored strategy), "best" (best mean dev accuracy), "none", or names
    pool_k: int = 3
    base_model: str = "minilm"
    source_steps: int = 400
    source_lr: float = 5e-4
    batch_size: int = 8
    target_lr: float = 5e-4
    target_epochs: int = 20
    target_min_steps: int = 20
    target_max_steps: int = 200
    test_cap: int | None = None
    dev_cap: int | None = None
    score_examples: int = 50
    reference_steps: int = 100
    tune_steps: int = 200
    top_k: int | None = None
    device: str = "auto"
    tasks_per_category: int | None = None
    quick: bool = False

    @property
    def source_tag(self) -> str:
        return f"transfer-source:steps={self.source_steps},lr={self.source_lr:g},bs={self.batch_size},seed=0"


QUICK = dict(
    tasks_per_category=2,
    num_targets=3,
    methods=("lora",),
    shots=(4, 16, 64),
    seeds=(0,),
    strategies=BASELINES + PAPER_STRATEGIES,
    shuffled="best",
    source_steps=60,
    source_lr=5e-4,
    target_epochs=5,
    target_min_steps=10,
    target_max_steps=20,
    test_cap=100,
    dev_cap=32,
    score_examples=32,
    reference_steps=10,
    tune_steps=10,
)


# ---------------------------------------------------------------- the suite


def load_suite(root: Path) -> dict:
    """Every task folder (holding task.json) directly under `root`, by task name."""
    from hub.datasets import CARD_FILE, load_dataset

    if not root.is_dir():
        raise SystemExit(f"error: suite {root} is not a directory; point --suite at a folder of task folders")
    suite = {}
    for folder in sorted(path for path in root.iterdir() if (path / CARD_FILE).is_file()):
        data = load_dataset(folder)
        if data.card.name in suite:
            raise SystemExit(f"error: two task folders in {root} are named {data.card.name!r}; rename one")
        suite[data.card.name] = data
    if len(suite) < 2:
        raise SystemExit(f"error: suite {root} holds {len(suite)} task folder(s); leave-one-out needs at least 2")
    return suite


def candidates_per_example(data) -> int:
    examples = data.splits.get("train", ())
    return max((len(example.choices) for example in examples), default=0)


def supports_shots(data, shots: int) -> bool:
    counts: dict[int, int] = defaultdict(int)
    for example in data.splits.get("train", ()):
        counts[example.label] += 1
    return bool(counts) and min(counts.values()) >= shots


def choose_tasks(suite: dict, settings: Settings) -> list[str]:
    """The benchmark's tasks: --tasks, or per category the N cheapest (fewest candidates, then name)."""
    if settings.tasks:
        unknown = [name for name in settings.tasks if name not in suite]
        if unknown:
            raise SystemExit(f"error: --tasks names {unknown[0]!r}, which is not in {settings.suite}; use one of {', '.join(suite)}")
        return list(settings.tasks)
    if settings.tasks_per_category is None:
        return sorted(suite)
    by_category: dict[str, list[str]] = defaultdict(list)
    for name, data in suite.items():
        by_category[data.card.category].append(name)
    chosen = []
    for category in sorted(by_category):
        ranked = sorted(by_category[category], key=lambda name: (candidates_per_example(suite[name]), name))
        chosen.extend(ranked[: settings.tasks_per_category])
    return sorted(chosen)


def choose_targets(suite: dict, tasks: list[str], settings: Settings) -> list[str]:
    """--targets, or targets spread over categories: every other category (sorted), its cheapest task
    that has enough train examples per label for the largest shot count."""
    if settings.targets:
        unknown = [name for name in settings.targets if name not in tasks]
        if unknown:
            raise SystemExit(f"error: target {unknown[0]!r} is not one of the benchmark's tasks ({', '.join(tasks)}); add it with --tasks")
        return list(settings.targets)
    if settings.num_targets is None:
        return list(tasks)
    categories = sorted({suite[name].card.category for name in tasks})
    order = categories[::2] + categories[1::2]
    targets = []
    for category in order:
        fitting = sorted(
            (name for name in tasks if suite[name].card.category == category and supports_shots(suite[name], max(settings.shots))),
            key=lambda name: (candidates_per_example(suite[name]), name),
        )
        if fitting:
            targets.append(fitting[0])
        if len(targets) == settings.num_targets:
            break
    return targets


def target_steps(train_size: int, settings: Settings) -> int:
    per_epoch = math.ceil(train_size / settings.batch_size)
    return max(settings.target_min_steps, min(settings.target_max_steps, settings.target_epochs * per_epoch))


# ---------------------------------------------------------------- sources


@dataclass
class SourceInfo:
    task: str
    category: str
    method: str
    record: object
    dev_acc: float
    seconds: float
    reused: bool


def ensure_sources(hub, suite: dict, tasks: list[str], method: str, settings: Settings, log: Callable[[str], None]) -> dict[str, SourceInfo]:
    """One trained module per task, looked up by task + method + budget tag + dataset fingerprint, else trained and pushed."""
    from hub.backbones import resolve_base_model
    from hub.datasets import deterministic_sample
    from hub.training import TrainConfig, evaluate, train

    backbone = hub.backbone(resolve_base_model(settings.base_model))
    sources = {}
    for index, name in enumerate(tasks, start=1):
        data = suite[name]
        found = [
            record
            for record in hub.list(task=name, method=method, base_model=settings.base_model)
            if record.kind == "trained"
            and settings.source_tag in record.tags
            and record.dataset_fingerprint == data.fingerprint
            and record.base_arch_hash == backbone.arch_hash
        ]
        if found:
            record = min(found, key=lambda record: record.id)
            sources[name] = SourceInfo(name, data.card.category, method, record, record.metrics.get("dev_acc", math.nan), record.metrics.get("train_s", 0.0), True)
            log(f"source {index}/{len(tasks)} {name} ({method}): reused module {record.id}")
            continue
        started = time.perf_counter()
        module = hub.new_module(settings.base_model, method)
        train_split = data.split("train")
        per_epoch = math.ceil(len(train_split) / settings.batch_size)
        config = TrainConfig(
            epochs=math.ceil(settings.source_steps / per_epoch),
            max_steps=settings.source_steps,
            lr=settings.source_lr,
            batch_size=settings.batch_size,
            seed=0,
            device=settings.device,
            patience=10**9,
            progress=False,
        )
        train(module.model, module.method, module.formulation, train_split, (), config)
        dev = data.splits.get("dev", ())
        dev_acc = evaluate(module.model, module.formulation, deterministic_sample(dev, settings.dev_cap or len(dev))) if dev else math.nan
        seconds = time.perf_counter() - started
        tensors = {key: value.cpu() for key, value in module.tensors().items()}
        record = hub.register(
            module.method, module.config, tensors, data, module.backbone, metrics={"dev_acc": dev_acc, "train_s": seconds}, tags=(settings.source_tag, "transfer-benchmark")
        )
        sources[name] = SourceInfo(name, data.card.category, method, record, dev_acc, seconds, False)
        log(f"source {index}/{len(tasks)} {name} ({method}): trained {settings.source_steps} steps in {seconds:.0f} s, dev acc {dev_acc:.3f} -> module {record.id}")
    return sources


# ---------------------------------------------------------------- inits


@dataclass
class Init:
    strategy: str
    tensors: dict
    sources: list[str]  # task names, in weight order
    weights: list[float]
    scores: list[float | None]
    seconds: float
    cached: bool = False

    @property
    def effective_sources(self) -> float:
        """1 / Σ w² (the number of sources a uniform weighting with this concentration would use)."""
        total = sum(weight * weight for weight in self.weights)
        return 1.0 / total if total > 0 else 0.0


class InitBuilder:
    """Builds inits for one method: strategies via ensembling.run on an explicit source list, controls via compose."""

    def __init__(self, hub, settings: Settings, method: str, sources: dict[str, SourceInfo]) -> None:
        from ensembling.candidates import Candidate
        from hub.backbones import resolve_base_model
        from hub.formulations import formulation_for
        from hub.methods import get_method
        from hub.transfer import load_candidates

        self.hub = hub
        self.settings = settings
        self.method = get_method(method)
        self.backbone = hub.backbone(resolve_base_model(settings.base_model))
        records = [info.record for info in sources.values()]
        self.config = dict(records[0].config)
        light = [
            Candidate(r.id, r.task, r.category, r.blob_digest, {}, f"{r.base_model}@{r.base_arch_hash[:12]}", {"fingerprint": r.dataset_fingerprint})
            for r in records
        ]
        loaded, _skipped = load_candidates(hub, light, skip_corrupt=False)
        self.candidates = {candidate.task: candidate for candidate in loaded}
        self.cache: dict[tuple, Init] = {}
        # One live model for every evaluation and training run of this method: each use loads
        # its tensors (the whole module, head included) with set_tensors, so nothing carries over.
        self.formulation = formulation_for(self.backbone.ref)
        self.model = self.method.attach(copy.deepcopy(self.backbone.model), self.config)
        self.defaults: dict[int, dict] = {}

    def default_tensors(self, seed: int) -> dict:
        """The method's default init under `seed`, exactly as hub.transfer.build_evaluator makes it."""
        from hub.training import seed_everything

        if seed not in self.defaults:
            seed_everything(seed)
            fresh = self.method.attach(copy.deepcopy(self.backbone.model), self.config)
            self.defaults[seed] = {key: value.detach().cpu().clone() for key, value in self.method.get_tensors(fresh).items()}
            del fresh
        return self.defaults[seed]

    def sources_for(self, target: str) -> list:
        return [candidate for task, candidate in sorted(self.candidates.items()) if task != target]

    def strategy(self, name: str, full, fewshot, shots: int, seed: int) -> Init:
        """The init of a registered strategy (cached across shot counts unless it reads the train split)."""
        from ensembling.candidates import Target
        from ensembling.ensemble import Options, resolve, run
        from hub.evaluation import ModelEvaluator
        from hub.training import resolve_device
        from hub.transfer import scoring_examples

        key = (full.card.name, name, seed, shots if name in READS_TRAIN else None)
        if key in self.cache:
            return replace(self.cache[key], seconds=0.0, cached=True)
        started = time.perf_counter()
        options = Options(None, self.settings.top_k, None, seed, self.settings.reference_steps, self.settings.tune_steps)
        chosen, _temperature, _znorm = resolve(name, options)
        scoring = scoring_examples(fewshot, self.settings.score_examples) if chosen.transfer and not chosen.uniform else []
        evaluator = None
        if chosen.needs_model:
            # As hub.transfer.build_evaluator, on the shared live model holding the seeded default init.
            self.method.set_tensors(self.model, self.default_tensors(seed))
            evaluator = ModelEvaluator(
                self.model, self.method, self.formulation, scoring,
                train_examples=fewshot.splits.get("train", ()), dev_examples=fewshot.splits.get("dev", ()), device=resolve_device(self.settings.device),
            )
        target = Target(full.card.name, full.card.category, full.fingerprint)
        result = run(chosen, self.sources_for(full.card.name), target, evaluator, options)
        init = Init(
            name,
            {key: value.detach().cpu() for key, value in result.tensors.items()},
            [source.candidate.task for source in result.sources],
            [source.weight for source in result.sources],
            [source.score for source in result.sources],
            time.perf_counter() - started,
        )
        del evaluator
        self.cache[key] = init
        return init

    def shuffled(self, of: Init, target: str, seed: int, shots: int) -> Init:
        """`of`'s weights randomly permuted across its sources (same sources, same multiset of weights)."""
        from ensembling.compose import compose

        started = time.perf_counter()
        rng = random.Random(f"shuffled:{of.strategy}:{target}:{seed}:{shots if of.strategy in READS_TRAIN else ''}")
        weights = list(of.weights)
        rng.shuffle(weights)
        chosen = [self.candidates[task] for task in of.sources]
        tensors = compose(chosen, weights)
        return Init(f"{SHUFFLED}:{of.strategy}", tensors, list(of.sources), weights, [None] * len(weights), time.perf_counter() - started)

    def random_pool(self, target: str, seed: int) -> Init:
        """A uniform average of k sources drawn at random (no look at the target's data)."""
        from ensembling.compose import compose

        key = (target, RANDOM_POOL, seed, None)
        if key in self.cache:
            return replace(self.cache[key], seconds=0.0, cached=True)
        started = time.perf_counter()
        pool = self.sources_for(target)
        rng = random.Random(f"{RANDOM_POOL}:{target}:{seed}")
        drawn = set(rng.sample(range(len(pool)), min(self.settings.pool_k, len(pool))))
        weights = [1.0 / len(drawn) if index in drawn else 0.0 for index in range(len(pool))]
        tensors = compose(pool, weights)
        init = Init(RANDOM_POOL, tensors, [candidate.task for candidate in pool], weights, [None] * len(pool), time.perf_counter() - started)
        self.cache[key] = init
        return init

    def model_with(self, init: Init):
        """The shared live model holding `init` (train() seeds everything it draws from)."""
        from hub.training import resolve_device

        self.model.to(resolve_device(self.settings.device))
        self.method.set_tensors(self.model, {key: value.to(next(self.model.parameters()).device) for key, value in init.tensors.items()})
        return self.model, self.formulation


# ---------------------------------------------------------------- runs


@dataclass
class Run:
    target: str
    category: str
    method: str
    shots: int
    seed: int
    strategy: str
    test_acc: float
    dev_acc: float
    steps: int
    train_examples: int
    init_s: float
    train_s: float
    eval_s: float
    effective_sources: float

    @property
    def seconds(self) -> float:
        return self.init_s + self.train_s + self.eval_s


CSV_FIELDS = ["target", "category", "method", "shots", "seed", "strategy", "test_acc", "dev_acc", "steps", "train_examples", "init_s", "train_s", "eval_s", "seconds", "effective_sources"]


def train_target(builder: InitBuilder, init: Init, full, fewshot, shots: int, seed: int, settings: Settings) -> Run:
    from hub.datasets import deterministic_sample
    from hub.training import TrainConfig, evaluate, train

    started = time.perf_counter()
    model, formulation = builder.model_with(init)
    train_split = fewshot.split("train")
    steps = target_steps(len(train_split), settings)
    per_epoch = math.ceil(len(train_split) / settings.batch_size)
    config = TrainConfig(
        epochs=math.ceil(steps / per_epoch),
        max_steps=steps,
        lr=settings.target_lr,
        batch_size=settings.batch_size,
        seed=seed,
        device=settings.device,
        patience=10**9,
        progress=False,
    )
    result = train(model, builder.method, formulation, train_split, (), config)
    trained = time.perf_counter()
    test = full.split("test")
    test = deterministic_sample(test, settings.test_cap) if settings.test_cap else list(test)
    test_acc = evaluate(model, formulation, test)
    dev = full.splits.get("dev", ())
    dev_acc = math.nan
    if dev and settings.dev_cap != 0:
        dev_acc = evaluate(model, formulation, deterministic_sample(dev, settings.dev_cap) if settings.dev_cap else list(dev))
    done = time.perf_counter()
    return Run(
        full.card.name, full.card.category, builder.method.name, shots, seed, init.strategy, test_acc, dev_acc, result.steps, len(train_split),
        init.seconds, trained - started, done - trained, init.effective_sources,
    )


# ---------------------------------------------------------------- the benchmark


@dataclass
class Outcome:
    runs: list[Run] = field(default_factory=list)
    weights: list[dict] = field(default_factory=list)
    sources: list[SourceInfo] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    shuffled_of: dict[str, list[str]] = field(default_factory=dict)  # method -> strategies whose weights were shuffled
    wall_s: float = 0.0


def scored_strategies(settings: Settings) -> list[str]:
    return [name for name in settings.strategies if name in SCORED]


def run_benchmark(settings: Settings, log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)) -> Outcome:
    from ensembling.errors import EnsemblingError
    from hub.api import Hub
    from hub.errors import DatasetError

    started = time.perf_counter()
    for name in settings.strategies:
        check_strategy_name(name)
    if "random" not in settings.strategies:
        raise SystemExit("error: --strategies must include random (gains are measured against it)")
    suite = load_suite(settings.suite)
    tasks = choose_tasks(suite, settings)
    targets = choose_targets(suite, tasks, settings)
    if not targets:
        raise SystemExit(f"error: no target has {max(settings.shots)} train examples per label; lower --shots or name --targets")
    outcome = Outcome(targets=targets, tasks=tasks)
    log(f"tasks ({len(tasks)}): {', '.join(tasks)}")
    log(f"targets ({len(targets)}): {', '.join(targets)}")
    settings.out.mkdir(parents=True, exist_ok=True)
    with Hub(settings.registry) as hub:
        for method in settings.methods:
            sources = ensure_sources(hub, suite, tasks, method, settings, log)
            outcome.sources.extend(sources.values())
            builder = InitBuilder(hub, settings, method, sources)
            plain = [name for name in settings.strategies if not name.startswith(SHUFFLED + ":")]
            explicit_shuffled = [name.split(":", 1)[1] for name in settings.strategies if name.startswith(SHUFFLED + ":")]
            fewshots = {}
            for target in targets:
                for seed in settings.seeds:
                    for shots in settings.shots:
                        try:
                            fewshots[(target, seed, shots)] = suite[target].few_shot(shots, seed)
                        except DatasetError as error:
                            outcome.skipped.append(f"{target} at {shots} shots (seed {seed}): {error}")
            total = len(fewshots) * (len(plain) + len(explicit_shuffled) + (len(scored_strategies(settings)) if settings.shuffled == "all" else 0) + (1 if settings.shuffled == "best" else 0))
            done = [0]

            def one(init: Init, target: str, shots: int, seed: int) -> None:
                run = train_target(builder, init, suite[target], fewshots[(target, seed, shots)], shots, seed, settings)
                outcome.runs.append(run)
                for task, weight, score in zip(init.sources, init.weights, init.scores):
                    outcome.weights.append(dict(target=target, method=method, shots=shots, seed=seed, strategy=init.strategy, source=task, score=score, weight=weight))
                done[0] += 1
                elapsed = time.perf_counter() - started
                log(
                    f"[{done[0]}/{total}] {method} {target} {shots}-shot seed {seed} {init.strategy:>16}: test {run.test_acc:.3f} dev {run.dev_acc:.3f} "
                    f"({run.init_s:.0f}+{run.train_s:.0f}+{run.eval_s:.0f} s, {run.steps} steps; {elapsed / 60:.1f} min so far)"
                )

            inits: dict[tuple, Init] = {}
            for (target, seed, shots), fewshot in fewshots.items():
                for name in plain:
                    try:
                        if name == RANDOM_POOL:
                            init = builder.random_pool(target, seed)
                        else:
                            init = builder.strategy(name, suite[target], fewshot, shots, seed)
                    except EnsemblingError as error:
                        outcome.skipped.append(f"{name} for {target} ({method}, {shots} shots, seed {seed}): {error}")
                        continue
                    inits[(target, seed, shots, name)] = init
                    one(init, target, shots, seed)
            if settings.shuffled == "all":
                shuffle = [name for name in scored_strategies(settings)]
            elif settings.shuffled == "best":
                shuffle = best_by_dev(outcome.runs, method, scored_strategies(settings))
                if shuffle:
                    log(f"shuffled control for {shuffle[0]} (best mean dev accuracy among {', '.join(scored_strategies(settings))})")
            else:
                shuffle = []
            shuffle = list(dict.fromkeys(shuffle + explicit_shuffled))
            outcome.shuffled_of[method] = shuffle
            for name in shuffle:
                for (target, seed, shots), fewshot in fewshots.items():
                    base = inits.get((target, seed, shots, name))
                    if base is None:
                        continue
                    one(builder.shuffled(base, target, seed, shots), target, shots, seed)
    outcome.wall_s = time.perf_counter() - started
    return outcome


def check_strategy_name(name: str) -> None:
    from ensembling.strategies import known

    if name == RANDOM_POOL:
        return
    if name.startswith(SHUFFLED + ":"):
        base = name.split(":", 1)[1]
        if base not in SCORED:
            raise SystemExit(f"error: {name}: only scored strategies ({', '.join(sorted(SCORED))}) have weights to shuffle")
        return
    if name not in known():
        raise SystemExit(f"error: unknown strategy {name!r}; use one of {', '.join(known())}, {RANDOM_POOL} or {SHUFFLED}:<strategy>")


def best_by_dev(runs: Sequence[Run], method: str, candidates: Sequence[str]) -> list[str]:
    """The scored strategy with the best mean dev accuracy (never test) — whose weights the `best` control shuffles."""
    means = {}
    for name in candidates:
        values = [run.dev_acc for run in runs if run.method == method and run.strategy == name and not math.isnan(run.dev_acc)]
        if values:
            means[name] = statistics.fmean(values)
    if not means:
        return []
    return [max(means, key=lambda name: (means[name], -list(candidates).index(name)))]


# ---------------------------------------------------------------- reports


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def per_target(runs: Sequence[Run], method: str, shots: int, strategy: str) -> dict[str, float]:
    """Mean test accuracy over seeds, per target."""
    values: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        if run.method == method and run.shots == shots and run.strategy == strategy:
            values[run.target].append(run.test_acc)
    return {target: mean(accs) for target, accs in values.items()}


@dataclass(frozen=True)
class Cell:
    acc: float  # mean test accuracy (points) over the targets both have
    gain: float  # points over random, on the same targets
    wins: int
    losses: int
    targets: int


def cell(runs: Sequence[Run], method: str, shots: int, strategy: str, reference: str = "random") -> Cell | None:
    mine = per_target(runs, method, shots, strategy)
    base = per_target(runs, method, shots, reference)
    common = sorted(set(mine) & set(base))
    if not common:
        return None
    acc = 100 * mean([mine[t] for t in common])
    gain = 100 * mean([mine[t] - base[t] for t in common])
    wins = sum(mine[t] > base[t] + 1e-12 for t in common)
    losses = sum(mine[t] < base[t] - 1e-12 for t in common)
    return Cell(acc, gain, wins, losses, len(common))


def ordered_strategies(runs: Sequence[Run]) -> list[str]:
    seen = list(dict.fromkeys(run.strategy for run in runs))
    rank = {name: index for index, name in enumerate(BASELINES + PAPER_STRATEGIES + WEIGHT_STRATEGIES + (RANDOM_POOL,))}
    return sorted(seen, key=lambda name: (name.startswith(SHUFFLED), rank.get(name, len(rank)), name))


def results_table(outcome: Outcome, settings: Settings) -> str:
    runs = outcome.runs
    shots = [s for s in settings.shots if any(run.shots == s for run in runs)]
    header = "| strategy | method | " + " | ".join(f"{s}-shot acc | Δ random | W/L" for s in shots) + " |"
    rule = "| --- | --- | " + " | ".join("---: | ---: | :---:" for _ in shots) + " |"
    lines = [header, rule]
    for method in settings.methods:
        for strategy in ordered_strategies([run for run in runs if run.method == method]):
            parts = []
            for s in shots:
                c = cell(runs, method, s, strategy)
                if c is None:
                    parts.append("– | – | –")
                elif strategy == "random":
                    parts.append(f"{c.acc:.1f} | 0.0 | –")
                else:
                    parts.append(f"{c.acc:.1f} | {c.gain:+.1f} | {c.wins}/{c.losses}")
            lines.append(f"| {strategy} | {method} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


def verdicts(outcome: Outcome, settings: Settings) -> list[str]:
    """Per scored strategy: where it beats random, average, and both controls (transfer, not regularization)."""
    runs = outcome.runs
    lines = []
    shots = [s for s in settings.shots if any(run.shots == s for run in runs)]
    for method in settings.methods:
        present = set(run.strategy for run in runs if run.method == method)
        shuffled_controls = [name for name in present if name.startswith(SHUFFLED + ":")]
        for strategy in [name for name in ordered_strategies(runs) if name in SCORED and name in present]:
            own = f"{SHUFFLED}:{strategy}"
            control = own if own in present else (sorted(shuffled_controls)[0] if shuffled_controls else None)
            verdict = []
            transfers = []
            for s in shots:
                mine = cell(runs, method, s, strategy)
                if mine is None:
                    continue
                beats = {}
                for other in ("average", RANDOM_POOL, control):
                    if other is None or other not in present:
                        continue
                    theirs = cell(runs, method, s, other)
                    beats[other] = theirs is not None and mine.acc > theirs.acc + 1e-9
                both = control is not None and RANDOM_POOL in present and beats.get(control, False) and beats.get(RANDOM_POOL, False)
                if both:
                    transfers.append(str(s))
                marks = ", ".join(f"{'>' if won else '≤'} {other}" for other, won in beats.items())
                verdict.append(f"{s}-shot {mine.gain:+.1f} vs random ({marks})")
            note = "" if control == own or control is None else f" (its own shuffled control was not run; compared with {control})"
            lines.append(
                f"- `{strategy}` ({method}): " + "; ".join(verdict)
                + f". Beats both controls at: {', '.join(transfers) + ' shots' if transfers else 'no shot count'}{note}."
            )
    return lines


def claim_lines(outcome: Outcome, settings: Settings) -> list[str]:
    """The paper's claim (5–8 % over random) and the project's goal (best strategy ≥ 5 points over random, > average)."""
    runs = outcome.runs
    lines = []
    for method in settings.methods:
        present = set(run.strategy for run in runs if run.method == method)
        for s in settings.shots:
            cells = {name: cell(runs, method, s, name) for name in present if name in SCORED}
            cells = {name: c for name, c in cells.items() if c is not None}
            if not cells:
                continue
            best = max(cells, key=lambda name: cells[name].acc)
            average = cell(runs, method, s, "average")
            over_avg = "n/a" if average is None else f"{cells[best].acc - average.acc:+.1f} points vs average"
            goal = cells[best].gain >= 5 and average is not None and cells[best].acc > average.acc
            lines.append(f"- {method}, {s}-shot: best strategy `{best}` {cells[best].gain:+.1f} points vs random, {over_avg} — goal {'met' if goal else 'not met'}")
    return lines


def time_table(outcome: Outcome) -> str:
    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0])
    for run in outcome.runs:
        row = totals[(run.strategy, run.method)]
        row[0] += run.init_s
        row[1] += run.train_s + run.eval_s
        row[3] += 1
    lines = ["| strategy | method | runs | init (scoring + compose) s | training + evaluation s | total s |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for strategy in ordered_strategies(outcome.runs):
        for (name, method), (init_s, train_s, _unused, count) in totals.items():
            if name == strategy:
                lines.append(f"| {strategy} | {method} | {count} | {init_s:.0f} | {train_s:.0f} | {init_s + train_s:.0f} |")
    return "\n".join(lines)


def source_table(outcome: Outcome) -> str:
    lines = ["| source task | category | method | dev acc | train s | reused |", "| --- | --- | --- | ---: | ---: | :---: |"]
    for info in outcome.sources:
        lines.append(f"| {info.task} | {info.category} | {info.method} | {100 * info.dev_acc:.1f} | {info.seconds:.0f} | {'yes' if info.reused else 'no'} |")
    return "\n".join(lines)


def concentration_table(outcome: Outcome) -> str:
    """Mean effective number of sources (1/Σw²) per strategy: how peaked the weights are."""
    values: dict[str, list[float]] = defaultdict(list)
    for run in outcome.runs:
        if run.strategy != "random":
            values[run.strategy].append(run.effective_sources)
    names = ordered_strategies([run for run in outcome.runs if run.strategy != "random"])
    return "| strategy | " + " | ".join(names) + " |\n| --- | " + " | ".join("---:" for _ in names) + " |\n| effective sources | " + " | ".join(f"{mean(values[name]):.1f}" for name in names) + " |"


def render(outcome: Outcome, settings: Settings, command: str) -> str:
    parts = [
        "# Transfer benchmark",
        "",
        f"Command: `{command}`  ",
        f"Wall time: {outcome.wall_s / 60:.1f} min. Targets ({len(outcome.targets)}): {', '.join(outcome.targets)}. "
        f"Sources: the other {len(outcome.tasks) - 1} of {len(outcome.tasks)} tasks. Seeds: {', '.join(map(str, settings.seeds))}.",
        "",
        f"Budgets: sources {settings.source_steps} steps (lr {settings.source_lr:g}, batch {settings.batch_size}); "
        f"targets {settings.target_epochs} epochs of the k-shot split clamped to [{settings.target_min_steps}, {settings.target_max_steps}] steps "
        f"(lr {settings.target_lr:g}, batch {settings.batch_size}); scoring on {settings.score_examples} dev examples; "
        f"kl reference {settings.reference_steps} steps; test {'capped at ' + str(settings.test_cap) if settings.test_cap else 'full'}; "
        f"random-pool k = {settings.pool_k}.",
        "",
        "Mean test accuracy (%) over targets and seeds; Δ random in points (same targets); W/L: targets where the strategy beats / loses to random.",
        "",
        results_table(outcome, settings),
        "",
        "Does a strategy transfer knowledge (beat both controls: its shuffled weights, and random-pool)?",
        "",
        *verdicts(outcome, settings),
        "",
        "The claim (best strategy ≥ 5 points over random and above average):",
        "",
        *claim_lines(outcome, settings),
        "",
        "Weight concentration (mean 1/Σw² over runs):",
        "",
        concentration_table(outcome),
        "",
        "Wall time per strategy:",
        "",
        time_table(outcome),
        "",
        "Sources:",
        "",
        source_table(outcome),
    ]
    if outcome.skipped:
        parts += ["", "Skipped:", "", *(f"- {line}" for line in outcome.skipped)]
    return "\n".join(parts) + "\n"


def write_outputs(outcome: Outcome, settings: Settings, command: str) -> str:
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    with (out / "runs.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for run in outcome.runs:
            row = {name: getattr(run, name) for name in CSV_FIELDS}
            for name in ("test_acc", "dev_acc"):
                row[name] = f"{row[name]:.4f}"
            for name in ("init_s", "train_s", "eval_s", "seconds", "effective_sources"):
                row[name] = f"{row[name]:.2f}"
            writer.writerow(row)
    with (out / "weights.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["target", "method", "shots", "seed", "strategy", "source", "score", "weight"])
        writer.writeheader()
        for row in outcome.weights:
            writer.writerow({**row, "score": "" if row["score"] is None else f"{row['score']:.6g}", "weight": f"{row['weight']:.6g}"})
    with (out / "sources.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "category", "method", "module_id", "dev_acc", "train_s", "reused"])
        for info in outcome.sources:
            writer.writerow([info.task, info.category, info.method, info.record.id, f"{info.dev_acc:.4f}", f"{info.seconds:.1f}", int(info.reused)])
    for old in out.glob("weights-*.png"):
        old.unlink()
    heatmaps(outcome, settings)
    text = render(outcome, settings, command)
    (out / "results.md").write_text(text, encoding="utf-8")
    return text


def heatmaps(outcome: Outcome, settings: Settings) -> list[Path]:
    """weights-<strategy>.png: target x source mean weight (over shots and seeds), one panel per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    written = []
    strategies = list(dict.fromkeys(row["strategy"] for row in outcome.weights))
    sources = list(outcome.tasks)
    for strategy in strategies:
        methods = [m for m in settings.methods if any(row["strategy"] == strategy and row["method"] == m for row in outcome.weights)]
        figure, axes = plt.subplots(1, len(methods), figsize=(max(6, 0.45 * len(sources) + 3) * len(methods), max(3, 0.4 * len(outcome.targets) + 2.5)), squeeze=False)
        for axis, method in zip(axes[0], methods):
            sums = np.zeros((len(outcome.targets), len(sources)))
            counts = np.zeros_like(sums)
            for row in outcome.weights:
                if row["strategy"] == strategy and row["method"] == method and row["target"] in outcome.targets and row["source"] in sources:
                    i, j = outcome.targets.index(row["target"]), sources.index(row["source"])
                    sums[i, j] += row["weight"]
                    counts[i, j] += 1
            # Runs per (target, source) pair: a source absent from a run (the target itself) stays blank.
            runs_per_target = np.array([[len({(r["shots"], r["seed"]) for r in outcome.weights if r["strategy"] == strategy and r["method"] == method and r["target"] == t})] for t in outcome.targets])
            matrix = np.where(counts > 0, sums / np.maximum(runs_per_target, 1), np.nan)
            image = axis.imshow(np.ma.masked_invalid(matrix), vmin=0, vmax=max(1e-9, float(np.nanmax(matrix)) if np.isfinite(matrix).any() else 1), cmap="viridis", aspect="auto")
            axis.set_xticks(range(len(sources)), sources, rotation=60, ha="right", fontsize=7)
            axis.set_yticks(range(len(outcome.targets)), outcome.targets, fontsize=7)
            axis.set_xlabel("source")
            axis.set_ylabel("target")
            axis.set_title(f"{strategy} ({method}): mean weight", fontsize=9)
            figure.colorbar(image, ax=axis, fraction=0.03)
        figure.tight_layout()
        path = settings.out / f"weights-{strategy.replace(':', '-')}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


# ---------------------------------------------------------------- command line


def parse(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--suite", type=Path, required=True, help="a folder of task folders in the project's dataset format")
    parser.add_argument("--quick", action="store_true", help="2 CPU cores, < 30 min: 2 cheapest tasks per category, 3 targets, LoRA, small budgets, 1 seed")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "transfer")
    parser.add_argument("--registry", type=Path, default=None, help="benchmark registry (default OUT/registry); trained sources are reused from it")
    parser.add_argument("--tasks", nargs="+", default=None, help="the benchmark's tasks (default: all, or the quick subset)")
    parser.add_argument("--targets", nargs="+", default=None, help="target tasks (default: every task, or the quick choice)")
    parser.add_argument("--num-targets", type=int, default=None)
    parser.add_argument("--methods", nargs="+", default=None, help="PET methods (lora, adapter, prefix, ...)")
    parser.add_argument("--shots", nargs="+", type=int, default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--strategies", nargs="+", default=None, help=f"strategies and baselines, {RANDOM_POOL}, {SHUFFLED}:<strategy>")
    parser.add_argument("--shuffled", default=None, help="shuffled controls: all (every scored strategy), best (best mean dev accuracy), none, or comma-separated names")
    parser.add_argument("--pool-k", type=int, default=None)
    parser.add_argument("--base-model", default=None)
    parser.add_argument("--source-steps", type=int, default=None)
    parser.add_argument("--source-lr", type=float, default=None)
    parser.add_argument("--target-lr", type=float, default=None)
    parser.add_argument("--target-epochs", type=int, default=None)
    parser.add_argument("--target-min-steps", type=int, default=None)
    parser.add_argument("--target-max-steps", type=int, default=None)
    parser.add_argument("--test-cap", type=int, default=None, help="evaluate on at most N test examples (0: all)")
    parser.add_argument("--dev-cap", type=int, default=None, help="dev accuracy on at most N dev examples (0: none)")
    parser.add_argument("--score-examples", type=int, default=None)
    parser.add_argument("--reference-steps", type=int, default=None)
    parser.add_argument("--tune-steps", type=int, default=None)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    values: dict = dict(QUICK) if args.quick else {}
    values.update(quick=args.quick)
    for name in ("tasks", "targets", "methods", "shots", "seeds", "strategies"):
        if getattr(args, name) is not None:
            values[name] = tuple(getattr(args, name))
    for name in ("num_targets", "shuffled", "pool_k", "base_model", "source_steps", "source_lr", "target_lr", "target_epochs", "target_min_steps", "target_max_steps", "score_examples", "reference_steps", "tune_steps", "top_k", "device"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.test_cap is not None:
        values["test_cap"] = args.test_cap or None
    if args.dev_cap is not None:
        values["dev_cap"] = args.dev_cap
    out = args.out
    settings = Settings(suite=args.suite, out=out, registry=args.registry or out / "registry", **values)
    if settings.shuffled not in ("all", "best", "none"):
        names = tuple(name.strip() for name in settings.shuffled.split(",") if name.strip())
        settings = replace(settings, shuffled="none", strategies=settings.strategies + tuple(f"{SHUFFLED}:{name}" for name in names))
    if RANDOM_POOL not in settings.strategies:
        settings = replace(settings, strategies=settings.strategies + (RANDOM_POOL,))
    if any(s < 1 for s in settings.shots) or not settings.shots:
        raise SystemExit("error: --shots must be positive integers")
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    from hub.errors import HubError
    from ensembling.errors import EnsemblingError

    argv = list(sys.argv[1:] if argv is None else argv)
    settings = parse(argv)
    command = "python benchmarks/transfer.py " + " ".join(argv)
    try:
        outcome = run_benchmark(settings)
    except (HubError, EnsemblingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    text = write_outputs(outcome, settings, command)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
