"""One tester over every registered strategy, as tests/test_methods.py is for PET methods.

A strategy is covered by registering it: each test runs over `ensembling.strategies.STRATEGIES` on a
small pool of real LoRA modules on a tiny random BERT, scored by the real evaluator on a toy target
(`hub.transfer.make_evaluator`, as `Hub.ensemble` builds it). What every strategy must do: give weights
well-formed for its composition kind, give the same init twice under one seed, read only the target
data it declares (`Strategy.needs`), and refuse what it cannot do with a one-line error.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from helpers import tiny_backbone, toy_dataset

from ensembling.candidates import Candidate, Evaluator, Target
from ensembling.ensemble import Ensemble, Options, run
from ensembling.errors import EnsemblingError
from ensembling.strategies import STRATEGIES, Composition, Needs, Strategy, get_strategy
from hub.backbones import load_base_model, resolve_base_model
from hub.datasets import Dataset
from hub.evaluation import ModelEvaluator
from hub.methods import get_method
from hub.trainable import Backbone
from hub.training import TrainConfig
from hub.transfer import check_needs, make_evaluator

pytestmark = pytest.mark.usefixtures("one_thread")

# Every training on the target (θ_t, tuned sources, auto's folds) takes two steps: the contract, not the quality, is tested.
OPTIONS = Options(seed=0, reference_steps=2, tune_steps=2, pool_size=2)
TUNING = TrainConfig(lr=5e-3, batch_size=4, eval_every=1, patience=100)
SOURCES = ("colors-a", "colors-b", "colors-c", "near")
# The argument a parameterized strategy is run with, by the kind of parameter it takes (a new kind must be added here).
ARGUMENTS = {"strategy": "loss", "task": SOURCES[0]}
# The target data each Evaluator call reads; `default_tensors` and `apply` read none.
READS = {
    "rows": {Needs.SCORING},
    "predict": {Needs.SCORING},
    "predict_many": {Needs.SCORING},
    "gradient_norms": {Needs.SCORING},
    "train_loss": {Needs.TRAIN},
    "reference": {Needs.TRAIN, Needs.DEV},  # trained on train, kept at its best dev checkpoint
    "finetune": {Needs.TRAIN, Needs.DEV},
    "dev_score": {Needs.DEV},
    "dev_measure": {Needs.DEV},
    "holds_dev": set(),  # whether there is a dev split, not its examples
    # Cross-validation's folds: train and dev when there is a dev split, else the train split halved per label.
    "cross_validation_folds": {Needs.TRAIN, Needs.DEV},
    "fold": {Needs.TRAIN, Needs.DEV},
    "validate": {Needs.TRAIN, Needs.DEV},
}


def written(name: str) -> str:
    """A registered strategy as run here: a parameterized one with the example argument of its parameter."""
    parameter = STRATEGIES[name].parameter
    if parameter is not None and parameter not in ARGUMENTS:
        pytest.fail(f"strategy {name} takes a <{parameter}>: add an example argument for it to ARGUMENTS")
    return name if parameter is None else f"{name}:{ARGUMENTS[parameter]}"


class Recording:
    """The real evaluator, noting which of the target's data each call reads."""

    def __init__(self, evaluator: ModelEvaluator) -> None:
        self.evaluator = evaluator
        self.read: set[Needs] = set()

    def __getattr__(self, name: str) -> object:
        self.read.update(READS.get(name, ()))
        return getattr(self.evaluator, name)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The tiny backbone, the toy target (train and dev) and four LoRA sources: three random, one tuned on the target's rule; two share its category."""
    ref = resolve_base_model(tiny_backbone("bert", tmp_path_factory.mktemp("tiny")))
    backbone = Backbone(ref, load_base_model(ref), "tiny")
    method = get_method("lora")
    config = method.default_config(ref, {"r": 2})
    toy = toy_dataset(24)
    examples = toy.split("train")
    target = Dataset(toy.card, {"train": examples[:12], "dev": examples[12:]}, "")
    near = make_evaluator(backbone, method, config, target, device="cpu", seed=1, tuning=TUNING).finetune(
        method.get_tensors(backbone.default_init(method, config, 1)), max_steps=6, seed=1
    )
    sources = []
    for index, task in enumerate(SOURCES):
        if task == "near":
            tensors = near.tensors
        else:
            generator = torch.Generator().manual_seed(index)
            default = method.get_tensors(backbone.default_init(method, config, index))
            tensors = {name: tensor + 0.1 * torch.randn(tensor.shape, generator=generator) for name, tensor in default.items()}
        similarity = 0.9 - 0.2 * index
        category = target.card.category if index < 2 else "other"  # group-average keeps the first two
        sources.append(Candidate(index + 1, task, category, f"{index + 1:064d}", tensors, ref.name, similarity=similarity))
    return {"backbone": backbone, "method": method, "config": config, "target": target, "sources": sources}


def evaluator_for(pool: dict) -> Recording:
    """A fresh evaluator on the target, as `Hub.ensemble` makes one (the default init under the run's seed)."""
    return Recording(make_evaluator(pool["backbone"], pool["method"], pool["config"], pool["target"], device="cpu", seed=OPTIONS.seed, tuning=TUNING))


def target_of(pool: dict) -> Target:
    data = pool["target"]
    return Target(data.card.name, data.card.category, data.fingerprint)


def composed(pool: dict, strategy: Strategy, sources: list[Candidate] | None = None) -> tuple[Ensemble, set[Needs]]:
    evaluator = evaluator_for(pool)
    result = run(strategy, pool["sources"] if sources is None else sources, target_of(pool), evaluator, OPTIONS, memo={})
    return result, evaluator.read


