"""How fast `adapters import` registers a tree of PEFT module folders, and how fast it finds them all already there.

    python benchmarks/import_speed.py [--folders 200] [--tasks 20] [--seed 0]

Builds `--folders` LoRA module folders (r=4) on the packaged MiniLM in a temporary folder: one
real module from `Hub.new_module("minilm", "lora", {"r": 4})` saved with `.save`, then copies
of it whose adapter_model.safetensors hold different random tensors (same names, shapes and
dtypes) and whose README.md is a model card (`huggingface_hub.ModelCard`, read as hub/cards.py
reads it) naming one of `--tasks` tasks and its category; the folders are spread over a nested
tree CATEGORY/TASK/module-NNNN. Then runs `adapters import ROOT --json` (the CLI entry point, a
fresh process) on an empty registry, and again on the same tree, where every folder is already
there. Prints the folder count, how many were imported, the wall time and modules per second of
each import; exits 1 when the JSON counts are not all imported, then all already there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CATEGORIES = ("taxonomy", "sentiment", "topic", "entailment")
WEIGHTS_FILE = "adapter_model.safetensors"


def build_tree(scratch: Path, root: Path, folders: int, tasks: int, seed: int) -> None:
    """`folders` module folders under root/CATEGORY/TASK/, each with its own random weights and a card naming its task."""
    import torch
    from huggingface_hub import ModelCard, ModelCardData
    from safetensors.torch import load_file, save_file

    from hub.api import Hub
    from hub.cards import CARD_FILE, HUB_TAG, OWN_KEY, read_card

    template = scratch / "template"
    with Hub(scratch) as hub:
        hub.new_module("minilm", "lora", {"r": 4}).save(template)
    base_model = json.loads((template / "adapter_config.json").read_text())["base_model_name_or_path"]
    tensors = load_file(template / WEIGHTS_FILE)
    generator = torch.Generator().manual_seed(seed)
    for i in range(folders):
        task = f"bench-task-{i % tasks:02d}"
        category = CATEGORIES[(i % tasks) % len(CATEGORIES)]
        folder = root / category / task / f"module-{i:04d}"
        shutil.copytree(template, folder)
        save_file({name: torch.randn(value.shape, generator=generator).to(value.dtype) for name, value in tensors.items()}, folder / WEIGHTS_FILE)
        data = ModelCardData(library_name="peft", base_model=base_model, datasets=[task], tags=["bench", HUB_TAG, "lora"], **{OWN_KEY: {"category": category}})
        ModelCard(f"---\n{data.to_yaml()}\n---\n\n# {task} (lora)\n\nA random LoRA module for the import benchmark.\n").save(folder / CARD_FILE)
    card = read_card(folder)
    if (card.task, card.category) != (task, category):
        raise SystemExit(f"the card of {folder} reads back as task {card.task!r}, category {card.category!r}")


def timed_import(executable: Path, root: Path, registry: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run([str(executable), "import", str(root), "--registry", str(registry), "--json"], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"adapters import exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return wall, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folders", type=int, default=200, help="module folders to import")
    parser.add_argument("--tasks", type=int, default=20, help="task names the folders are spread over")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    executable = Path(sys.executable).with_name("adapters")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        root = tmp / "modules"
        registry = tmp / "registry"
        started = time.perf_counter()
        build_tree(tmp / "scratch", root, args.folders, args.tasks, args.seed)
        print(f"built {args.folders} module folders over {args.tasks} tasks in {time.perf_counter() - started:.1f} s")
        subprocess.run([str(executable), "db", "upgrade", "--registry", str(registry)], check=True, capture_output=True)
        failures = []
        for label, expected_key in (("first import", "imported"), ("second import", "already_there")):
            wall, result = timed_import(executable, root, registry)
            folders = len(result["folders"])
            print(f"{label}: folders {folders}, imported {result['imported']}, already there {result['already_there']}, refused {result['refused']}")
            print(f"{label}: wall {wall:.2f} s, {folders / wall:.1f} modules/s")
            if folders != args.folders or result[expected_key] != args.folders:
                failures.append(f"{label}: expected {args.folders} {expected_key} of {args.folders} folders, got {result[expected_key]} of {folders}")
        for failure in failures:
            print(f"FAIL {failure}", file=sys.stderr)
        if failures:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
