"""End to end: benchmarks/transfer.py on a 3-task toy suite with tiny budgets."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

from hub.datasets import TaskCard, from_records, write_dataset

ROOT = Path(__file__).resolve().parents[1]

WORDS = {
    "toy-animal": (["dog", "cat", "horse", "cow", "sheep", "goat", "wolf", "fox", "bear", "lion"], ["rock", "chair", "cloud", "spoon", "river", "lamp", "brick", "glass", "paper", "stone"]),
    "toy-plant": (["oak", "rose", "fern", "moss", "pine", "tulip", "ivy", "palm", "reed", "lily"], ["car", "knife", "song", "shoe", "wall", "bell", "coin", "door", "rope", "sand"]),
    "toy-tool": (["hammer", "saw", "drill", "wrench", "chisel", "axe", "file", "rasp", "awl", "vise"], ["rain", "joy", "tiger", "salt", "moon", "snow", "duck", "milk", "wind", "fish"]),
}


def load_benchmark():
    spec = importlib.util.spec_from_file_location("transfer_benchmark", ROOT / "benchmarks" / "transfer.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write_toy_suite(root: Path) -> None:
    for name, (positive, negative) in WORDS.items():
        card = TaskCard(name, "toy", "pair", f"is it a {name[4:]}?", {"yes": "yes", "no": "no"})
        rows = [{"text": word, "text_pair": f"a kind of {name[4:]}", "label": "yes"} for word in positive] + [
            {"text": word, "text_pair": f"a kind of {name[4:]}", "label": "no"} for word in negative
        ]
        # train: 3 per label, dev: 4 in all, test: 3 per label... interleaved so every split has both labels.
        splits = {"train": rows[0:3] + rows[10:13], "dev": rows[3:5] + rows[13:15], "test": rows[5:8] + rows[15:18]}
        write_dataset(from_records(card, splits), root / name)


def test_transfer_benchmark_end_to_end(tmp_path, capsys):
    bench = load_benchmark()
    suite = tmp_path / "suite"
    write_toy_suite(suite)
    out = tmp_path / "out"
    strategies = ["random", "average", "group-average", "loss", "kl"]
    argv = [
        "--suite", str(suite), "--out", str(out), "--methods", "lora", "--shots", "1", "2", "--seeds", "0",
        "--strategies", *strategies, "--shuffled", "best", "--pool-k", "1",
        "--source-steps", "2", "--target-epochs", "1", "--target-min-steps", "1", "--target-max-steps", "2",
        "--score-examples", "4", "--reference-steps", "1", "--tune-steps", "1", "--device", "cpu",
    ]
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    assert "| strategy | method |" in printed

    with (out / "runs.csv").open() as handle:
        runs = list(csv.DictReader(handle))
    ran = sorted({row["strategy"] for row in runs})
    shuffled = [name for name in ran if name.startswith("shuffled:")]
    assert len(shuffled) == 1 and shuffled[0].split(":")[1] in {"loss", "kl"}
    assert set(ran) == set(strategies) | {"random-pool", shuffled[0]}
    targets, shots, seeds = 3, 2, 1
    assert len(runs) == targets * len(ran) * shots * seeds
    for strategy in ran:
        assert sum(row["strategy"] == strategy for row in runs) == targets * shots * seeds
    assert all(0.0 <= float(row["test_acc"]) <= 1.0 for row in runs)

    results = (out / "results.md").read_text()
    assert printed.strip().endswith(results.strip().splitlines()[-1].strip())
    random_row = next(line for line in results.splitlines() if line.startswith("| random | lora |"))
    assert "| 0.0 |" in random_row  # random's gain over itself
    for strategy in ran:
        assert f"| {strategy} | lora |" in results
    for name in ["average", "group-average", "loss", "kl", "random-pool", shuffled[0].replace(":", "-")]:
        assert (out / f"weights-{name}.png").stat().st_size > 0
    assert not (out / "weights-random.png").exists()

    # Every ensemble's weights sum to one over the other two tasks; the target is never a source.
    with (out / "weights.csv").open() as handle:
        weights = list(csv.DictReader(handle))
    groups: dict[tuple, list[dict]] = {}
    for row in weights:
        groups.setdefault((row["target"], row["shots"], row["seed"], row["strategy"]), []).append(row)
    for (target, *_rest), rows in groups.items():
        assert {row["source"] for row in rows} == set(WORDS) - {target}
        assert sum(float(row["weight"]) for row in rows) == pytest.approx(1.0, abs=1e-5)

    # A rerun reuses the trained sources.
    assert bench.main(argv + ["--strategies", "random", "--targets", "toy-plant", "--shots", "1"]) == 0
    with (out / "sources.csv").open() as handle:
        assert all(row["reused"] == "1" for row in csv.DictReader(handle))