_RUNS: dict[str, tuple[Ensemble, set[Needs]]] = {}


def first_run(pool: dict, name: str) -> tuple[Ensemble, set[Needs]]:
    """Each strategy's run on the pool, made once for the checks that read it."""
    if name not in _RUNS:
        _RUNS[name] = composed(pool, get_strategy(written(name)))
    return _RUNS[name]


def test_every_evaluator_call_says_what_it_reads() -> None:
    calls = {name for name, value in vars(Evaluator).items() if callable(value) and not name.startswith("_")}
    assert calls - {"default_tensors", "apply"} == set(READS)


@pytest.mark.parametrize("name", list(STRATEGIES))
class TestEveryStrategy:
    def test_weights_are_well_formed_for_its_composition(self, pool: dict, name: str) -> None:
        strategy = get_strategy(written(name))
        result, _ = first_run(pool, name)
        composition = result.decision.composition if strategy.composition is Composition.CHOSEN else strategy.composition
        if strategy.composition is Composition.CHOSEN:
            assert result.decision is not None and result.decision.reason, "a strategy that chooses says what and why"
            assert composition is not Composition.CHOSEN
        weights = [source.weight for source in result.sources]
        assert all(math.isfinite(weight) for weight in weights)
        assert all(source.score is None or math.isfinite(source.score) for source in result.sources)  # None: weights not from its own scores
        default = evaluator_for(pool).default_tensors()
        assert {name: tuple(t.shape) for name, t in result.tensors.items()} == {name: tuple(t.shape) for name, t in default.items()}
        if composition is Composition.DEFAULT_INIT:
            assert all(torch.equal(result.tensors[key], default[key]) for key in default)
            return
        assert result.sources, "a composing strategy has sources"
        assert len({source.module_id for source in result.sources}) == len(result.sources) <= len(pool["sources"])
        if composition is Composition.FITTED:
            expected = {key: sum(w * s.candidate.tensors[key] for w, s in zip(weights, result.sources)) for key in default}
        else:
            assert all(weight >= 0 for weight in weights) and math.fsum(weights) == pytest.approx(1.0)
            if composition is Composition.UNIFORM:
                assert len({weight for weight in weights if weight > 0}) == 1
            expected = {key: sum(w * s.candidate.tensors[key] for w, s in zip(weights, result.sources)) / math.fsum(weights) for key in default}
        for key in default:
            torch.testing.assert_close(result.tensors[key], expected[key].to(result.tensors[key].dtype), rtol=1e-4, atol=1e-6)

    def test_is_deterministic_under_a_seed(self, pool: dict, name: str) -> None:
        first, _ = first_run(pool, name)
        again, _ = composed(pool, get_strategy(written(name)))
        assert [(s.module_id, s.score, s.weight) for s in again.sources] == [(s.module_id, s.score, s.weight) for s in first.sources]
        assert all(torch.equal(again.tensors[key], first.tensors[key]) for key in first.tensors)

    def test_reads_only_the_target_data_it_declares(self, pool: dict, name: str) -> None:
        strategy = get_strategy(written(name))
        result, read = first_run(pool, name)
        declared = strategy.needs | strategy.optional_needs
        assert read <= declared, f"{name} reads {sorted(need.value for need in read - declared)} without declaring it"
        if strategy.optional_needs:  # what it reads only when present, it can do without
            data = pool["target"]
            lacking = Dataset(data.card, {split: data.split(split) for split in ("train", "dev") if Needs(split) not in strategy.optional_needs}, "")
            evaluator = Recording(make_evaluator(pool["backbone"], pool["method"], pool["config"], lacking, device="cpu", seed=0, tuning=TUNING))
            run(strategy, pool["sources"], target_of(pool), evaluator, OPTIONS, memo={})
        if Needs.SIMILARITY not in strategy.needs:
            unknown = [dataclasses.replace(source, similarity=None) for source in pool["sources"]]
            blind, _ = composed(pool, strategy, unknown)
            assert [(s.module_id, s.weight) for s in blind.sources] == [(s.module_id, s.weight) for s in result.sources], (
                "its weights move with the similarities"
            )

    def test_refuses_what_it_cannot_do_in_one_line(self, pool: dict, name: str) -> None:
        strategy = get_strategy(written(name))
        refusals = []
        try:
            alone = run(strategy, [], target_of(pool), evaluator_for(pool), OPTIONS, memo={})
        except EnsemblingError as error:
            refusals.append(error)
        else:  # without sources, the one init it can give is the default init
            default = evaluator_for(pool).default_tensors()
            assert alone.sources == () and all(torch.equal(alone.tensors[key], default[key]) for key in default)
        if strategy.needs_model and not strategy.may_keep_default_init:  # that kind needs the model only when it keeps the default init
            with pytest.raises(EnsemblingError) as no_model:
                run(strategy, pool["sources"], target_of(pool), None, OPTIONS, memo={})
            refusals.append(no_model.value)
        data = pool["target"]
        for need, lacking in ((Needs.TRAIN, {"dev": data.split("dev")}), (Needs.DEV, {"train": data.split("train")}), (Needs.SCORING, {})):
            if need in strategy.needs:
                with pytest.raises(EnsemblingError) as no_data:
                    check_needs(strategy, Dataset(data.card, lacking, ""))
                refusals.append(no_data.value)
        for error in refusals:
            message = str(error)
            assert message and "\n" not in message, f"{name}: {message!r}"
