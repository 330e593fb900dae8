"""Strategies: score functions against hand-computed values, scores -> weights, the registry of
strategies, and the signs of the data-based strategies on a real tiny setting (MiniLM, WordNet)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from ensembling import scores
from ensembling.candidates import Candidate, Target
from ensembling.ensemble import Options, run
from ensembling.errors import EnsemblingError
from ensembling.strategies import STRATEGIES, Family, get_strategy, known, of_family
from ensembling.weights import keep_top_k, scores_to_weights, uniform_weights, znormalize

# Two rows over three candidates; the second row has only two (the third is padding, -inf).
PROBS = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.9, 0.0]])
LOG_PROBS = PROBS.log()
GOLD = torch.tensor([0, 1])


def test_loss_is_mean_gold_cross_entropy():
    assert scores.loss_score(LOG_PROBS, GOLD) == pytest.approx((math.log(2) - math.log(0.9)) / 2, abs=1e-7)
    assert scores.loss_score(LOG_PROBS, GOLD) == pytest.approx(0.3992538, abs=1e-6)


def test_el2n_is_sum_of_error_l2_norms():
    # row 0: ‖(-.5, .25, .25)‖ = √.375; row 1: ‖(.1, -.1, 0)‖ = √.02 (padding contributes 0)
    assert scores.el2n_score(LOG_PROBS, GOLD) == pytest.approx(math.sqrt(0.375) + math.sqrt(0.02), abs=1e-6)
    assert scores.el2n_score(LOG_PROBS, GOLD) == pytest.approx(0.7537938, abs=1e-6)


def test_cos_is_sum_of_cosines_with_the_one_hot_label():
    expected = 0.5 / math.sqrt(0.375) + 0.9 / math.sqrt(0.82)
    assert scores.cos_score(LOG_PROBS, GOLD) == pytest.approx(expected, abs=1e-6)
    assert scores.cos_score(LOG_PROBS, GOLD) == pytest.approx(1.8103803, abs=1e-6)


def test_kl_sums_kl_of_reference_to_candidate_and_ignores_zero_reference_mass():
    reference = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.8, 0.0]]).log()
    expected = 0.5 * math.log(2) + 0.2 * math.log(2) + 0.8 * math.log(0.8 / 0.9)
    assert scores.kl_score(reference, LOG_PROBS) == pytest.approx(expected, abs=1e-6)
    assert scores.kl_score(reference, LOG_PROBS) == pytest.approx(0.3909766, abs=1e-6)
    assert scores.kl_score(LOG_PROBS, LOG_PROBS) == pytest.approx(0.0, abs=1e-9)


def test_grand_sums_batch_gradient_norms():
    assert scores.grand_score([3.0, 4.0]) == pytest.approx(7.0)
    with pytest.raises(EnsemblingError):
        scores.grand_score([])


def test_weight_reading_scores():
    reference = {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([1.0, 1.0])}
    other = {"a": torch.tensor([0.0, 1.0]), "b": torch.tensor([2.0, 2.0])}
    assert scores.weight_cos_score(reference, other) == pytest.approx(0.5)
    assert scores.weight_cos_score(reference, {"a": torch.zeros(2), "b": torch.tensor([1.0, 1.0])}) == pytest.approx(0.5)
    assert scores.euclidean_score({"a": torch.zeros(2), "b": torch.ones(1)}, {"a": torch.tensor([3.0, 0.0]), "b": torch.tensor([5.0])}) == pytest.approx(
        3.0 + 4.0
    )
    assert scores.performance_score(0.75, 0.5) == pytest.approx(0.25)
    with pytest.raises(EnsemblingError, match="do not share tensor b"):
        scores.weight_cos_score(reference, {"a": torch.zeros(2), "c": torch.zeros(2)})


def test_scores_to_weights_softmax_sign_temperature():
    assert scores_to_weights([1.0, 2.0], sign=-1, temperature=1.0) == pytest.approx([0.7310586, 0.2689414], abs=1e-7)
    assert scores_to_weights([1.0, 2.0], sign=1, temperature=1.0) == pytest.approx([0.2689414, 0.7310586], abs=1e-7)
    # a smaller temperature sharpens: 0.1 → e^10 : 1
    assert scores_to_weights([1.0, 2.0], sign=-1, temperature=0.1)[0] == pytest.approx(1 / (1 + math.exp(-10)), abs=1e-9)
    weights = scores_to_weights([0.3, 0.1, 0.7, 0.2], sign=-1, temperature=0.05)
    assert math.fsum(weights) == pytest.approx(1.0, abs=1e-12)


def test_znorm_and_top_k():
    assert znormalize([1.0, 2.0, 3.0]) == pytest.approx([-math.sqrt(1.5), 0.0, math.sqrt(1.5)])
    assert znormalize([2.0, 2.0]) == [0.0, 0.0]
    # z-normalization makes the weights independent of the scores' scale and offset
    assert scores_to_weights([1.0, 2.0, 4.0], sign=-1, temperature=1.0, znorm=True) == pytest.approx(
        scores_to_weights([110.0, 120.0, 140.0], sign=-1, temperature=1.0, znorm=True)
    )
    assert keep_top_k([0.2, 0.5, 0.3], 1) == [0.0, 1.0, 0.0]
    assert keep_top_k([0.2, 0.5, 0.3], 2) == pytest.approx([0.0, 0.625, 0.375])
    assert keep_top_k([0.25, 0.25, 0.5], 2) == pytest.approx([1 / 3, 0.0, 2 / 3])  # ties: the earlier index is kept
    assert uniform_weights(4, top_k=2) == [0.5, 0.5, 0.0, 0.0]


@pytest.mark.parametrize("temperature", [0.0, -0.1, float("nan")])
def test_temperature_must_be_positive(temperature):
    with pytest.raises(EnsemblingError, match="temperature"):
        scores_to_weights([1.0, 2.0], sign=-1, temperature=temperature)


def test_weights_refuse_non_finite_scores_and_bad_top_k():
    with pytest.raises(EnsemblingError, match="non-finite"):
        scores_to_weights([1.0, float("inf")], sign=-1, temperature=0.1)
    with pytest.raises(EnsemblingError, match="top-k"):
        scores_to_weights([1.0, 2.0], sign=-1, temperature=0.1, top_k=0)


def test_every_strategy_is_registered_with_the_designed_sign_and_temperature():
    assert known() == [
        "auto", "guarded", "cos", "el2n", "grand", "kl", "loss", "euclidean", "performance", "weight-cos", "average", "group-average", "random",
        "lorahub", "retrieval", "task-retrieval", "random-pool", "shuffled:<strategy>", "single:<task>",
    ]  # fmt: skip
    assert of_family(Family.PAPER) == ["cos", "el2n", "grand", "kl", "loss"]
    for name, cls in STRATEGIES.items():
        assert cls.summary and isinstance(cls.family, Family), name
    signs = {"loss": -1, "kl": -1, "el2n": -1, "grand": -1, "cos": 1, "weight-cos": 1, "euclidean": -1, "performance": 1}
    for name, sign in signs.items():
        assert STRATEGIES[name].sign == sign, name
    for name in ("loss", "kl", "el2n", "grand", "cos"):
        assert STRATEGIES[name].temperature == 0.1
    assert STRATEGIES["weight-cos"].temperature == STRATEGIES["performance"].temperature == 0.001
    assert STRATEGIES["euclidean"].temperature == 0.1 and not STRATEGIES["euclidean"].znorm  # the paper's code: raw, τ = 0.1
    with pytest.raises(EnsemblingError, match="unknown strategy 'nope'; use one of auto, guarded, cos, el2n, grand, kl, loss"):
        get_strategy("nope")


def test_ensembling_does_not_import_hub():
    code = "import sys, ensembling.ensemble, ensembling.compose, ensembling.strategies; print(sorted(m for m in sys.modules if m == 'hub' or m.startswith('hub.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


class FakeEvaluator:
    """Rows that depend only on the applied module's single tensor, to test the orchestration."""

    def __init__(self):
        self.applied = None

    def default_tensors(self):
        return {"w": torch.zeros(2)}

    def apply(self, tensors):
        self.applied = tensors["w"].clone()

    def rows(self):
        logits = torch.stack([self.applied, self.applied.flip(0)])
        return scores_rows(torch.log_softmax(logits, dim=1), torch.tensor([0, 1]))

    def gradient_norms(self):
        return [float(self.applied.norm())]

    def predict(self, candidate):
        self.apply(candidate.tensors)
        return self.rows()

    def predict_many(self, candidates, group_size=None):
        return [self.predict(candidate) for candidate in candidates]


