"""The main job: a short, real walk through deltahub on the embedded defaults (CPU, a few minutes).

It creates a fresh registry, trains small LoRA modules on a few WordNet tasks with
the packaged all-MiniLM-L6-v2, pushes them with the `adapters` CLI, and searches
for the modules closest to a task the registry has never seen.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from hub import Hub
from hub.training import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "suites" / "wordnet"
SOURCES = ("wn-supersense-noun-a", "wn-supersense-verb-a", "wn-isa-animal", "wn-definition-noun")
NEW_TASK = "wn-supersense-noun-c"
console = Console()


def adapters(*args: str, registry: Path) -> None:
    """Run the real CLI, showing the command as a user would type it."""
    command = ["adapters", *args, "--registry", str(registry)]
    console.print(f"\n[bold]$ {shlex.join(command)}[/]")
    executable = Path(sys.executable).with_name("adapters")
    subprocess.run([str(executable), *command[1:]], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "walkthrough", help="where the registry and modules go (recreated)")
    parser.add_argument("--steps", type=int, default=40, help="training steps per source module")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    shutil.rmtree(args.out, ignore_errors=True)
    registry, modules = args.out / "registry", args.out / "modules"
    started = time.perf_counter()

    console.rule("1. train small LoRA modules on a few tasks (Python API)")
    with Hub(registry) as hub:
        for task in SOURCES:
            module = hub.new_module("minilm", "lora")
            result = hub.train(module, SUITE / task, TrainConfig(epochs=1, max_steps=args.steps, batch_size=8))
            module.save(modules / task)
            console.print(f"{task:24} dev acc {result.best_dev:.3f}  test acc {result.test:.3f}  ({result.steps} steps)")
            (modules / task / "test_acc").write_text(f"{result.test:.4f}")

    console.rule("2. push them to the registry (CLI)")
    for task in SOURCES:
        accuracy = (modules / task / "test_acc").read_text()
        adapters("push", str(modules / task), "--dataset", str(SUITE / task), "--metric", f"test_acc={accuracy}", "--tag", "walkthrough", registry=registry)
    adapters("list", registry=registry)

    console.rule(f"3. a new task arrives ({NEW_TASK}): which modules are related?")
    adapters("search", str(SUITE / NEW_TASK), "--top-k", "4", registry=registry)
    console.print(f"\ndone in {time.perf_counter() - started:.0f} s; registry at {registry}")


if __name__ == "__main__":
    main()
