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
from helpers import FORMATS, SPLITS, check_card, check_example, files, read_split

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "suites" / "wordnet"
BUILDER = ROOT / "suites" / "build_wordnet.py"
WORDNET_DIR = Path("/usr/share/wordnet")


def task_dirs() -> list[Path]:
    return sorted(p.parent for p in SUITE.glob("*/task.json"))


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


@pytest.mark.skipif(not (WORDNET_DIR / "data.noun").is_file(), reason="WordNet 3.0 not installed (apt-get install wordnet-base)")
def test_rebuild_is_byte_identical(tmp_path: Path) -> None:
    out = tmp_path / "wordnet"
    subprocess.run([sys.executable, str(BUILDER), "--wordnet-dir", str(WORDNET_DIR), "--out", str(out), "--seed", "0"], check=True, capture_output=True)
    shipped, rebuilt = files(SUITE), files(out)
    assert sorted(rebuilt) == sorted(shipped)
    changed = [name for name in shipped if shipped[name] != rebuilt[name]]
    assert not changed, f"rebuild differs in {changed[:5]}"
