"""The dataset format: JSONL + card, CSV, in-memory records; errors name the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.datasets import TaskCard, from_records, load_dataset, write_dataset
from hub.errors import DatasetError


def write(root: Path, card: dict, **splits: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "task.json").write_text(json.dumps(card))
    for split, text in splits.items():
        (root / split).write_text(text)
    return root


CARD = {"name": "sent", "category": "sentiment", "format": "classification", "labels": {"pos": "positive", "neg": "negative"}}


def test_classification_pair_and_multiple_choice_share_one_form(tmp_path: Path) -> None:
    classification = load_dataset(write(tmp_path / "c", CARD, **{"train.jsonl": '{"text": "great", "label": "pos"}\n{"text": "bad", "label": "neg"}\n'}))
    assert classification.split("train")[1].choices == ("positive", "negative")
    assert classification.split("train")[1].label == 1
    pair = load_dataset(
        write(
            tmp_path / "p",
            {"name": "nli", "category": "entailment", "format": "pair", "labels": {"yes": "yes", "no": "no"}},
            **{"train.jsonl": '{"text": "a dog runs", "text_pair": "an animal moves", "label": "yes"}\n'},
        )
    )
    assert pair.split("train")[0].input_text == "a dog runs\nan animal moves"
    choice = load_dataset(
        write(
            tmp_path / "m",
            {"name": "qa", "category": "qa", "format": "multiple_choice"},
            **{"dev.jsonl": '{"text": "2+2?", "choices": ["3", "4"], "label": 1}\n'},
        )
    )
    assert choice.split("dev")[0].answer_text == "4"


def test_csv_and_records_load_to_the_same_fingerprint(tmp_path: Path) -> None:
    jsonl = load_dataset(write(tmp_path / "j", CARD, **{"train.jsonl": '{"text": "great", "label": "pos"}\n{"text": "bad", "label": "neg"}\n'}))
    csv = load_dataset(write(tmp_path / "c", CARD, **{"train.csv": "text,label\ngreat,pos\nbad,neg\n"}))
    records = from_records(TaskCard(**CARD), {"train": [{"text": "great", "label": "pos"}, {"text": "bad", "label": "neg"}]})
    assert jsonl.fingerprint == csv.fingerprint == records.fingerprint
    write_dataset(records, tmp_path / "w")
    assert load_dataset(tmp_path / "w").fingerprint == jsonl.fingerprint


def test_hugging_face_dataset_rows_load(tmp_path: Path) -> None:
    import datasets

    hf = datasets.DatasetDict({"train": datasets.Dataset.from_list([{"text": "great", "label": "pos"}])})
    assert from_records(TaskCard(**CARD), hf).split("train")[0].answer_text == "positive"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no examples"),
        ('{"text": "ok", "label": "pos"}\n{"text": "ok", "label": "maybe"}\n', "train.jsonl:2: label 'maybe'"),
        ('{"text": "ok", "label": "pos"}\n\n{not json\n', "train.jsonl:3:"),
        ('["a list"]\n', "train.jsonl:1: each line must be a JSON object"),
    ],
)
def test_bad_split_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message.replace("(", r"\(")):
        load_dataset(write(tmp_path / "d", CARD, **{"train.jsonl": content}))


def test_bad_cards_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no task card"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(DatasetError, match="format 'regression'"):
        load_dataset(write(tmp_path / "f", {**CARD, "format": "regression"}, **{"train.jsonl": "{}\n"}))


def test_fingerprint_ignores_file_order_of_keys_but_not_content(suite: Path) -> None:
    dataset = load_dataset(suite / "wn-isa-animal")
    assert dataset.fingerprint == load_dataset(suite / "wn-isa-animal").fingerprint
    assert dataset.fingerprint != load_dataset(suite / "wn-isa-plant").fingerprint


def test_few_shot_keeps_k_train_and_k_dev_per_label_from_train(suite: Path) -> None:
    dataset = load_dataset(suite / "wn-supersense-noun-a")
    shots = dataset.few_shot(4, seed=1)
    for split in ("train", "dev"):
        labels = [example.label for example in shots.split(split)]
        assert sorted(set(labels)) == list(range(len(dataset.card.labels)))
        assert all(labels.count(label) == 4 for label in set(labels))
    # The k-shot dev is drawn from train, disjoint from the k-shot train; the full dev split is gone.
    assert not set(shots.split("train")) & set(shots.split("dev"))
    assert set(shots.split("dev")) <= set(dataset.split("train"))
    assert shots.split("test") == dataset.split("test")
    assert "test" not in shots.without_test().splits
    assert shots.splits == dataset.few_shot(4, seed=1).splits
    assert shots.split("train") != dataset.few_shot(4, seed=2).split("train")
    with pytest.raises(DatasetError, match="fewer than 2 x --shots"):
        dataset.few_shot(10_000, seed=1)