def scores_rows(log_probs, gold):
    from ensembling.candidates import Rows

    return Rows(log_probs, gold)


def fake(i, w, task=None, category="c"):
    return Candidate(i, task or f"task-{i}", category, f"{i:064d}", {"w": torch.tensor(w)}, "base")


def test_run_is_deterministic_and_weights_sum_to_one():
    candidates = [fake(1, [2.0, 0.0]), fake(2, [0.0, 2.0]), fake(3, [0.5, 0.0])]
    target = Target("target", "c")
    first = run(get_strategy("loss"), candidates, target, FakeEvaluator(), Options(seed=3))
    second = run(get_strategy("loss"), candidates, target, FakeEvaluator(), Options(seed=3))
    assert [s.weight for s in first.sources] == [s.weight for s in second.sources]
    assert math.fsum(s.weight for s in first.sources) == pytest.approx(1.0)
    assert max(first.sources, key=lambda s: s.weight).candidate.id == 1  # lowest loss
    assert min(first.sources, key=lambda s: s.weight).candidate.id == 2
    top = run(get_strategy("loss"), candidates, target, FakeEvaluator(), Options(top_k=1))
    assert torch.equal(top.tensors["w"], candidates[0].tensors["w"])


def test_run_refuses_the_targets_own_modules_and_handles_baselines():
    target = Target("target", "c")
    with pytest.raises(EnsemblingError, match="target task"):
        run(get_strategy("loss"), [fake(1, [1.0, 0.0], task="target")], target, FakeEvaluator())
    candidates = [fake(1, [1.0, 0.0]), fake(2, [0.0, 1.0], category="other")]
    average = run(get_strategy("average"), candidates, target, None)
    assert [s.weight for s in average.sources] == [0.5, 0.5]
    assert torch.allclose(average.tensors["w"], torch.tensor([0.5, 0.5]))
    group = run(get_strategy("group-average"), candidates, target, None)
    assert [s.candidate.id for s in group.sources] == [1]
    random_init = run(get_strategy("random"), candidates, target, FakeEvaluator())
    assert random_init.sources == () and torch.equal(random_init.tensors["w"], torch.zeros(2))


