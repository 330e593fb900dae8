"""Checks of the shipped WordNet 3.0 task suite (suites/wordnet).

The suite is read with plain json, so no WordNet install is needed; the
rebuild test runs only where the Debian package wordnet-base is installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "suites" / "wordnet"
BUILDER = ROOT / "suites" / "build_wordnet.py"
WORDNET_DIR = Path("/usr/share/wordnet")
FORMATS = {"classification", "pair", "multiple_choice"}
SPLITS = ("train", "dev", "test")


def task_dirs() -> list[Path]:
    return sorted(p.parent for p in SUITE.glob("*/task.json"))


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


def test_suite_is_valid() -> None:
    dirs = task_dirs()
    assert len(dirs) >= 24
    cards = []
    for d in dirs:
        card = json.loads((d / "task.json").read_text(encoding="utf-8"))
        check_card(card, d.name)
        cards.append(card)
        seen_rows: dict[str, str] = {}
        seen_inputs: dict[str, str] = {}
        for split in SPLITS:
            rows = read_split(d / f"{split}.jsonl")
            assert rows, f"{d.name}/{split} is empty"
            for ex in rows:
                check_example(ex, card)
                row = json.dumps(ex, sort_keys=True)
                inp = ex["text"] + "\t" + ex.get("text_pair", "")
                for seen, key in ((seen_rows, row), (seen_inputs, inp)):
                    other = seen.setdefault(key, split)
                    assert other == split, f"{d.name}: {key!r} in {other} and {split}"
    assert {c["format"] for c in cards} == FORMATS
    assert len({c["category"] for c in cards}) >= 4
    readme = (SUITE / "README.md").read_text(encoding="utf-8")
    assert all(f"| {d.name} |" in readme for d in dirs)
    assert "Princeton University" in (SUITE / "LICENSE-WordNet").read_text(encoding="utf-8")


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.skipif(not (WORDNET_DIR / "data.noun").is_file(), reason="WordNet 3.0 not installed (apt-get install wordnet-base)")
def test_rebuild_is_byte_identical(tmp_path: Path) -> None:
    out = tmp_path / "wordnet"
    subprocess.run([sys.executable, str(BUILDER), "--wordnet-dir", str(WORDNET_DIR), "--out", str(out), "--seed", "0"], check=True, capture_output=True)
    shipped, rebuilt = files(SUITE), files(out)
    assert sorted(rebuilt) == sorted(shipped)
    changed = [name for name in shipped if shipped[name] != rebuilt[name]]
    assert not changed, f"rebuild differs in {changed[:5]}"
