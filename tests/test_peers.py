"""The peers as strategies: lorahub (weights of any sign fitted to the k-shot train loss) and retrieval
(the k sources nearest by dataset embedding, uniform), on MiniLM with LoRA and on a small real registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ensembling.candidates import Candidate, Target
from ensembling.compose import compose
from ensembling.ensemble import Options, run
from ensembling.errors import EnsemblingError
from ensembling.strategies import get_strategy
from hub import Hub, TransferOptions, load_dataset
from hub.datasets import Dataset, write_dataset
from hub.errors import HubError

TARGET = Target("wn-synonym-noun-target", "synonymy")


@pytest.fixture(scope="module")
def setting(suite):
    """MiniLM + LoRA r=4 on an 8-example WordNet target: a module trained on it and two random modules."""
    from hub.backbones import formulation_for, load_base_model, resolve_base_model
    from hub.evaluation import ModelEvaluator
    from hub.methods import get_method
    from hub.training import TrainConfig, seed_everything

    ref = resolve_base_model("minilm")
    method = get_method("lora")
    seed_everything(0)
    model = method.attach(load_base_model(ref), method.default_config(ref, {"r": 4}))
    examples = load_dataset(suite / "wn-synonym-noun").few_shot(4, seed=0).split("train")
    tuning = TrainConfig(lr=5e-3, eval_every=5, patience=100)
    evaluator = ModelEvaluator(model, method, formulation_for(ref), examples, train_examples=examples, dev_examples=examples, tuning=tuning)
    own = evaluator.finetune(evaluator.default_tensors(), max_steps=30, seed=0).tensors
    generator = torch.Generator().manual_seed(7)

    def noise() -> dict[str, torch.Tensor]:
        return {name: torch.randn(tensor.shape, generator=generator) * 0.1 for name, tensor in own.items()}

    modules = {
        "own-data": Candidate(1, "own-data", "synonymy", "1" * 64, own, "minilm"),
        "noise-a": Candidate(2, "noise-a", "synonymy", "2" * 64, noise(), "minilm"),
        "noise-b": Candidate(3, "noise-b", "synonymy", "3" * 64, noise(), "minilm"),
        # own-data with every tensor negated: LoRA's B·A is unchanged, the head's logits flip sign.
        "negated": Candidate(4, "negated", "synonymy", "4" * 64, {name: -tensor for name, tensor in own.items()}, "minilm"),
    }
    return evaluator, modules


def train_loss(evaluator, sources, weights) -> float:
    evaluator.apply(compose(sources, weights, normalized=False))
    return evaluator.train_loss()


def test_lorahub_weights_the_source_that_fits_the_target_and_lowers_the_train_loss(setting):
    evaluator, modules = setting
    sources = [modules["noise-a"], modules["own-data"], modules["noise-b"]]
    result = run(get_strategy("lorahub"), sources, TARGET, evaluator, Options(seed=0))
    weights = {source.task: source.weight for source in result.sources}
    assert weights["own-data"] > 0.5 and abs(weights["noise-a"]) < 0.1 and abs(weights["noise-b"]) < 0.1, weights
    assert all(source.score is None for source in result.sources)
    start = train_loss(evaluator, sources, [0.0] * len(sources))  # LoraHub's init: every weight 0
    fitted = train_loss(evaluator, [source.candidate for source in result.sources], [source.weight for source in result.sources])
    assert fitted < start - 0.3, (start, fitted)


def test_lorahub_weights_may_be_negative_and_are_composed_as_they_are(setting):
    evaluator, modules = setting
    result = run(get_strategy("lorahub"), [modules["negated"], modules["noise-a"]], TARGET, evaluator, Options(seed=0))
    sources = [source.candidate for source in result.sources]
    weights = [source.weight for source in result.sources]
    assert dict(zip([source.task for source in sources], weights))["negated"] < -0.5, weights
    assert abs(sum(weights) - 1.0) > 0.1  # no softmax, no renormalization
    for key, tensor in result.tensors.items():
        expected = sum(weight * source.tensors[key].double() for weight, source in zip(weights, sources))
        assert torch.allclose(tensor.double(), expected, atol=1e-6), key
    assert train_loss(evaluator, sources, weights) < train_loss(evaluator, sources, [0.0, 0.0]) - 0.3


def test_lorahub_refuses_fewer_than_two_sources_top_k_and_sources_that_cannot_help(setting):
    evaluator, modules = setting
    with pytest.raises(EnsemblingError, match="at least 2 source modules but has 1") as error:
        run(get_strategy("lorahub"), [modules["own-data"]], TARGET, evaluator)
    assert "\n" not in str(error.value)
    with pytest.raises(EnsemblingError, match="drop --top-k"):
        run(get_strategy("lorahub"), [modules["own-data"], modules["noise-a"]], TARGET, evaluator, Options(top_k=1))
    # Zero modules predict uniformly under any weights: only the penalty moves, so every weight stays 0.
    zeros = {name: torch.zeros_like(tensor) for name, tensor in modules["own-data"].tensors.items()}
    blank = [Candidate(i, f"blank-{i}", "synonymy", f"{i:064d}", zeros, "minilm") for i in (5, 6)]
    with pytest.raises(EnsemblingError, match="kept every weight at 0") as error:
        run(get_strategy("lorahub"), blank, TARGET, evaluator)
    assert "\n" not in str(error.value)


def test_compose_takes_coefficients_of_any_sign_only_when_told():
    first = Candidate(1, "a", "c", "1" * 64, {"w": torch.tensor([1.0, 2.0])}, "base")
    second = Candidate(2, "b", "c", "2" * 64, {"w": torch.tensor([3.0, -1.0])}, "base")
    assert torch.allclose(compose([first, second], [-0.5, 2.0], normalized=False)["w"], torch.tensor([5.5, -3.0]))
    assert torch.equal(compose([first, second], [0.5, 0.0], normalized=False)["w"], torch.tensor([0.5, 1.0]))  # one source, scaled
    assert not compose([first, second], [0.0, 0.0], normalized=False)["w"].any()
    with pytest.raises(EnsemblingError, match="non-negative"):
        compose([first, second], [-0.5, 1.5])
    with pytest.raises(EnsemblingError, match="finite"):
        compose([first, second], [float("nan"), 1.0], normalized=False)


def ranked(i: int, similarity: float | None) -> Candidate:
    return Candidate(i, f"task-{i}", "c", f"{i:064d}", {"w": torch.tensor([float(i), 0.0])}, "base", similarity=similarity)


def test_retrieval_composes_the_k_most_similar_sources_uniformly():
    candidates = [ranked(1, 0.1), ranked(2, 0.9), ranked(3, 0.5), ranked(4, 0.7), ranked(5, 0.9)]
    result = run(get_strategy("retrieval"), candidates, Target("target", "c"), None, Options(pool_size=3))  # reads no model
    assert [source.module_id for source in result.sources] == [2, 5, 4]  # ties: the older module first
    assert [source.weight for source in result.sources] == pytest.approx([1 / 3] * 3)
    assert torch.allclose(result.tensors["w"], torch.tensor([11 / 3, 0.0]))
    assert [source.module_id for source in run(get_strategy("retrieval"), candidates, Target("target", "c"), None).sources] == [2, 5, 4]  # k = 3 by default
    # A source without a dataset embedding (pushed without a dataset) ranks after every source that has one.
    unranked = [ranked(6, None), ranked(1, 0.2), ranked(3, None), ranked(2, 0.1)]
    assert [source.module_id for source in run(get_strategy("retrieval"), unranked, Target("target", "c"), None).sources] == [1, 2, 3]


def tiny(suite: Path, task: str, out: Path) -> Path:
    full = load_dataset(suite / task)
    write_dataset(Dataset(full.card, {split: full.split(split)[:8] for split in ("train", "dev")}, ""), out / task)
    return out / task


def test_retrieval_through_the_hub_ranks_sources_by_their_datasets_embeddings(suite, tmp_path):
    data = tmp_path / "data"
    target = tiny(suite, "wn-isa-animal", data)
    sources = ["wn-isa-plant", "wn-isa-artifact", "wn-synonym-noun", "wn-antonym-noun", "wn-cloze-verb"]
    with Hub(tmp_path / "registry") as hub:
        for seed, task in enumerate(sources):
            module = hub.new_module("minilm", "lora", {"r": 4})
            generator = torch.Generator().manual_seed(seed)
            tensors = {name: torch.randn(tensor.shape, generator=generator) * 0.05 for name, tensor in module.tensors().items()}
            hub.register(module.method, module.config, tensors, load_dataset(tiny(suite, task, data)), module.backbone)
        result = hub.ensemble(target, TransferOptions(strategy="retrieval"), register=False)

        embedding = hub.dataset_embedding(load_dataset(target))
        cosine = {task: float(np.dot(embedding, hub.dataset_embedding(load_dataset(data / task)))) for task in sources}
        assert [source.task for source in result.sources] == sorted(sources, key=lambda task: -cosine[task])[:3]
        assert [source.weight for source in result.sources] == pytest.approx([1 / 3] * 3)
        assert [source.candidate.similarity for source in result.sources] == pytest.approx([cosine[source.task] for source in result.sources], abs=1e-5)
        for key, tensor in result.tensors.items():
            expected = sum(hub.load_tensors(hub.show(source.module_id))[key].double() for source in result.sources) / 3
            assert torch.allclose(tensor.double(), expected, atol=1e-6)


def test_task_retrieval_takes_the_k_nearest_tasks_each_by_its_module_with_the_best_recorded_dev_accuracy():
    def module(i: int, task: str, similarity: float | None, dev_acc: float | None) -> Candidate:
        return Candidate(i, task, "c", f"{i:064d}", {"w": torch.tensor([float(i), 0.0])}, "base", similarity=similarity, dev_acc=dev_acc)

    # Task a is nearest and has three modules (its junk scored lower on its own dev split), b two, c and d one each.
    candidates = [
        module(1, "a", 0.9, 0.40), module(2, "a", 0.9, 0.80), module(3, "a", 0.9, 0.10),
        module(4, "b", 0.7, None), module(5, "b", 0.7, 0.60), module(6, "c", 0.5, 0.90), module(7, "d", 0.2, 0.95),
    ]  # fmt: skip
    result = run(get_strategy("task-retrieval"), candidates, Target("target", "c"), None, Options(pool_size=3))  # reads no model
    assert [source.module_id for source in result.sources] == [2, 5, 6]  # one module a task: a's best, b's recorded one, then c
    assert [source.weight for source in result.sources] == pytest.approx([1 / 3] * 3)
    assert [source.module_id for source in run(get_strategy("retrieval"), candidates, Target("target", "c"), None).sources] == [1, 2, 3]
    # Ties on the recorded accuracy, or none recorded, go to the older module.
    assert [
        source.module_id
        for source in run(get_strategy("task-retrieval"), [module(9, "a", 0.5, None), module(8, "a", 0.5, None)], Target("t", "c"), None).sources
    ] == [8]


def test_task_retrieval_through_the_hub_reads_each_modules_dev_accuracy_from_its_card(suite, tmp_path):
    data = tmp_path / "data"
    target = tiny(suite, "wn-isa-animal", data)
    with Hub(tmp_path / "registry") as hub:
        registered = {}
        for seed, (task, dev_acc) in enumerate(
            [("wn-isa-plant", 0.3), ("wn-isa-plant", 0.9), ("wn-isa-plant", 0.5), ("wn-synonym-noun", 0.7), ("wn-cloze-verb", 0.6)]
        ):
            module = hub.new_module("minilm", "lora", {"r": 4})
            generator = torch.Generator().manual_seed(seed)
            tensors = {name: torch.randn(tensor.shape, generator=generator) * 0.05 for name, tensor in module.tensors().items()}
            record = hub.register(module.method, module.config, tensors, load_dataset(tiny(suite, task, data)), module.backbone, metrics={"dev_acc": dev_acc})
            registered[record.id] = (task, dev_acc)
        # A metric that is no number would rank arbitrarily: refused in one line, nothing stored.
        with pytest.raises(HubError, match="metric dev_acc is nan, not a finite number"):
            hub.register(module.method, module.config, module.tensors(), load_dataset(target), module.backbone, metrics={"dev_acc": float("nan")})
        assert len(hub.list()) == len(registered)
        by_task = hub.ensemble(target, TransferOptions(strategy="task-retrieval"), register=False)
        by_module = hub.ensemble(target, TransferOptions(strategy="retrieval"), register=False)
        embedding = hub.dataset_embedding(load_dataset(target))
        cosine = {task: float(np.dot(embedding, hub.dataset_embedding(load_dataset(data / task)))) for task, _ in registered.values()}
    # One module a task, the k = 3 tasks in order of similarity; the plant task by its module with the best recorded accuracy.
    assert [registered[source.module_id][0] for source in by_task.sources] == sorted(set(cosine), key=lambda task: -cosine[task])
    assert [source.candidate.dev_acc for source in by_task.sources if registered[source.module_id][0] == "wn-isa-plant"] == [0.9]
    # retrieval ranks modules: the modules of one dataset tie, so the nearest task with three modules fills all k slots.
    nearest = sorted(registered, key=lambda module_id: (-cosine[registered[module_id][0]], module_id))[:3]
    assert [source.module_id for source in by_module.sources] == nearest