@pytest.fixture(scope="module")
def tiny_setting(suite):
    """MiniLM + LoRA r=4 on an 8-example WordNet target: a module trained to fit it, the default init, a random module."""
    from hub.backbones import formulation_for, load_base_model, resolve_base_model
    from hub.datasets import load_dataset
    from hub.evaluation import ModelEvaluator
    from hub.methods import get_method
    from hub.training import TrainConfig, seed_everything

    ref = resolve_base_model("minilm")
    method = get_method("lora")
    seed_everything(0)
    model = method.attach(load_base_model(ref), method.default_config(ref, {"r": 4}))
    target = load_dataset(suite / "wn-synonym-noun").few_shot(4, seed=0)
    # Scored on the few-shot train examples themselves, so "fits the target" is unambiguous.
    examples = target.split("train")
    tuning = TrainConfig(lr=5e-3, eval_every=5, patience=100)
    evaluator = ModelEvaluator(model, method, formulation_for(ref), examples, train_examples=examples, dev_examples=examples, tuning=tuning)
    own = evaluator.finetune(evaluator.default_tensors(), max_steps=30, seed=0).tensors
    default = evaluator.default_tensors()
    generator = torch.Generator().manual_seed(7)
    noise = {name: torch.randn(tensor.shape, generator=generator) * 0.1 for name, tensor in default.items()}
    return evaluator, {
        "own-data": Candidate(1, "own-data", "synonymy", "1" * 64, own, "minilm"),
        "default-init": Candidate(2, "default-init", "synonymy", "2" * 64, default, "minilm"),
        "random": Candidate(3, "random", "synonymy", "3" * 64, noise, "minilm"),
    }


def ranking(evaluator, candidates, strategy):
    # kl's reference θ_t is trained with another seed than the own-data module.
    result = run(get_strategy(strategy), candidates, Target("wn-synonym-noun-target", "synonymy"), evaluator, Options(seed=1, reference_steps=30))
    assert math.fsum(s.weight for s in result.sources) == pytest.approx(1.0)
    return [s.candidate.task for s in sorted(result.sources, key=lambda source: -source.weight)], result


@pytest.mark.parametrize("strategy", ["loss", "kl", "el2n", "cos"])
def test_module_trained_on_the_target_ranks_first_the_default_init_next_a_random_module_last(tiny_setting, strategy):
    evaluator, modules = tiny_setting
    order, result = ranking(evaluator, [modules["default-init"], modules["random"], modules["own-data"]], strategy)
    assert order == ["own-data", "default-init", "random"], [(s.candidate.task, s.score) for s in result.sources]


def test_grand_ranks_the_module_trained_on_the_target_first_and_a_random_module_last(tiny_setting):
    """Without the default init: LoRA's default init has B = 0, so its gradient w.r.t. A vanishes and its
    head's gradient nearly cancels across the candidates of one input; its gradient norm is tiny although
    it has learnt nothing, and grand ranks it close to (or above) a module that fits the target."""
    evaluator, modules = tiny_setting
    order, result = ranking(evaluator, [modules["random"], modules["own-data"]], "grand")
    assert order == ["own-data", "random"], [(s.candidate.task, s.score) for s in result.sources]


