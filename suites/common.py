"""What every suite builder shares: the task card, sampling helpers, the split and the writer.

A builder turns a package's text into `Task`s with a seeded `random.Random` per task, and
`write_suite` writes them in the deltahub dataset format (hub/datasets.py): one folder per
task with `task.json` and `train/dev/test.jsonl`, plus the suite's README. Output is
byte-identical for a given input and seed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import random
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SIZES = {"train": 360, "dev": 64, "test": 200}
TOTAL = sum(SIZES.values())
SPLITS = ("train", "dev", "test")
N_CHOICES = 4
YES_NO = {"yes": "yes", "no": "no"}


@dataclass
class Task:
    """A built task: its card and its examples, test first (see `split`)."""

    name: str
    category: str
    format: str
    description: str
    labels: dict[str, str] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)

    def card(self) -> dict:
        card = {"name": self.name, "category": self.category, "format": self.format, "description": self.description}
        if self.labels:
            card["labels"] = self.labels
        return card


def input_key(example: dict) -> str:
    """What must not repeat within a task (nor so across splits): the input, with the pair's second text or the choices."""
    return "\t".join([example["text"], example.get("text_pair", ""), *sorted(example.get("choices", ()))])


def collect(
    rng: random.Random, candidates: Sequence, make: Callable[[object, int], dict | None], total: int = TOTAL, key: Callable[[dict], str] = input_key
) -> list[dict]:
    """Shuffle the candidates and make examples until `total`, skipping failures and repeated inputs (`key`: what must not repeat).

    `make` gets the candidate and the index of the example it would become, so that a builder
    can balance labels by position (even index: yes, odd: no; answer slot index % N_CHOICES).
    """
    order = list(candidates)
    rng.shuffle(order)
    seen: set[str] = set()
    out: list[dict] = []
    for candidate in order:
        if len(out) >= total:
            break
        example = make(candidate, len(out))
        if example is not None and key(example) not in seen:
            seen.add(key(example))
            out.append(example)
    return out


def balanced(rng: random.Random, by_label: dict[str, Sequence[str]], total: int = TOTAL) -> list[dict]:
    """Single-text classification with as many examples of each label: round-robin, so every split is balanced.

    A text listed under two labels is dropped from both (its label would be ambiguous).
    """
    counts: dict[str, int] = {}
    for texts in by_label.values():
        for text in set(texts):
            counts[text] = counts.get(text, 0) + 1
    pools = {}
    for label, texts in by_label.items():
        pool = sorted({text for text in texts if counts[text] == 1})
        rng.shuffle(pool)
        pools[label] = pool
    per_label = min(min(len(pool) for pool in pools.values()), -(-total // len(pools)))
    examples: list[dict] = []
    for index in range(per_label):
        block = [{"text": pool[index], "label": label} for label, pool in pools.items()]
        rng.shuffle(block)
        examples += block
    return examples[:total]


def multiple_choice(rng: random.Random, text: str, answer: str, distractors: Sequence[str], index: int) -> dict:
    """A multiple-choice example whose answer sits at slot index % N_CHOICES (answers spread evenly)."""
    choices = list(distractors)
    rng.shuffle(choices)
    choices.insert(index % N_CHOICES, answer)
    return {"text": text, "choices": choices, "label": index % N_CHOICES}


def pick_distinct(rng: random.Random, pool: Sequence[str], n: int, ok: Callable[[str], bool], tries: int = 200) -> list[str] | None:
    """n distinct strings of `pool` that pass `ok`, or None when `tries` draws do not find them."""
    chosen: list[str] = []
    for _ in range(tries):
        candidate = pool[rng.randrange(len(pool))]
        if candidate not in chosen and ok(candidate):
            chosen.append(candidate)
            if len(chosen) == n:
                return chosen
    return None


def split(examples: list[dict]) -> dict[str, list[dict]]:
    """Test first, then dev, then train; each scaled down alike when a task has fewer than TOTAL examples."""
    scale = min(1.0, len(examples) / TOTAL)
    n_test, n_dev = round(SIZES["test"] * scale), round(SIZES["dev"] * scale)
    return {"test": examples[:n_test], "dev": examples[n_test : n_test + n_dev], "train": examples[n_test + n_dev :]}


def task_rng(seed: int, name: str) -> random.Random:
    """Each task its own generator, so adding a task changes no other; str seeds hash with sha512, not PYTHONHASHSEED."""
    return random.Random(f"{seed}:{name}")


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def installed(package: str, how: str) -> importlib.metadata.Distribution:
    """The installed PyPI distribution whose files a builder reads, or a one-line error saying how to get it."""
    try:
        return importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit(f"error: the PyPI package {package} is not installed; {how}") from None


def dump_jsonl(path: Path, rows: Iterable[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows), encoding="utf-8")


@dataclass(frozen=True)
class SuiteText:
    """What a suite's README says besides its table: where the text comes from, how to rebuild it, its licence."""

    title: str
    intro: str
    source: str  # the package, its version and the sha256 of the input the builder read
    regenerate: str  # the commands
    license: str


def readme(tasks: Sequence[Task], splits: Sequence[dict[str, list[dict]]], text: SuiteText) -> str:
    rows = [
        f"| {task.name} | {task.category} | {task.format} | {len(task.labels) or N_CHOICES} | {len(parts['train'])} | {len(parts['dev'])} | {len(parts['test'])} |"
        for task, parts in zip(tasks, splits)
    ]
    return "\n".join(
        [
            f"# {text.title}",
            "",
            f"{len(tasks)} small tasks {text.intro}, in the deltahub dataset format (one directory per task: "
            "`task.json`, `train.jsonl`, `dev.jsonl`, `test.jsonl`). Splits share no input. #labels is the number "
            "of labels (classification, pair) or of choices (multiple_choice).",
            "",
            "| task | category | format | #labels/choices | train | dev | test |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            "## Source",
            "",
            text.source,
            "",
            "## Regenerate",
            "",
            "```",
            text.regenerate,
            "```",
            "",
            "The output is byte-identical for the same input and seed.",
            "",
            "## License",
            "",
            text.license,
            "",
        ]
    )


def write_suite(tasks: Sequence[Task], out: Path, text: SuiteText, extra_files: dict[str, str]) -> None:
    """Write every task folder, the README and `extra_files` (the licence texts); drop task folders no longer built."""
    names = {task.name for task in tasks}
    empty = [task.name for task in tasks if len(task.examples) < 3]
    if empty:
        raise SystemExit(f"error: too few examples for {', '.join(empty)}; is the input complete?")
    out.mkdir(parents=True, exist_ok=True)
    for old in sorted(out.iterdir()):
        if old.is_dir() and (old / "task.json").exists() and old.name not in names:
            shutil.rmtree(old)
    all_splits = []
    for task in tasks:
        parts = split(task.examples)
        all_splits.append(parts)
        folder = out / task.name
        folder.mkdir(exist_ok=True)
        (folder / "task.json").write_text(json.dumps(task.card(), ensure_ascii=False, sort_keys=True, indent=2) + "\n", encoding="utf-8")
        for name in SPLITS:
            dump_jsonl(folder / f"{name}.jsonl", parts[name])
    (out / "README.md").write_text(readme(tasks, all_splits, text), encoding="utf-8")
    for name, content in extra_files.items():
        (out / name).write_text(content, encoding="utf-8")
    for task in tasks:
        print(f"{task.name:24} {task.category:14} {task.format:16} {len(task.examples)}")
