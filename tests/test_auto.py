"""`auto` (cross-validated choice between composed inits and the default init) and layer-wise composition,
on MiniLM with LoRA, and through `adapters ensemble` / `train` on a small real registry."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import cli, one_line_error, random_module, snapshot, tiny

from benchmarks.transferbench.report import cross_validated
from ensembling.candidates import Candidate, Target
from ensembling.ensemble import Options, context_for, run
from ensembling.errors import EnsemblingError
from ensembling.layers import depth, layer_of, parse_layers
from ensembling.strategies import DEFAULT, NO_TRANSFER, get_strategy
from ensembling.strategies.auto import CANDIDATES
from ensembling.strategies.base import Weighting
from ensembling.strategies.guarded import INNER
from hub import Hub, load_dataset
from hub.datasets import Dataset, write_dataset

TARGET = Target("wn-synonym-noun-target", "synonymy")
BUDGET = 6  # cross-validation's training steps per fold


def evaluator_for(suite: Path, splits: dict, tuning_lr: float = 5e-3):
    from hub.backbones import formulation_for, load_base_model, resolve_base_model
    from hub.evaluation import ModelEvaluator
    from hub.methods import get_method
    from hub.training import TrainConfig, seed_everything

    ref = resolve_base_model("minilm")
    method = get_method("lora")
    seed_everything(0)
    model = method.attach(load_base_model(ref), method.default_config(ref, {"r": 4}))
    scoring = splits.get("dev") or splits["train"]
    tuning = TrainConfig(lr=tuning_lr, eval_every=3, patience=2)
    return ModelEvaluator(model, method, formulation_for(ref), scoring, train_examples=splits["train"], dev_examples=splits.get("dev", ()), tuning=tuning)


@pytest.fixture(scope="module")
def setting(suite):
    """A 4-shot target with train and dev, a module trained on the target's own train split, and two noise modules."""
    sample = load_dataset(suite / "wn-synonym-noun").few_shot(4, seed=0)
    evaluator = evaluator_for(suite, {"train": sample.split("train"), "dev": sample.split("dev")})
    own = evaluator.finetune(evaluator.default_tensors(), max_steps=30, seed=0).tensors
    generator = torch.Generator().manual_seed(7)

    def noise() -> dict[str, torch.Tensor]:
        return {name: torch.randn(tensor.shape, generator=generator) * 0.1 for name, tensor in own.items()}

    sources = [
        Candidate(1, "own-data", "synonymy", "1" * 64, own, "minilm", similarity=0.9),
        Candidate(2, "noise-a", "synonymy", "2" * 64, noise(), "minilm", similarity=0.2),
        Candidate(3, "noise-b", "synonymy", "3" * 64, noise(), "minilm", similarity=0.1),
    ]
    return evaluator, sources


def mean(values) -> tuple[float, float]:
    return math.fsum(v.accuracy for v in values) / len(values), math.fsum(v.loss for v in values) / len(values)


def assert_reason_carries_the_trials(decision) -> None:
    """The transfer benchmark's report reads every candidate's cross-validated accuracy back from the one-line reason."""
    expected = {trial.strategy: trial.accuracy for trial in decision.trials}
    assert cross_validated(decision.chosen, decision.reason) == pytest.approx(expected, abs=5e-4), decision.reason


