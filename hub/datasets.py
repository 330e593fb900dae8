"""The on-disk dataset format (a task card plus JSONL splits) and its loaders.

Every format (single text, text pair, multiple choice) becomes the same internal
form: an input text, a tuple of candidate answers and the index of the gold one.
A classifier's candidates are its label verbalizations, in card order.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from hub.errors import DatasetError
from store.errors import InvalidName
from store.records import TaskInfo

FORMATS = ("classification", "pair", "multiple_choice")
SPLITS = ("train", "dev", "test")
CARD_FILE = "task.json"


# A task card is exactly what the catalog records of a task: one class, no field-by-field copy.
TaskCard = TaskInfo


@dataclass(frozen=True)
class Example:
    """One example: an input, its candidate answers and the gold candidate's index."""

    text: str
    choices: tuple[str, ...]
    label: int
    text_pair: str | None = None

    @property
    def input_text(self) -> str:
        return self.text if self.text_pair is None else f"{self.text}\n{self.text_pair}"

    @property
    def answer_text(self) -> str:
        return self.choices[self.label]

    def canonical(self) -> str:
        return json.dumps(
            {"text": self.text, "text_pair": self.text_pair, "choices": list(self.choices), "label": self.label},
            ensure_ascii=False,
            sort_keys=True,
        )


@dataclass(frozen=True)
class Dataset:
    """A task card with its train/dev/test examples."""

    card: TaskCard
    splits: Mapping[str, tuple[Example, ...]]
    source: str = ""

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the canonical examples of every split, independent of file format."""
        digest = hashlib.sha256()
        for split in SPLITS:
            for example in self.splits.get(split, ()):
                digest.update(f"{split}\t{example.canonical()}\n".encode())
        return digest.hexdigest()

    def split(self, name: str) -> tuple[Example, ...]:
        examples = self.splits.get(name, ())
        if not examples:
            raise DatasetError(f"dataset {self.card.name!r} has no {name} split; add {name}.jsonl beside {CARD_FILE}")
        return examples

    @property
    def size(self) -> int:
        return sum(len(examples) for examples in self.splits.values())

    @property
    def split_sizes(self) -> dict[str, int]:
        """Examples per split, in the format's split order."""
        return {split: len(self.splits[split]) for split in SPLITS if split in self.splits}

    def few_shot(self, shots_per_label: int, seed: int) -> Dataset:
        """The k-shot sample of this task: `shots_per_label` train and as many dev examples per gold answer.

        Both come from the train split, disjoint, as CrossFit's few-shot files do (the paper's
        setting), so the full dev split is never read; the test split is kept for the final score.
        """
        if shots_per_label < 1:
            raise DatasetError(f"--shots must be at least 1, got {shots_per_label}")
        train = self.split("train")
        by_answer: dict[int, list[Example]] = {}
        for example in train:
            by_answer.setdefault(example.label, []).append(example)
        rng = random.Random(seed)
        chosen_train: list[Example] = []
        chosen_dev: list[Example] = []
        for label in sorted(by_answer):
            group = by_answer[label]
            if len(group) < 2 * shots_per_label:
                raise DatasetError(
                    f"dataset {self.card.name!r} has {len(group)} train examples with label {label}, fewer than "
                    f"2 x --shots {shots_per_label} (k train + k dev per label); lower --shots"
                )
            drawn = rng.sample(group, 2 * shots_per_label)
            chosen_train.extend(drawn[:shots_per_label])
            chosen_dev.extend(drawn[shots_per_label:])
        rng.shuffle(chosen_train)
        splits = {"train": tuple(chosen_train), "dev": tuple(chosen_dev)}
        if self.splits.get("test"):
            splits["test"] = self.splits["test"]
        return Dataset(self.card, splits, self.source)

    def without_test(self) -> Dataset:
        """A copy without its test split: what the arms of a comparison may read."""
        return Dataset(self.card, {name: examples for name, examples in self.splits.items() if name != "test"}, self.source)


