"""Batched candidate scoring (`ModelEvaluator.predict_many`) gives the rows of scoring candidates one at a time.

Over every registered method on the packaged MiniLM cross-encoder and tiny random T5 (seq2seq)
and GPT-2 (causal): a group of candidates with different random tensors, scored in one vmapped
forward per scoring batch, against `predict` of each candidate alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import BACKBONES, MIXED, SMALL, noisy, tiny_backbone, toy_dataset

from ensembling.candidates import Candidate, Rows
from hub.evaluation import ModelEvaluator
from hub.methods import METHODS
from hub.trainable import TrainableModule

pytestmark = pytest.mark.usefixtures("one_thread")

CANDIDATES = 4
GROUP = 3  # a batched group of 3, then the last candidate alone (one at a time)


@pytest.fixture(scope="module")
def backbones(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {"minilm": "minilm", "t5": tiny_backbone("t5", root), "gpt2": tiny_backbone("gpt2", root)}


def scoring(module: TrainableModule) -> ModelEvaluator:
    """An evaluator on examples of 2 and 3 choices in batches of 2, so rows are -inf padded within and across batches."""
    examples = [*MIXED, *toy_dataset(3).split("train")]
    return ModelEvaluator(module.model, module.method, module.formulation, examples, batch_size=2)


def candidates(module: TrainableModule) -> list[Candidate]:
    return [Candidate(seed, "task", "category", f"{seed:064d}", noisy(module.tensors(), seed)) for seed in range(CANDIDATES)]


def assert_same_rows(batched: Rows, alone: Rows) -> None:
    finite = torch.isfinite(alone.log_probs)
    assert torch.equal(torch.isfinite(batched.log_probs), finite), "the same entries are -inf padding"
    assert torch.allclose(batched.log_probs[finite], alone.log_probs[finite], atol=1e-5, rtol=0)
    assert torch.equal(batched.gold, alone.gold)


CASES = [(method, backbone) for backbone in BACKBONES for method in METHODS]


@pytest.mark.parametrize(("method", "backbone"), CASES)
def test_a_batched_group_scores_as_each_candidate_alone(session_hub, backbones, method: str, backbone: str) -> None:
    module = session_hub.new_module(backbones[backbone], method, SMALL.get(method))
    group = candidates(module)
    one_at_a_time = scoring(module)
    alone = [one_at_a_time.predict(candidate) for candidate in group]
    batched = scoring(module).predict_many(group, group_size=GROUP)
    assert len(batched) == CANDIDATES
    for got, expected in zip(batched, alone):
        assert_same_rows(got, expected)
    assert all(not torch.equal(alone[0].log_probs, other.log_probs) for other in alone[1:]), "the candidates score differently"


def test_cached_candidates_are_not_rescored_and_new_ones_are_cached(session_hub) -> None:
    module = session_hub.new_module("minilm", "lora", SMALL["lora"])
    evaluator, group = scoring(module), candidates(module)
    first = evaluator.predict(group[0])
    live = module.tensors()
    rows = evaluator.predict_many([*group, group[1]], group_size=GROUP)
    assert rows[0] is first, "a cached candidate is read from the cache"
    assert rows[-1] is rows[1], "a candidate given twice is scored once"
    assert all(evaluator.predict(candidate) is row for candidate, row in zip(group, rows))
    after = module.tensors()
    assert all(torch.equal(after[name], live[name]) for name in live), "a batched group leaves the live module as it was"
