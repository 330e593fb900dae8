"""Helpers shared by the tests: tiny random backbones with their tokenizer, and toy data they can read.

Test files import what they share from here (never from one another).
"""

from __future__ import annotations

import string
from pathlib import Path

import torch

from hub.datasets import Example, TaskCard, from_records

WORDS = [
    "yes",
    "no",
    "red",
    "green",
    "blue",
    "sky",
    "which",
    "is",
    "item",
    "answer",
    "options",
    "pick",
    "the",
    "color",
    "of",
    "grass",
    "cat",
    "an",
    "animal",
    "question",
]


def tiny_tokenizer():
    """A ~130-token WordPiece tokenizer (words of the tests, letters and digits); [SEP] doubles as EOS.

    A small vocabulary keeps the tiny models' output layers, and so the tests, fast.
    """
    from transformers import BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.punctuation, *string.digits, *string.ascii_lowercase]
    vocab += [f"##{c}" for c in string.ascii_lowercase + string.digits] + [word for word in WORDS if word not in vocab]
    return BertTokenizer(vocab={token: index for index, token in enumerate(vocab)}, eos_token="[SEP]", bos_token="[CLS]")


def tiny_backbone(kind: str, root: Path) -> Path:
    """A 2-layer random BERT / T5 / GPT-2 saved with `tiny_tokenizer` in root/kind."""
    from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    folder = root / kind
    if (folder / "config.json").is_file():
        return folder
    tokenizer = tiny_tokenizer()
    vocab, pad, eos = len(tokenizer), tokenizer.pad_token_id, tokenizer.sep_token_id
    torch.manual_seed(0)
    # BERT and GPT-2 get a wider init than their 0.02: at 0.02 a random 2-layer model is nearly constant
    # (the BERT pooler collapses), and a few steps of a small module barely move it.
    if kind == "bert":
        config = BertConfig(
            vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, initializer_range=0.2, pad_token_id=pad
        )
        model = BertModel(config)
        model.config.architectures = ["BertModel"]
    elif kind == "t5":
        config = T5Config(
            vocab_size=vocab,
            d_model=32,
            d_kv=16,
            d_ff=64,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=2,
            pad_token_id=pad,
            eos_token_id=eos,
            decoder_start_token_id=pad,
        )
        model = T5ForConditionalGeneration(config)
    elif kind == "gpt2":
        config = GPT2Config(
            vocab_size=vocab,
            n_embd=32,
            n_layer=2,
            n_head=2,
            n_positions=128,
            initializer_range=0.2,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=eos,
            pad_token_id=pad,
        )
        model = GPT2LMHeadModel(config)
    else:
        raise ValueError(kind)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def toy_dataset(size: int = 16):
    """A tiny multiple-choice task with a learnable rule (the answer is named in the question)."""
    colors = ["red", "green", "blue sky"]
    records = [{"text": f"which is {colors[i % 3]} ? item {i}", "choices": colors, "label": i % 3} for i in range(size)]
    return from_records(TaskCard("toy-colors", "multiple-choice QA", "multiple_choice"), {"train": records})


MIXED = [Example("is a cat an animal ?", ("yes", "no"), 0), Example("pick the color of grass", ("red", "blue sky", "green"), 2)]
