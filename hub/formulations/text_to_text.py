"""Text-to-text backbones (the paper's setting): the output space is the vocabulary, scored per answer token.

An example becomes a prompt and a target:

    prompt = "<input text>\\noptions: (A) <choice 0> (B) <choice 1> ...\\nanswer:"
    target = the gold answer text (its tokens, then the tokenizer's EOS when it has one)

The candidates are listed for every example (label verbalizations of a classifier
as well as the choices of a multiple-choice task), as CrossFit / T0 prompts do;
pass `list_options=False` to leave them out.

* `predictions`: one row per gold answer token, teacher-forced: the log-softmax
  over the vocabulary at the position that predicts that token, with the token id
  as gold. Rows run example by example, token by token.
* `choose`: rank classification, as in the T5 / T0 papers: every (example,
  candidate) pair goes through one forward pass and the candidate whose tokens
  (EOS included) have the highest *total* log-likelihood given the prompt wins.
  `length_normalize=True` ranks by the mean per-token log-likelihood instead.

Seq2seq models (T5) get the prompt as encoder input and the target as `labels`
(the model shifts them right into decoder inputs). Causal LMs (GPT-2, Llama) get
`prompt + target` as one right-padded sequence (the target's text led by a space
where the tokenizer needs one to start a word); the rows are the positions that
predict the target tokens, so prompt and padding positions are masked out. The
tokenizer's `token_type_ids` are never passed (GPT-2 would add them to its
embeddings).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import nn

from ensembling.candidates import Rows
from hub.datasets import Example
from hub.formulations.base import Batch, Formulation

IGNORE = -100
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class TextToTextFormulation(Formulation):
    """Shared prompt building and answer tokenization of the seq2seq and causal formulations."""

    def __init__(self, tokenizer, max_length: int = 128, *, list_options: bool = True, length_normalize: bool = False, max_answer_length: int = 32) -> None:
        super().__init__(tokenizer, max_length)
        self.list_options = list_options
        self.length_normalize = length_normalize
        self.max_answer_length = max_answer_length
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        self._answers: dict[str, list[int]] = {}

    def prompt(self, example: Example) -> str:
        text = example.input_text
        if self.list_options:
            options = " ".join(f"({LETTERS[index % 26]}) {choice}" for index, choice in enumerate(example.choices))
            text = f"{text}\noptions: {options}"
        return f"{text}\nanswer:"

    def answer_ids(self, answer: str) -> list[int]:
        """The target's token ids: its tokens then EOS (when the tokenizer has one), cached per text."""
        if answer not in self._answers:
            ids = self.tokenizer(self._answer_text(answer), add_special_tokens=False)["input_ids"][: self.max_answer_length]
            if self.tokenizer.eos_token_id is not None:
                ids = [*ids[: self.max_answer_length - 1], self.tokenizer.eos_token_id]
            if not ids:
                raise ValueError(f"answer {answer!r} has no tokens")
            self._answers[answer] = ids
        return self._answers[answer]

    def _answer_text(self, answer: str) -> str:
        return answer

    def _prompt_budget(self, examples: Sequence[Example]) -> int:
        """How many tokens the prompt may take."""
        return self.max_length

    def collate(self, examples: Sequence[Example]) -> Batch:
        encoded = self.tokenizer([self.prompt(example) for example in examples], truncation=True, max_length=self._prompt_budget(examples))
        prompts = [list(ids) for ids in encoded["input_ids"]]
        inputs, gold_extras = self._encode(prompts, [self.answer_ids(example.answer_text) for example in examples])
        pairs = [(index, slot) for index, example in enumerate(examples) for slot in range(len(example.choices))]
        answers = [self.answer_ids(examples[index].choices[slot]) for index, slot in pairs]
        choice_inputs, choice_extras = self._encode([prompts[index] for index, _ in pairs], answers)
        return Batch(
            inputs=inputs,
            extras={
                **gold_extras,
                **{f"choice_{key}": value for key, value in {**choice_inputs, **choice_extras}.items()},
                "choice_row_pair": _row_pairs(answers),
                "owner": torch.tensor([index for index, _ in pairs]),
                "position": torch.tensor([slot for _, slot in pairs]),
                "gold": torch.tensor([example.label for example in examples]),
                "width": torch.tensor(max(len(example.choices) for example in examples)),
            },
            size=len(examples),
        )

    def _encode(self, prompts: list[list[int]], answers: list[list[int]]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(model keyword inputs, what else is needed to read the answer tokens) for prompt/answer pairs."""
        raise NotImplementedError

    def _token_log_probs(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(log_probs rows over the vocabulary, gold token ids) for the answer tokens of encoded pairs."""
        raise NotImplementedError

    def predictions(self, model: nn.Module, batch: Batch) -> Rows:
        log_probs, gold = self._token_log_probs(model, {**batch.inputs, **batch.extras})
        return Rows(log_probs=log_probs, gold=gold)

    def choose(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return self.candidate_scores(model, batch).argmax(dim=-1)

    def candidate_scores(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """(examples, max candidates) log-likelihood of each candidate (-inf where an example has fewer)."""
        inputs = {key[len("choice_") :]: value for key, value in batch.extras.items() if key.startswith("choice_")}
        log_probs, tokens = self._token_log_probs(model, inputs)
        token_scores = log_probs.gather(1, tokens[:, None]).squeeze(1)
        pair_of_row = inputs["row_pair"]
        pairs = batch.extras["owner"].shape[0]
        scores = token_scores.new_zeros(pairs).index_add(0, pair_of_row, token_scores)
        if self.length_normalize:
            lengths = token_scores.new_zeros(pairs).index_add(0, pair_of_row, torch.ones_like(token_scores))
            scores = scores / lengths
        grid = scores.new_full((batch.size, int(batch.extras["width"])), float("-inf"))
        return grid.index_put((batch.extras["owner"], batch.extras["position"]), scores)


class Seq2SeqFormulation(TextToTextFormulation):
    """Encoder-decoder models: prompt -> encoder, target -> labels (decoder inputs are the labels shifted right)."""

    def _encode(self, prompts: list[list[int]], answers: list[list[int]]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        input_ids = _pad(prompts, self.pad_id)
        return {"input_ids": input_ids, "attention_mask": _mask(prompts, input_ids.shape[1]), "labels": _pad(answers, IGNORE)}, {}

    def _token_log_probs(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        labels = inputs["labels"]
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], labels=labels).logits
        keep = labels != IGNORE
        return torch.log_softmax(logits[keep].float(), dim=-1), labels[keep]


class CausalFormulation(TextToTextFormulation):
    """Decoder-only models: `prompt + target` in one sequence; the positions before each target token predict it."""

    def __init__(self, tokenizer, max_length: int = 128, **options) -> None:
        super().__init__(tokenizer, max_length, **options)

        # The answer follows "answer:" in running text, so it is tokenized as a word after another word is:
        # byte-level BPE (GPT-2, Llama 3) needs the leading space ("Ġgreen"), while SentencePiece (Llama 2)
        # adds it itself and an explicit one would become an extra token.
        def ids(text: str) -> list[int]:
            return list(tokenizer(text, add_special_tokens=False)["input_ids"])

        running = ids("x a")[len(ids("x")) :]
        self.space = "" if ids(" a") != running and ids("a") == running else " "

    def _answer_text(self, answer: str) -> str:
        return self.space + answer

    def _prompt_budget(self, examples: Sequence[Example]) -> int:
        # prompt + the longest candidate must fit in max_length; the prompt gives way.
        longest = max(len(self.answer_ids(choice)) for example in examples for choice in example.choices)
        return max(self.max_length - longest, 2)

    def _encode(self, prompts: list[list[int]], answers: list[list[int]]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        sequences = [prompt + answer for prompt, answer in zip(prompts, answers, strict=True)]
        input_ids = _pad(sequences, self.pad_id)
        # target[b, t] is the token that position t predicts, or IGNORE outside the answer.
        target = torch.full_like(input_ids, IGNORE)
        for row, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
            target[row, len(prompt) - 1 : len(prompt) - 1 + len(answer)] = torch.tensor(answer)
        return {"input_ids": input_ids, "attention_mask": _mask(sequences, input_ids.shape[1])}, {"target": target}

    def _token_log_probs(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        input_ids, target = inputs["input_ids"], inputs["target"]
        keep = target != IGNORE
        # Only positions from the earliest answer-predicting one on need logits: a (pairs, length, vocabulary)
        # tensor over whole prompts would dominate memory when every candidate is scored.
        first = int(keep.int().argmax(dim=1).min())
        width = input_ids.shape[1] - first
        extra = {"logits_to_keep": width} if _keeps_logits(model) else {}
        logits = model(input_ids=input_ids, attention_mask=inputs["attention_mask"], **extra).logits
        # (Prompt tuning prepends virtual tokens to the logits too; counting from the end skips them.)
        logits = logits[:, -width:]
        keep, target = keep[:, first:], target[:, first:]
        return torch.log_softmax(logits[keep].float(), dim=-1), target[keep]


def _keeps_logits(model: nn.Module) -> bool:
    """Whether the (PEFT-wrapped) causal LM takes transformers' `logits_to_keep`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(row) for row in rows)
    return torch.tensor([row + [value] * (width - len(row)) for row in rows], dtype=torch.long)


def _mask(rows: list[list[int]], width: int) -> torch.Tensor:
    return torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows], dtype=torch.long)


def _row_pairs(answers: list[list[int]]) -> torch.Tensor:
    """For each answer-token row (in row-major order), the index of the pair it belongs to."""
    return torch.tensor([pair for pair, answer in enumerate(answers) for _ in answer], dtype=torch.long)