def test_live_switching_reads_each_candidates_own_predictions(tiny_setting):
    """Switching back and forth gives the same rows as the first time (in-place copies leak nothing)."""
    evaluator, modules = tiny_setting
    evaluator.apply(modules["own-data"].tensors)
    first = evaluator.rows().log_probs
    evaluator.apply(modules["random"].tensors)
    other = evaluator.rows().log_probs
    evaluator.apply(modules["own-data"].tensors)
    assert torch.equal(evaluator.rows().log_probs, first)
    assert not torch.allclose(first, other)


def test_shuffled_permutes_its_strategys_weights_over_the_same_sources_from_the_memo():
    candidates = [fake(i, [float(i), 0.0]) for i in range(1, 7)]
    target = Target("target", "c")
    memo: dict = {}
    scored = run(get_strategy("loss"), candidates, target, FakeEvaluator(), Options(seed=2), memo=memo)
    assert "loss" in memo
    shuffled = run(get_strategy("shuffled:loss"), candidates, target, None, Options(seed=2), memo=memo)  # no evaluator: it reads the memo
    assert shuffled.strategy == "shuffled:loss"
    assert [s.candidate.id for s in shuffled.sources] == [s.candidate.id for s in scored.sources]
    assert sorted(s.weight for s in shuffled.sources) == pytest.approx(sorted(s.weight for s in scored.sources))
    assert [s.weight for s in shuffled.sources] != [s.weight for s in scored.sources]
    alone = run(get_strategy("shuffled:loss"), candidates, target, FakeEvaluator(), Options(seed=2))  # without a memo it scores first
    assert [s.weight for s in alone.sources] == [s.weight for s in shuffled.sources]
    with pytest.raises(EnsemblingError, match="only scored strategies"):
        get_strategy("shuffled:average")
    with pytest.raises(EnsemblingError, match="written shuffled:<strategy>"):
        get_strategy("shuffled")


def test_random_pool_draws_its_pool_by_seed_without_reading_the_target():
    candidates = [fake(i, [float(i), 0.0]) for i in range(1, 9)]
    target = Target("target", "c")
    pools = {
        seed: [s.candidate.id for s in run(get_strategy("random-pool"), candidates, target, None, Options(seed=seed, pool_size=3)).sources] for seed in range(4)
    }
    assert all(len(pool) == 3 for pool in pools.values())
    assert pools[0] == [
        s.candidate.id for s in run(get_strategy("random-pool"), list(reversed(candidates)), target, None, Options(seed=0, pool_size=3)).sources
    ]
    assert len({tuple(pool) for pool in pools.values()}) > 1
    assert STRATEGIES["random-pool"].family is Family.CONTROL and not STRATEGIES["random-pool"].needs


def test_single_names_a_task_or_one_of_its_modules_and_refuses_an_ambiguous_task():
    candidates = [fake(1, [1.0, 0.0], task="a"), fake(2, [0.0, 1.0], task="b"), fake(3, [0.0, 3.0], task="b")]
    target = Target("target", "c")
    alone = run(get_strategy("single:a"), candidates, target, None)
    assert [(s.candidate.id, s.weight) for s in alone.sources] == [(1, 1.0)]
    module = run(get_strategy("single:b#3"), candidates, target, None)
    assert [s.candidate.id for s in module.sources] == [3] and torch.equal(module.tensors["w"], candidates[2].tensors["w"])
    assert get_strategy("single:b#3").label == "single:b#3"
    with pytest.raises(EnsemblingError, match=r"single:b: task 'b' has 2 modules among the candidates \(2, 3\); name one: single:b#<id>"):
        run(get_strategy("single:b"), candidates, target, None)
    with pytest.raises(EnsemblingError, match="no module 1 of task 'b'"):
        run(get_strategy("single:b#1"), candidates, target, None)
    for bad in ("single:b#x", "single:#3"):
        with pytest.raises(EnsemblingError, match="name a module as single:<task>#<module id>"):
            get_strategy(bad)


def test_performance_composes_tuned_sources_and_its_shuffled_control_permutes_those(tiny_setting):
    evaluator, modules = tiny_setting
    candidates = [modules["random"], modules["own-data"]]
    memo: dict = {}
    target = Target("wn-synonym-noun-target", "synonymy")
    tuned = run(get_strategy("performance"), candidates, target, evaluator, Options(seed=0, tune_steps=2), memo=memo)
    assert tuned.tuning_steps == 2 * len(candidates)
    for source, original in zip(tuned.sources, candidates):
        assert any(not torch.equal(source.candidate.tensors[k], original.tensors[k]) for k in original.tensors)
    control = run(get_strategy("shuffled:performance"), candidates, target, evaluator, Options(seed=0, tune_steps=2), memo=memo)
    for mine, theirs in zip(control.sources, tuned.sources):
        assert all(torch.equal(mine.candidate.tensors[k], theirs.candidate.tensors[k]) for k in theirs.candidate.tensors)
