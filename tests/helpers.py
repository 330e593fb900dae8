"""Helpers shared by the tests; test files import what they share from here, never from one another.

- the CLI: the real `adapters` app run in-process, and a registry's snapshot to prove a failed command changed nothing;
- a registry server: `adapters serve` started on a free port and stopped, and a token of each scope;
- tiny random backbones (BERT, T5, GPT-2) with their tokenizer, and toy data they can read;
- the small registry of the transfer tests: LoRA modules on MiniLM for a few WordNet tasks and a tiny target;
- the checks of a task suite's files (cards, examples, canonical JSON lines);
- the PET methods' test sizes.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import string
import subprocess
import sys
import time
from pathlib import Path

import httpx
import torch
from typer.testing import CliRunner

from cli.main import app
from hub import Hub, load_dataset
from hub.datasets import Dataset, Example, TaskCard, from_records, write_dataset
from store.registry import Registry, resolve_location

# The CLI

runner = CliRunner()


def cli(*args: str):
    """`adapters ARGS...` exactly as given."""
    return runner.invoke(app, list(args))


def adapters(registry: Path | str, *args: str):
    return runner.invoke(
        app, [*args, "--registry", str(registry)] if args and args[0] not in ("index", "db", "token") else [*args[:2], "--registry", str(registry), *args[2:]]
    )


def snapshot(registry: Path) -> tuple:
    """Everything a failed command must leave as it was: rows, generation, blob files, and every file's bytes."""
    if not registry.exists():
        return ()
    files = file_bytes(registry)  # before opening it here, which may add SQLite's own side files
    opened = Registry(resolve_location(registry), create=False)
    try:
        modules = [(m.id, m.blob_digest, m.task, m.origin) for m in opened.catalog.list_modules()]
        return modules, opened.catalog.generation(), sorted(opened.blobs.digests()), files
    finally:
        opened.close()


def file_bytes(folder: Path) -> dict[str, str]:
    """The sha256 of every file under `folder` by relative path; SQLite's write-ahead log and its index (-wal, -shm) are
    the database's working state, whose bytes change with every reader, and are left out."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.endswith(("-wal", "-shm"))
    }


def one_line_error(result) -> str:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), result.output
    return lines[0]


# A registry server: a real `adapters serve` process

ADAPTERS = str(Path(sys.executable).with_name("adapters"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(registry: Path | str, log: Path, *extra: str, blobs: Path | None = None) -> tuple[str, subprocess.Popen]:
    """`adapters serve` on a free port, its output in `log`; returns once it answers."""
    port = free_port()
    args = [ADAPTERS, "serve", "--port", str(port), "--registry", str(registry), *(["--blobs", str(blobs)] if blobs else []), *extra]
    env = {key: value for key, value in os.environ.items() if not key.startswith("ADAPTERS_")}
    process = subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"adapters serve exited: {log.read_text()[-2000:]}")
        try:
            httpx.get(url + "/api/v1/info", timeout=2)
            return url, process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("adapters serve did not answer within 120 s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def make_tokens(registry: Registry) -> dict[str, str]:
    return {scope: registry.tokens.create(f"{scope}-user", scope)[1] for scope in ("read", "write", "admin")}


# Tiny backbones and toy data

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


# The small registry of the transfer tests

TARGET = "wn-isa-animal"
SOURCES = {"wn-isa-plant": 1, "wn-isa-artifact": 2, "wn-synonym-noun": 3, "wn-antonym-noun": 4}


def tiny(suite: Path, task: str, out: Path, size: int = 8) -> Path:
    full = load_dataset(suite / task)
    small = Dataset(full.card, {split: full.split(split)[:size] for split in ("train", "dev")}, "")
    write_dataset(small, out / task)
    return out / task


def random_module(hub: Hub, seed: int) -> tuple:
    module = hub.new_module("minilm", "lora", {"r": 4})
    generator = torch.Generator().manual_seed(seed)
    tensors = {name: torch.randn(t.shape, generator=generator) * 0.05 for name, t in module.tensors().items()}
    return module, tensors


def build_small_registry(suite: Path, root: Path, **own: object) -> tuple[Path, Path]:
    """Four source modules, one module of the target task itself (registered with `own`, e.g. metrics), and the tiny target dataset."""
    data = root / "data"
    target = tiny(suite, TARGET, data)
    with Hub(root / "registry") as hub:
        for task, seed in SOURCES.items():
            module, tensors = random_module(hub, seed)
            hub.register(module.method, module.config, tensors, load_dataset(tiny(suite, task, data)), module.backbone)
        module, tensors = random_module(hub, 99)
        hub.register(module.method, module.config, tensors, load_dataset(target), module.backbone, **own)  # the target's own
    return root / "registry", target


# Task suites' files

FORMATS = {"classification", "pair", "multiple_choice"}
SPLITS = ("train", "dev", "test")


def read_split(path: Path) -> list[dict]:
    raw = path.read_text(encoding="utf-8")
    assert raw.endswith("\n"), f"{path} must end with a newline"
    rows = []
    for line in raw.splitlines():
        row = json.loads(line)
        # the canonical serialization, so fingerprints are stable
        assert line == json.dumps(row, ensure_ascii=False, sort_keys=True), path
        rows.append(row)
    return rows


def check_card(card: dict, name: str) -> None:
    assert card["name"] == name
    assert isinstance(card["category"], str) and card["category"]
    assert card["format"] in FORMATS
    assert isinstance(card["description"], str) and card["description"]
    labels = card.get("labels") or {}
    if card["format"] == "multiple_choice":
        assert not labels
    else:
        assert len(labels) >= 2
        assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in labels.items())


def check_example(ex: dict, card: dict) -> None:
    fmt = card["format"]
    assert isinstance(ex["text"], str) and ex["text"].strip()
    if fmt == "multiple_choice":
        assert set(ex) == {"text", "choices", "label"}
        choices = ex["choices"]
        assert len(choices) >= 2 and len(set(choices)) == len(choices)
        assert all(isinstance(c, str) and c.strip() for c in choices)
        assert type(ex["label"]) is int and 0 <= ex["label"] < len(choices)
    else:
        expected = {"text", "label"} | ({"text_pair"} if fmt == "pair" else set())
        assert set(ex) == expected
        if fmt == "pair":
            assert isinstance(ex["text_pair"], str) and ex["text_pair"].strip()
        assert ex["label"] in card["labels"]


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# PET methods

BACKBONES = ("minilm", "t5", "gpt2")
# Smaller than the paper's sizes, to keep the suite fast; a method not named here runs with its defaults.
SMALL = {"lora": {"r": 4}, "prefix": {"num_virtual_tokens": 4}, "prompt": {"num_virtual_tokens": 4}, "adapter": {"adapter_size": 4}}


def noisy(tensors: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """The tensors moved off their init (a zero LoRA B or adapter up-projection would hide a lost tensor)."""
    generator = torch.Generator().manual_seed(seed)
    return {name: tensor + 0.05 * torch.randn(tensor.shape, generator=generator) for name, tensor in tensors.items()}