def test_auto_keeps_the_init_with_the_best_cross_validated_accuracy_and_says_why(setting):
    evaluator, sources = setting
    memo: dict[str, object] = {}
    result = run(get_strategy("auto"), sources, TARGET, evaluator, Options(seed=0, reference_steps=BUDGET), memo=memo)
    decision = result.decision
    trials = {trial.strategy: trial for trial in decision.trials}
    assert list(trials) == [NO_TRANSFER, *CANDIDATES]
    best = max(decision.trials, key=lambda trial: (trial.accuracy, -trial.loss))
    assert decision.chosen == best.strategy and f"{best.accuracy:.3f}" in decision.reason and "2 folds" in decision.reason, decision
    assert_reason_carries_the_trials(decision)
    # The figures it reports are the cross-validation's, recomputed independently for the default init and for what
    # it chose: in each fold, the init rebuilt from the fold's fitting part alone, tuned there, scored on the rest.
    for name in {NO_TRANSFER, decision.chosen}:
        validations = []
        for index in range(evaluator.cross_validation_folds()):
            tensors = evaluator.default_tensors()
            if name != NO_TRANSFER:
                strategy = get_strategy(name)
                view = context_for(TARGET, evaluator.fold(index), Options(seed=0, reference_steps=BUDGET), {})
                weighted = strategy.weigh(view, sources, Weighting(strategy.temperature, strategy.znorm, None))
                tensors = weighted.tensors(strategy.composition, evaluator.default_tensors)
            validations.append(evaluator.validate(index, tensors, BUDGET, 0))
        assert mean(validations) == pytest.approx((trials[name].accuracy, trials[name].loss), abs=1e-6)
    assert result.tuning_steps > 0  # the folds' trainings are counted as the init's cost
    if decision.chosen != NO_TRANSFER:
        assert [source.candidate.task for source in result.sources] == [source.task for source in memo[decision.chosen].sources]
        assert (trials[decision.chosen].accuracy, -trials[decision.chosen].loss) > (trials[NO_TRANSFER].accuracy, -trials[NO_TRANSFER].loss)


def test_a_folds_evaluator_knows_only_its_fitting_part(setting):
    evaluator, _sources = setting
    for index in range(evaluator.cross_validation_folds()):
        fit, held_out = evaluator._folds[index]
        view = evaluator.fold(index)
        assert set(view._train_examples) == set(view._dev_examples) == set(fit)
        assert not set(fit) & set(held_out)
        assert sum(batch.size for batch in view._score_batches) == len(fit)  # scored on the fitting part only
        for name, tensor in view.default_tensors().items():
            assert torch.equal(tensor, evaluator.default_tensors()[name]), name


def test_auto_keeps_the_default_init_when_no_composed_init_differs_from_it(setting):
    evaluator, sources = setting
    # Every source holds the default init itself: each composed init equals it, and a tie goes to the default.
    default = evaluator.default_tensors()
    copies = [Candidate(10 + i, f"copy-{i}", "synonymy", f"{i}" * 64, default, "minilm", similarity=0.5) for i in range(2)]
    result = run(get_strategy("auto"), copies, TARGET, evaluator, Options(seed=0, reference_steps=BUDGET))
    assert result.decision.chosen == NO_TRANSFER and result.sources == ()
    assert "kept the default init" in result.decision.reason
    assert_reason_carries_the_trials(result.decision)
    for name, tensor in result.tensors.items():
        assert torch.equal(tensor, default[name]), name


def test_auto_without_dev_examples_halves_the_train_split_or_says_it_cannot_validate(suite):
    sample = load_dataset(suite / "wn-synonym-noun").few_shot(2, seed=0)
    own = sample.split("train")
    halved = evaluator_for(suite, {"train": own})
    assert halved.cross_validation_folds() == 2  # two train examples per label: one in each half
    one_each = [next(example for example in own if example.label == label) for label in sorted({example.label for example in own})]
    evaluator = evaluator_for(suite, {"train": one_each})
    assert evaluator.cross_validation_folds() == 0
    generator = torch.Generator().manual_seed(3)
    sources = [
        Candidate(
            i,
            f"noise-{i}",
            "synonymy",
            f"{i}" * 64,
            {n: torch.randn(t.shape, generator=generator) * 0.1 for n, t in evaluator.default_tensors().items()},
            "minilm",
        )
        for i in (1, 2)
    ]
    result = run(get_strategy("auto"), sources, TARGET, evaluator, Options(seed=0, reference_steps=BUDGET))
    assert result.decision.chosen == CANDIDATES[0] and "unvalidated" in result.decision.reason
    assert result.tuning_steps == 0