def load_card(path: Path) -> TaskCard:
    """Read and check a task card (task.json)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"no task card at {path}; write a {CARD_FILE} with name, category, format and labels") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"cannot read task card {path}: {error}") from None
    if not isinstance(raw, dict):
        raise DatasetError(f"task card {path} must be a JSON object")
    missing = [key for key in ("name", "category", "format") if not raw.get(key)]
    if missing:
        raise DatasetError(f"task card {path} lacks {', '.join(missing)}; add {'it' if len(missing) == 1 else 'them'}")
    if raw["format"] not in FORMATS:
        raise DatasetError(f"task card {path} has format {raw['format']!r}; use one of {', '.join(FORMATS)}")
    labels = raw.get("labels") or {}
    if raw["format"] != "multiple_choice" and (not isinstance(labels, dict) or len(labels) < 2):
        raise DatasetError(f"task card {path} needs 'labels' mapping at least two label ids to their verbalizations")
    try:
        return TaskCard(
            name=str(raw["name"]),
            category=str(raw["category"]),
            format=raw["format"],
            description=str(raw.get("description", "")),
            labels={str(key): str(value) for key, value in labels.items()},
        )
    except InvalidName as error:
        raise DatasetError(f"task card {path}: {error}; rename it there") from None


def example_from_record(record: Mapping[str, Any], card: TaskCard) -> Example:
    """Turn one raw record (a JSONL object, a CSV row, a `datasets` row) into an Example."""
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("'text' must be a non-empty string")
    if card.format == "multiple_choice":
        choices = record.get("choices")
        if isinstance(choices, str):
            choices = json.loads(choices)
        if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) for c in choices):
            raise ValueError("'choices' must be a list of at least two strings")
        label = record.get("label")
        if isinstance(label, str) and label.strip().lstrip("-").isdigit():
            label = int(label)
        if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < len(choices):
            raise ValueError(f"'label' must be an index into choices (0..{len(choices) - 1})")
        return Example(text=text, choices=tuple(choices), label=label)
    label = record.get("label")
    keys = list(card.labels)
    if str(label) not in card.labels:
        raise ValueError(f"label {label!r} is not one of the card's labels ({', '.join(keys)})")
    text_pair = None
    if card.format == "pair":
        text_pair = record.get("text_pair")
        if not isinstance(text_pair, str) or not text_pair.strip():
            raise ValueError("'text_pair' must be a non-empty string for a pair task")
    return Example(text=text, choices=tuple(card.labels.values()), label=keys.index(str(label)), text_pair=text_pair)


def load_jsonl_split(path: Path, card: TaskCard) -> tuple[Example, ...]:
    """Read one JSONL split; a bad line is named by its number."""
    examples = []
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise ValueError("each line must be a JSON object")
                    examples.append(example_from_record(record, card))
                except (ValueError, TypeError) as error:
                    raise DatasetError(f"{path}:{number}: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"cannot read {path}: {error}") from None
    if not examples:
        raise DatasetError(f"{path} holds no examples; add one JSON example a line")
    return tuple(examples)


def load_csv_split(path: Path, card: TaskCard) -> tuple[Example, ...]:
    """Read one CSV split with a header row (text, [text_pair], [choices as JSON], label)."""
    examples = []
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    examples.append(example_from_record(row, card))
                except (ValueError, TypeError) as error:
                    raise DatasetError(f"{path}:{number}: {error}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f"cannot read {path}: {error}") from None
    if not examples:
        raise DatasetError(f"{path} holds no examples; add a header row and one example a row")
    return tuple(examples)


def load_dataset(path: str | Path) -> Dataset:
    """Load a dataset directory: task.json plus train/dev/test as .jsonl or .csv."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"dataset {root} is not a directory; point at the folder holding {CARD_FILE} and the split files")
    card = load_card(root / CARD_FILE)
    splits: dict[str, tuple[Example, ...]] = {}
    for split in SPLITS:
        if (root / f"{split}.jsonl").exists():
            splits[split] = load_jsonl_split(root / f"{split}.jsonl", card)
        elif (root / f"{split}.csv").exists():
            splits[split] = load_csv_split(root / f"{split}.csv", card)
    if not splits:
        raise DatasetError(f"dataset {root} has no split files; add train.jsonl (and dev.jsonl, test.jsonl)")
    return Dataset(card=card, splits=splits, source=str(root.resolve()))


def from_records(card: TaskCard, splits: Mapping[str, Iterable[Mapping[str, Any]]], source: str = "") -> Dataset:
    """Build a Dataset from in-memory records, e.g. a Hugging Face `DatasetDict` (split name -> rows)."""
    loaded: dict[str, tuple[Example, ...]] = {}
    for split, rows in splits.items():
        if split not in SPLITS:
            continue
        try:
            loaded[split] = tuple(example_from_record(row, card) for row in rows)
        except (ValueError, TypeError) as error:
            raise DatasetError(f"{split} split of {card.name!r}: {error}") from None
    if not any(loaded.values()):
        raise DatasetError(f"dataset {card.name!r} has no examples in any of {', '.join(SPLITS)}")
    return Dataset(card=card, splits=loaded, source=source)


def write_dataset(dataset: Dataset, root: Path) -> None:
    """Write a dataset in the on-disk format (used to save few-shot subsets and test data)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / CARD_FILE).write_text(json.dumps(dataset.card.to_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    label_ids = list(dataset.card.labels)
    for split, examples in dataset.splits.items():
        lines = []
        for example in examples:
            record: dict[str, Any] = {"text": example.text}
            if dataset.card.format == "multiple_choice":
                record.update(choices=list(example.choices), label=example.label)
            else:
                record["label"] = label_ids[example.label]
                if example.text_pair is not None:
                    record["text_pair"] = example.text_pair
            lines.append(json.dumps(record, ensure_ascii=False, sort_keys=True))
        (root / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def deterministic_sample(examples: Sequence[Example], size: int) -> list[Example]:
    """Up to `size` examples chosen by content hash, so the sample ignores file order."""
    keyed = sorted(examples, key=lambda example: hashlib.sha256(example.canonical().encode()).hexdigest())
    return keyed[:size]
