"""The main job: a short, real walk through deltahub on the embedded defaults (CPU, a few minutes).

It creates a fresh registry, trains LoRA modules on a few WordNet tasks with the
packaged all-MiniLM-L6-v2 until their dev accuracy stops improving (the best dev
checkpoint is kept, as the paper's sources are) and pushes them with the `adapters`
CLI. Then a task the registry has never seen arrives with only a few examples per
label (its k-shot sample: k train + k dev examples per label): it searches for
related modules, composes them once into an init (the default strategy, task-retrieval,
averages one module of each of the three tasks nearest the new one),
and trains the new task from that init and from the default (random) init with the same
k-shot data, budget, early stopping and seed, printing both test scores side by side.
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

from hub import DEFAULT_STRATEGY, NO_TRANSFER, Hub, load_dataset
from hub.training import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "suites" / "wordnet"
SOURCES = ("wn-supersense-noun-a", "wn-supersense-verb-a", "wn-definition-noun")
SOURCE_LR = 2e-3  # as the transfer benchmark; in 60 steps MiniLM's LoRA gets well above chance on these tasks at this rate
NEW_TASK = "wn-supersense-noun-c"
# The new task's training budget, the transfer benchmark's converged one: the default init gets room to finish
# learning (patience counts only after 60 steps), so the comparison is of models, not of head starts.
TARGET_BUDGET = (
    "--lr",
    "2e-3",
    "--epochs",
    "200",
    "--max-steps",
    "200",
    "--eval-every",
    "10",
    "--patience",
    "5",
    "--min-steps",
    "60",
    "--batch-size",
    "8",
    "--seed",
    "0",
)
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
    parser.add_argument("--steps", type=int, default=60, help="most training steps per source module (early stopping on dev)")
    parser.add_argument("--shots", type=int, default=4, help="examples per label of the new task")
    parser.add_argument("--strategy", default=DEFAULT_STRATEGY, help="task-similarity strategy for the new task's init")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    shutil.rmtree(args.out, ignore_errors=True)
    registry, modules = args.out / "registry", args.out / "modules"
    started = time.perf_counter()

    console.rule("1. train small LoRA modules on a few tasks (Python API)")
    with Hub(registry) as hub:
        for task in SOURCES:
            module = hub.new_module("minilm", "lora")
            config = TrainConfig(epochs=args.steps, max_steps=args.steps, eval_every=20, patience=2, lr=SOURCE_LR, batch_size=8)
            result = hub.train(module, SUITE / task, config)
            module.save(modules / task)
            chance = 1 / len(load_dataset(SUITE / task).split("dev")[0].choices)
            console.print(
                f"{task:24} dev acc {result.best_dev:.3f} (chance {chance:.3f})  test acc {result.test:.3f}  ({result.steps} steps, best at {result.best_step})"
            )
            (modules / task / "test_acc").write_text(f"{result.test:.4f}")

    console.rule("2. push them to the registry (CLI)")
    for task in SOURCES:
        accuracy = (modules / task / "test_acc").read_text()
        adapters("push", str(modules / task), "--dataset", str(SUITE / task), "--metric", f"test_acc={accuracy}", "--tag", "walkthrough", registry=registry)
    adapters("list", registry=registry)

    console.rule(f"3. a new task arrives ({NEW_TASK}): which modules are related?")
    adapters("search", str(SUITE / NEW_TASK), "--top-k", "4", registry=registry)

    console.rule(f"4. compose the related modules into an init ({args.strategy})")
    # On the k-shot sample step 5 trains on, under step 5's budget (which a strategy that trains, e.g. guarded, decides under).
    adapters(
        "ensemble", str(SUITE / NEW_TASK), "--strategy", args.strategy, "--shots", str(args.shots), *TARGET_BUDGET, "--plot", str(args.out / "weights.png"),
        registry=registry,
    )  # fmt: skip
    listed = json.loads(subprocess.run([str(Path(sys.executable).with_name("adapters")), "list", "--json", "--registry", str(registry)],
                                       check=True, stdout=subprocess.PIPE, text=True).stdout)  # fmt: skip
    init = str(max(module["id"] for module in listed if module["origin"] == "ensemble"))

    console.rule(f"5. train the new task on {args.shots} examples per label: from that init (module {init}) vs from random")
    budget = ("--shots", str(args.shots), *TARGET_BUDGET, "--json")
    scores = {name: json.loads(adapters("train", str(SUITE / NEW_TASK), "--init", name, *budget, registry=registry)) for name in (init, NO_TRANSFER)}
    table = Table(title=f"{NEW_TASK}, {args.shots} shots per label, same budget and seed")
    for column in ("init", "train examples", "steps", "dev acc", "test acc"):
        table.add_column(column, justify="left" if column == "init" else "right")
    for name, summary in scores.items():
        label = f"module {name} ({args.strategy})" if name == init else name
        table.add_row(label, str(summary["train_examples"]), str(summary["steps"]), f"{summary['dev_acc']:.3f}", f"{summary['test_acc']:.3f}")
    console.print(table)
    gain = scores[init]["test_acc"] - scores[NO_TRANSFER]["test_acc"]
    console.print(
        f"transfer gain over random: {100 * gain:+.1f} points of test accuracy (one target, one seed: an illustration; weights plot: {args.out / 'weights.png'})"
    )
    console.print(f"\ndone in {time.perf_counter() - started:.0f} s; registry at {registry}")


if __name__ == "__main__":
    main()