def test_guarded_keeps_the_composed_init_only_when_trained_it_beats_the_trained_default_init(setting):
    evaluator, sources = setting
    memo: dict[str, object] = {}
    result = run(get_strategy("guarded"), sources, TARGET, evaluator, Options(seed=0, reference_steps=BUDGET), memo=memo)
    decision = result.decision
    # Recomputed independently: loss's init and the default init, each tuned under the same budget, measured on the dev split.
    loss = get_strategy(INNER)
    weighted = loss.weigh(context_for(TARGET, evaluator, Options(seed=0), {}), sources, Weighting(loss.temperature, loss.znorm, None))
    measured = {}
    for name, tensors in ((INNER, weighted.tensors(loss.composition, evaluator.default_tensors)), (NO_TRANSFER, evaluator.default_tensors())):
        evaluator.apply(evaluator.finetune(tensors, BUDGET, 0).tensors)
        measured[name] = evaluator.dev_measure()
    better = measured[INNER][0] > measured[NO_TRANSFER][0] or (measured[INNER][0] == measured[NO_TRANSFER][0] and measured[INNER][1] < measured[NO_TRANSFER][1])
    assert decision.chosen == (INNER if better else NO_TRANSFER), (decision.reason, measured)
    for trial in decision.trials:
        assert (trial.accuracy, trial.loss) == pytest.approx(measured[trial.strategy]), trial
    assert f"accuracy {measured[INNER][0]:.3f} vs {measured[NO_TRANSFER][0]:.3f} for the default init" in decision.reason
    assert result.tuning_steps > 0
    if better:
        assert [source.weight for source in result.sources] == pytest.approx(weighted.weights)
    else:
        assert result.sources == ()


def test_guarded_keeps_the_default_init_on_an_exact_tie_and_costs_two_trainings(setting):
    evaluator, _sources = setting
    default = evaluator.default_tensors()
    copies = [Candidate(10 + i, f"copy-{i}", "synonymy", f"{i}" * 64, default, "minilm") for i in range(2)]
    result = run(get_strategy("guarded"), copies, TARGET, evaluator, Options(seed=0, reference_steps=BUDGET))
    assert result.decision.chosen == NO_TRANSFER and "kept the default init" in result.decision.reason and result.sources == ()
    transfer, kept = result.decision.trials
    assert (transfer.accuracy, transfer.loss) == (kept.accuracy, kept.loss)
    assert 0 < result.tuning_steps <= 2 * BUDGET


def test_guarded_without_dev_compares_on_halves_or_says_it_kept_the_init_unchecked(suite):
    sample = load_dataset(suite / "wn-synonym-noun").few_shot(2, seed=0)
    own = sample.split("train")
    halved = evaluator_for(suite, {"train": own})
    generator = torch.Generator().manual_seed(3)

    def noise(evaluator):
        return [
            Candidate(
                i,
                f"noise-{i}",
                "synonymy",
                f"{i}" * 64,
                {n: torch.randn(t.shape, generator=generator) * 0.1 for n, t in evaluator.default_tensors().items()},
                "minilm",
            )
            for i in (1, 2)
        ]

    result = run(get_strategy("guarded"), noise(halved), TARGET, halved, Options(seed=0, reference_steps=BUDGET))
    assert "held-out half of the train split" in result.decision.reason and result.tuning_steps > 0
    one_each = [next(example for example in own if example.label == label) for label in sorted({example.label for example in own})]
    evaluator = evaluator_for(suite, {"train": one_each})
    result = run(get_strategy("guarded"), noise(evaluator), TARGET, evaluator, Options(seed=0, reference_steps=BUDGET))
    assert result.decision.chosen == INNER and "unchecked" in result.decision.reason and "\n" not in result.decision.reason
    assert result.tuning_steps == 0


