"""The text-to-text formulations (seq2seq and causal) on tiny random T5 and GPT-2 with PEFT modules."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from helpers import MIXED, tiny_backbone, toy_dataset

from hub.backbones import formulation_for, load_base_model, resolve_base_model
from hub.datasets import Example
from hub.formulations.text_to_text import CausalFormulation, Seq2SeqFormulation
from hub.methods import get_method
from hub.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {kind: tiny_backbone(kind, root) for kind in ("t5", "gpt2")}


@pytest.fixture(scope="module")
def bases(tiny: dict[str, Path]):
    return {kind: (resolve_base_model(path), load_base_model(resolve_base_model(path))) for kind, path in tiny.items()}


def attached(bases, kind: str, method: str, **overrides):
    ref, base = bases[kind]
    chosen = get_method(method)
    model = chosen.attach(copy.deepcopy(base), chosen.default_config(ref, overrides))
    model.eval()
    return ref, model, formulation_for(ref)


def test_families_are_inferred_from_the_model_config(bases) -> None:
    assert bases["t5"][0].family.name == "seq2seq" and bases["gpt2"][0].family.name == "causal"
    assert isinstance(formulation_for(bases["t5"][0]), Seq2SeqFormulation)
    assert isinstance(formulation_for(bases["gpt2"][0]), CausalFormulation)


@pytest.mark.parametrize("kind", ["t5", "gpt2"])
def test_predictions_are_one_row_per_answer_token(bases, kind: str) -> None:
    ref, model, formulation = attached(bases, kind, "lora")
    batch = formulation.collate(MIXED)
    with torch.no_grad():
        predictions = formulation.predictions(model, batch)
    expected = [token for example in MIXED for token in formulation.answer_ids(example.answer_text)]
    tokenizer = formulation.tokenizer
    prefix = " " if kind == "gpt2" else ""
    assert expected == [
        token for example in MIXED for token in [*tokenizer(prefix + example.answer_text, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    ]
    assert predictions.gold.tolist() == expected
    assert predictions.log_probs.shape == (len(expected), model.config.vocab_size)
    assert torch.allclose(predictions.log_probs.exp().sum(-1), torch.ones(len(expected)), atol=1e-5)
    # Padding and batching change nothing: each example alone (no padding) gives the same rows.
    alone = torch.cat([formulation.predictions(model, formulation.collate([example])).log_probs for example in MIXED]).detach()
    assert torch.allclose(predictions.log_probs, alone, atol=1e-5)
    # The default loss is the mean token cross-entropy of the gold answers.
    loss = formulation.loss(model, batch)
    assert torch.isclose(loss, -predictions.log_probs.gather(1, predictions.gold[:, None]).mean(), atol=1e-6)


def test_causal_rows_predict_the_tokens_after_the_prompt(bases) -> None:
    _, model, formulation = attached(bases, "gpt2", "lora")
    example = MIXED[1]
    prompt = formulation.tokenizer(formulation.prompt(example))["input_ids"]
    answer = formulation.answer_ids(example.answer_text)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + answer])).logits[0]
        rows = formulation.predictions(model, formulation.collate([example])).log_probs
    positions = range(len(prompt) - 1, len(prompt) + len(answer) - 1)
    assert torch.allclose(rows, torch.log_softmax(logits[list(positions)], -1), atol=1e-5)


@pytest.mark.parametrize("kind", ["t5", "gpt2"])
@pytest.mark.parametrize("method", ["lora", "prefix"])
def test_choose_ranks_candidates_by_their_log_likelihood(bases, kind: str, method: str) -> None:
    _, model, formulation = attached(bases, kind, method, **({"num_virtual_tokens": 4} if method == "prefix" else {}))
    batch = formulation.collate(MIXED)
    with torch.no_grad():
        chosen = formulation.choose(model, batch)
        scores = formulation.candidate_scores(model, batch)
        # Each candidate's score is the total log-probability of its tokens, read off as if it were the gold answer.
        for index, example in enumerate(MIXED):
            for slot in range(len(example.choices)):
                as_gold = Example(example.text, example.choices, slot)
                rows = formulation.predictions(model, formulation.collate([as_gold]))
                total = rows.log_probs.gather(1, rows.gold[:, None]).sum()
                assert torch.isclose(scores[index, slot], total, atol=1e-4)
    assert chosen.shape == (2,) and all(0 <= int(c) < len(e.choices) for c, e in zip(chosen, MIXED, strict=True))
    assert scores[0, 2] == float("-inf"), "a missing candidate can never be chosen"
    assert chosen.tolist() == scores.argmax(-1).tolist()


def test_length_normalized_choice(bases) -> None:
    ref, model, _ = attached(bases, "gpt2", "lora")
    total = formulation_for(ref)
    mean = CausalFormulation(total.tokenizer, length_normalize=True)
    batch = total.collate(MIXED)
    with torch.no_grad():
        lengths = torch.tensor([len(total.answer_ids(c)) for c in MIXED[1].choices], dtype=torch.float)
        assert torch.allclose(mean.candidate_scores(model, batch)[1], total.candidate_scores(model, batch)[1] / lengths, atol=1e-5)


# Prefix tuning moves slowly at LoRA's learning rate (its prompt embeddings start at N(0, 1)).
LEARNING_RATES = {"lora": 1e-2, "prefix": 1e-1}


@pytest.mark.parametrize("kind", ["t5", "gpt2"])
@pytest.mark.parametrize("method", ["lora", "prefix"])
def test_training_lowers_the_answer_loss(bases, kind: str, method: str) -> None:
    _, model, formulation = attached(bases, kind, method)
    examples = toy_dataset().split("train")
    batch = formulation.collate(examples)
    with torch.no_grad():
        before = float(formulation.loss(model, batch))
    result = train(
        model, get_method(method), formulation, examples, (), TrainConfig(epochs=3, lr=LEARNING_RATES[method], batch_size=8, progress=False, device="cpu")
    )
    with torch.no_grad():
        after = float(formulation.loss(model, batch))
    assert result.steps == 6
    assert after < before - 0.3, (before, after)


@pytest.mark.parametrize("pre_tokenizer", ["byte-level", "metaspace"])
def test_causal_answers_are_tokenized_as_words_in_running_text(pre_tokenizer: str) -> None:
    """GPT-2-style byte-level BPE needs the answer's leading space; a SentencePiece-style tokenizer marks words itself."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = ["which is green ? answer: green", "pick the color of grass answer: red blue sky"] * 5
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    if pre_tokenizer == "byte-level":
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always")
        alphabet = []
    tokenizer.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "</s>"], initial_alphabet=alphabet))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", unk_token="<unk>", pad_token="</s>")
    formulation = CausalFormulation(fast)
    running = fast("answer: green", add_special_tokens=False)["input_ids"][len(fast("answer:", add_special_tokens=False)["input_ids"]) :]
    if pre_tokenizer == "byte-level":
        assert formulation.space == " "
    assert formulation.answer_ids("green") == [*running, fast.eos_token_id]
