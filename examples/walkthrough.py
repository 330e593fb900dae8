"""The main job: a short, real walk through deltahub on the embedded defaults (CPU, a few minutes).

It creates a fresh registry, trains small LoRA modules on a few WordNet tasks with
the packaged all-MiniLM-L6-v2 and pushes them with the `adapters` CLI. Then a task
the registry has never seen arrives with only a few examples per label: it searches
for related modules, composes them into an init with a task-similarity strategy,
and trains the new task from that init and from the default (random) init with the
same budget, printing both test scores side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hub import Hub
from hub.training import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "suites" / "wordnet"
SOURCES = ("wn-supersense-noun-a", "wn-supersense-noun-b", "wn-supersense-verb-a", "wn-isa-animal", "wn-definition-noun")
NEW_TASK = "wn-supersense-noun-c"
console = Console()


def adapters(*args: str, registry: Path) -> str:
    """Run the real CLI, showing the command as a user would type it; return what it printed."""
    command = ["adapters", *args, "--registry", str(registry)]
    console.print(f"\n[bold]$ {shlex.join(command)}[/]")
    executable = Path(sys.executable).with_name("adapters")
    completed = subprocess.run([str(executable), *command[1:]], check=True, stdout=subprocess.PIPE, text=True)
    print(completed.stdout, end="")
    return completed.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "walkthrough", help="where the registry and modules go (recreated)")
    parser.add_argument("--steps", type=int, default=40, help="training steps per source module")
    parser.add_argument("--shots", type=int, default=4, help="examples per label of the new task")
    parser.add_argument("--strategy", default="el2n", help="task-similarity strategy for the new task's init")
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

    console.rule(f"4. compose the related modules into an init ({args.strategy})")
    adapters("ensemble", str(SUITE / NEW_TASK), "--strategy", args.strategy, "--plot", str(args.out / "weights.png"), registry=registry)

    console.rule(f"5. train the new task on {args.shots} examples per label: from the ensemble vs from random")
    budget = ("--shots", str(args.shots), "--epochs", "8", "--batch-size", "8", "--seed", "0", "--json")
    scores = {init: json.loads(adapters("train", str(SUITE / NEW_TASK), "--init", init, *budget, registry=registry)) for init in (args.strategy, "random")}
    table = Table(title=f"{NEW_TASK}, {args.shots} shots per label, same budget and seed")
    for column in ("init", "train examples", "steps", "dev acc", "test acc"):
        table.add_column(column, justify="left" if column == "init" else "right")
    for init, summary in scores.items():
        table.add_row(init, str(summary["train_examples"]), str(summary["steps"]), f"{summary['dev_acc']:.3f}", f"{summary['test_acc']:.3f}")
    console.print(table)
    gain = scores[args.strategy]["test_acc"] - scores["random"]["test_acc"]
    console.print(f"transfer gain over random: {100 * gain:+.1f} points of test accuracy (weights plot: {args.out / 'weights.png'})")
    console.print(f"\ndone in {time.perf_counter() - started:.0f} s; registry at {registry}")


if __name__ == "__main__":
    main()