def test_layers_compose_only_the_chosen_layers_and_keep_the_default_init_elsewhere(setting):
    evaluator, sources = setting
    default = evaluator.default_tensors()
    whole = run(get_strategy("average"), sources, TARGET, evaluator, Options())
    upper = run(get_strategy("average"), sources, TARGET, evaluator, Options(layers="upper"))
    assert depth(whole.tensors) == 6 and upper.layers == "upper"
    for name, tensor in upper.tensors.items():
        index = layer_of(name)
        expected = whole.tensors[name] if index is None or index >= 3 else default[name]
        assert torch.equal(tensor, expected), name
    assert any(layer_of(name) is None for name in upper.tensors)  # the classification head: composed
    assert parse_layers("0,2-3", 6) == {0, 2, 3} and parse_layers("lower", 6) == {0, 1, 2}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("6", "--layers 6: layer 6 does not exist; these modules have layers 0-5"),
        ("3-1", "range 3-1 runs backwards"),
        ("top", "write upper, lower, or layer indices"),
    ],
)
def test_layers_that_the_modules_do_not_have_are_refused_before_any_work(setting, spec, message):
    evaluator, sources = setting
    with pytest.raises(EnsemblingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(get_strategy("el2n"), sources, TARGET, evaluator, Options(layers=spec))


def test_layers_on_modules_without_per_layer_tensors_is_an_error():
    table = {"base_model.prompt_encoder.default.embedding.weight": torch.zeros(4, 8)}
    with pytest.raises(EnsemblingError, match="no per-layer tensors"):
        parse_layers("upper", depth(table))


# ---------------------------------------------------------------- through the CLI


@pytest.fixture(scope="module")
def small_registry(suite: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Three random LoRA sources for tiny WordNet datasets and a tiny 2-label target with train and dev."""
    data = tmp_path_factory.mktemp("auto")
    with Hub(data / "registry") as hub:
        for seed, task in enumerate(("wn-isa-plant", "wn-synonym-noun", "wn-antonym-noun")):
            module, tensors = random_module(hub, seed)
            hub.register(module.method, module.config, tensors, load_dataset(tiny(suite, task, data)), module.backbone)
    return data / "registry", tiny(suite, "wn-isa-animal", data)


@pytest.fixture
def registry(small_registry, tmp_path: Path) -> tuple[Path, Path]:
    source, target = small_registry
    shutil.copytree(source, tmp_path / "registry")
    return tmp_path / "registry", target


def test_ensemble_with_guarded_records_its_choice_in_the_provenance(registry):
    path, target = registry
    result = cli("ensemble", str(target), "-s", "guarded", "--score-examples", "8", "--steps", "2", "--json", "--registry", str(path))
    assert result.exit_code == 0, result.output
    made = json.loads(result.output)
    assert made["strategy"] == "guarded" and made["chosen"] in (NO_TRANSFER, INNER) and made["rationale"]
    with Hub(path) as hub:
        provenance = hub.show(made["module_id"]).provenance
    assert (provenance.strategy, provenance.chosen, provenance.rationale) == ("guarded", made["chosen"], made["rationale"])
    shown = cli("show", str(made["module_id"]), "--registry", str(path))
    assert "init choice" in shown.output and made["rationale"][:40] in " ".join(shown.output.split())


def test_guarded_on_data_too_small_to_hold_anything_out_says_what_it_did_and_trains_without_registering(registry, tmp_path):
    path, target = registry
    # One train example per label and no dev split: nothing to compare the composed init with the default init on.
    data = load_dataset(target)
    rows = {label: next(example for example in data.split("train") if example.label == label) for label in sorted({e.label for e in data.split("train")})}
    small = tmp_path / "small"
    write_dataset(Dataset(data.card, {"train": tuple(rows.values())}), small)
    before = snapshot(path)
    result = cli("train", str(small), "--max-steps", "2", "--score-examples", "2", "--registry", str(path), "--init", "guarded")
    assert result.exit_code == 0, result.output
    said = [line for line in result.output.splitlines() if line.startswith("guarded: ")]
    assert len(said) == 1 and "nothing to compare on" in said[0] and f"kept {INNER}'s init unchecked" in said[0], result.output
    assert snapshot(path) == before


def test_the_default_composes_one_module_of_each_nearest_task_uniformly(registry):
    path, target = registry
    result = cli("ensemble", str(target), "--json", "--registry", str(path))
    assert result.exit_code == 0, result.output
    made = json.loads(result.output)
    assert made["strategy"] == DEFAULT == "task-retrieval" and made["chosen"] is None
    assert len({source["task"] for source in made["sources"]}) == len(made["sources"]) == 3  # k = 3 of the three tasks
    assert [source["weight"] for source in made["sources"]] == pytest.approx([1 / 3] * 3)


def test_group_average_averages_the_modules_of_the_targets_category(registry):
    path, target = registry
    result = cli("ensemble", str(target), "--json", "--registry", str(path), "--strategy", "group-average")
    assert result.exit_code == 0, result.output
    made = json.loads(result.output)
    weights = [source["weight"] for source in made["sources"]]
    assert made["strategy"] == "group-average" and made["chosen"] is None and weights
    assert {source["category"] for source in made["sources"]} == {load_dataset(target).card.category}
    assert weights == pytest.approx([1 / len(weights)] * len(weights))


def test_group_average_without_a_module_of_the_targets_category_keeps_the_default_init_and_says_so(registry, tmp_path):
    path, target = registry
    data = load_dataset(target)
    unseen = tmp_path / "unseen"
    write_dataset(Dataset(replace(data.card, category="a-category-no-module-has"), data.splits), unseen)
    before = snapshot(path)
    result = cli("train", str(unseen), "--max-steps", "2", "--registry", str(path), "--init", "group-average")
    assert result.exit_code == 0, result.output
    said = [line for line in result.output.splitlines() if line.startswith("group-average: ")]
    assert len(said) == 1 and "no source of category 'a-category-no-module-has'" in said[0] and "kept the default init" in said[0], result.output
    assert snapshot(path) == before


def test_train_init_auto_prints_its_choice_in_one_line(registry):
    path, target = registry
    result = cli("train", str(target), "--init", "auto", "--max-steps", "2", "--registry", str(path))
    assert result.exit_code == 0, result.output
    assert any(line.startswith("auto: ") and "cross-validated accuracy" in line for line in result.output.splitlines()), result.output


def test_ensemble_layers_is_recorded_and_a_missing_layer_leaves_the_registry_unchanged(registry):
    path, target = registry
    made = json.loads(cli("ensemble", str(target), "-s", "average", "--layers", "upper", "--json", "--registry", str(path)).output)
    assert made["layers"] == "upper"
    with Hub(path) as hub:
        assert hub.show(made["module_id"]).provenance.layers == "upper"
    before = snapshot(path)
    line = one_line_error(cli("ensemble", str(target), "-s", "average", "--layers", "0,9", "--registry", str(path)))
    assert "--layers 0,9: layer 9 does not exist; these modules have layers 0-5" in line
    assert snapshot(path) == before


def test_ensemble_shots_registers_the_init_for_the_k_shot_sample_train_shots_trains_on(registry):
    path, target = registry
    made = json.loads(cli("ensemble", str(target), "-s", "average", "--shots", "2", "--seed", "1", "--json", "--registry", str(path)).output)
    with Hub(path) as hub:
        record = hub.show(made["module_id"])
    assert record.dataset_fingerprint == load_dataset(target).few_shot(2, 1).fingerprint
    assert "fewer than 2 x --shots 9" in one_line_error(cli("ensemble", str(target), "-s", "average", "--shots", "9", "--registry", str(path)))
