"""A lab-scale registry: hundreds of LoRA modules of many kinds of task, with what real registries also hold.

    python benchmarks/lab_pool.py build                 # resumable; registry in /root/deltahub-runs/lab-pool/registry
    python benchmarks/lab_pool.py check                 # the manifest against the registry, one line per problem
    python benchmarks/lab_pool.py plan                  # what `build` trains, in order, and how far it got

Every task of the suites below gets, on the default base model (minilm), round by round (shuffled and duplicate
share the last round, task by task):

| kind | what it is | tags |
| --- | --- | --- |
| source | trained as the transfer benchmark trains its sources (seed 0, best dev checkpoint) | the benchmark's source tag |
| early | the same run's checkpoint after its first evaluation interval, best or not | junk |
| undertrained | as many steps at a twentieth of the learning rate | junk |
| shuffled | trained to its best dev checkpoint on train and dev labels shuffled across examples | junk |
| duplicate | the source's training under seed 1 (a second run of the same task) | |

Each module's card carries `lab-pool`, `lab-kind:<kind>`, `lab-seed:<seed>` and `lab-entry:<task>/<kind>/<seed>`
(the last makes a rerun adopt a module that was registered just before a crash instead of training it again).
The manifest (task, suite, kind, seed, module id, digest, base model, dev accuracy on the true dev split
against chance, steps, seconds) is rewritten atomically after every module and committed to git; the
registry is not. `build` checks the whole manifest against the registry before it trains anything: a row
whose module is missing, whose digest differs or whose base model differs stops it with one line naming
the module, and nothing is registered.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.transferbench.pool import (  # noqa: E402
    DEFAULT_MANIFEST,
    DEFAULT_REGISTRY,
    ERRORS,
    JUNK,
    KINDS,
    SUITES,
    check_manifest,
    error_line,
    load_suites,
    read_manifest,
    write_manifest,
)
from benchmarks.transferbench.settings import STANDARD, Settings  # noqa: E402
from benchmarks.transferbench.sources import chance_of, source_config  # noqa: E402

SEEDS = {"source": 0, "early": 0, "undertrained": 0, "shuffled": 0, "duplicate": 1}
# The two costly kinds that come last share a round, task by task, so a pool cut short holds both.
ROUNDS = (("source",), ("early",), ("undertrained",), ("shuffled", "duplicate"))
UNDERTRAINED_LR_DIVISOR = 20
METHOD = "lora"


@dataclass(frozen=True)
class Entry:
    task: str
    suite: str
    kind: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.task}/{self.kind}/{self.seed}"


def lab_settings(registry: Path, device: str = "cpu") -> Settings:
    """The standard run's source budget (so the pool's sources are the benchmark's sources)."""
    budget = {key: STANDARD[key] for key in ("source_max_steps", "source_patience") if key in STANDARD}
    return Settings(suite=ROOT / "suites", out=registry.parent, registry=registry, device=device, **budget)


def plan(tasks: dict[str, tuple[str, object]], kinds: Sequence[str] = KINDS) -> list[Entry]:
    """Round by round (ROUNDS); within a round the suites take turns, so a pool cut short still spans every suite."""
    by_suite: dict[str, list[str]] = {}
    for name, (suite, _) in tasks.items():
        by_suite.setdefault(suite, []).append(name)
    turns: list[str] = []
    for rank in range(max(map(len, by_suite.values()), default=0)):
        turns += [names[rank] for names in by_suite.values() if rank < len(names)]
    rounds = [[kind for kind in round_ if kind in kinds] for round_ in ROUNDS]
    return [Entry(name, tasks[name][0], kind, SEEDS[kind]) for round_ in rounds for name in turns for kind in round_]


def shuffled_labels(examples: Sequence, seed: int) -> list:
    """The same inputs with their gold indices permuted across examples (a classifier's label ids, a choice slot)."""
    labels = [example.label for example in examples]
    random.Random(seed).shuffle(labels)
    return [replace(example, label=label) for example, label in zip(examples, labels)]


def train_entry(hub, data, entry: Entry, settings: Settings) -> tuple[dict, object, dict[str, float]]:
    """Train one module of the plan; its dev accuracy is always read on the task's true dev sample."""
    from hub.datasets import deterministic_sample
    from hub.training import evaluate, resolve_device, train

    started = time.perf_counter()
    dev = deterministic_sample(data.split("dev"), settings.source_dev_cap)
    train_examples, select_on = list(data.split("train")), dev
    config = source_config(settings, seed=entry.seed)
    if entry.kind in ("early", "undertrained"):
        # No dev to select on: `train` then keeps the last evaluated state, the checkpoint after the first interval.
        select_on = ()
        config = replace(config, max_steps=settings.source_eval_every)
        if entry.kind == "undertrained":
            config = replace(config, lr=settings.source_lr / UNDERTRAINED_LR_DIVISOR)
    elif entry.kind == "shuffled":
        train_examples, select_on = shuffled_labels(train_examples, entry.seed), shuffled_labels(dev, entry.seed + 1)
    module = hub.new_module(settings.base_model, METHOD)
    result = train(module.model, module.method, module.formulation, train_examples, select_on, config)
    dev_acc = evaluate(module.model, module.formulation, dev, device=resolve_device(settings.device))
    metrics = {"dev_acc": dev_acc, "steps": result.steps, "best_step": result.best_step, "train_s": time.perf_counter() - started, "chance": chance_of(dev)}
    return {key: value.cpu() for key, value in module.tensors().items()}, module, metrics


def tags_of(entry: Entry, settings: Settings) -> tuple[str, ...]:
    tags = ["lab-pool", f"lab-kind:{entry.kind}", f"lab-seed:{entry.seed}", f"lab-entry:{entry.key}"]
    if entry.kind == "source":
        tags += [settings.source_tag, "transfer-benchmark"]  # the transfer benchmark reuses it as this task's source
    if entry.kind in JUNK:
        tags.append("junk")
    return tuple(tags)


def row_of(entry: Entry, record, metrics: dict[str, float]) -> dict[str, str]:
    return {
        "task": entry.task, "suite": entry.suite, "kind": entry.kind, "seed": str(entry.seed), "module_id": str(record.id),
        "digest": record.blob_digest, "base_model": record.base_model, "dev_acc": f"{metrics['dev_acc']:.4f}",
        "chance": f"{metrics['chance']:.4f}", "steps": str(int(metrics["steps"])), "best_step": str(int(metrics["best_step"])),
        "seconds": f"{metrics['train_s']:.1f}",
    }  # fmt: skip


def adopt(hub, entry: Entry):
    """The module a crashed run registered for this entry before it could write the manifest, if any."""
    found = [record for record in hub.list(task=entry.task, method=METHOD) if f"lab-entry:{entry.key}" in record.tags]
    return min(found, key=lambda record: record.id) if found else None


def build(
    registry: Path,
    manifest: Path,
    suites_root: Path,
    suites: Sequence[str],
    limit: int | None = None,
    kinds: Sequence[str] = KINDS,
    device: str = "cpu",
    log=print,
) -> list[dict[str, str]]:
    """Train and register what the plan still lacks, in plan order, after checking the whole manifest against the registry."""
    from hub import Hub

    settings = lab_settings(registry, device)
    tasks = load_suites(suites_root, suites)
    rows = read_manifest(manifest)
    registry.mkdir(parents=True, exist_ok=True)
    Hub.upgrade(registry)  # a build resumed by a newer deltahub brings the pool's schema along
    with Hub(registry) as hub:
        check_manifest(hub, rows, settings.base_model)
        done = {f"{row['task']}/{row['kind']}/{row['seed']}" for row in rows}
        todo = [entry for entry in plan(tasks, kinds) if entry.key not in done][:limit]
        log(f"lab pool: {len(done)} modules in the manifest, {len(todo)} to train now")
        spent: list[float] = []
        for index, entry in enumerate(todo, 1):
            data = tasks[entry.task][1]
            record = adopt(hub, entry)
            if record is not None:
                metrics = {**record.metrics}
                metrics.setdefault("chance", math.nan)
            else:
                tensors, module, metrics = train_entry(hub, data, entry, settings)
                record = hub.register(module.method, module.config, tensors, data, module.backbone, metrics=metrics, tags=tags_of(entry, settings))
                spent.append(metrics["train_s"])
            rows.append(row_of(entry, record, metrics))
            write_manifest(manifest, rows)
            mean = sum(spent) / len(spent) if spent else math.nan
            log(
                f"[{time.strftime('%H:%M:%S')}] {index}/{len(todo)} {entry.key}: dev {metrics['dev_acc']:.3f} (chance {metrics['chance']:.3f}), "
                f"{metrics['train_s']:.0f}s; mean {mean:.0f}s/module, about {mean * (len(todo) - index) / 3600:.1f} h left"
            )
    return rows


def summary(rows: Sequence[dict[str, str]]) -> str:
    """Per kind: modules done, tasks and suites covered, mean training seconds, mean dev accuracy over chance."""
    lines = ["| kind | modules | tasks | suites | mean s/module | mean dev - chance (points) |", "| --- | --- | --- | --- | --- | --- |"]
    for kind in KINDS:
        mine = [row for row in rows if row["kind"] == kind]
        if mine:
            seconds = sum(float(row["seconds"]) for row in mine) / len(mine)
            above = 100 * sum(float(row["dev_acc"]) - float(row["chance"]) for row in mine) / len(mine)
            lines.append(f"| {kind} | {len(mine)} | {len({r['task'] for r in mine})} | {len({r['suite'] for r in mine})} | {seconds:.0f} | {above:+.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build or check the lab-scale pool of LoRA modules (see the module docstring).")
    parser.add_argument("command", choices=("build", "check", "plan"))
    parser.add_argument("--registry", type=Path, default=DEFAULT_REGISTRY, help="the pool's registry, kept out of git (default: %(default)s)")
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help="the committed manifest (default: %(default)s)")
    parser.add_argument("--suites-root", type=Path, default=ROOT / "suites", help="folder of the suites (default: %(default)s)")
    parser.add_argument("--suites", nargs="+", default=list(SUITES), help="suites whose tasks the pool holds (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="train at most this many modules this run")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="kinds of module to train, in the plan's rounds (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    try:
        if args.command == "build":
            build(args.registry, args.manifest, args.suites_root, args.suites, args.limit, args.kinds, args.device, log=lambda line: print(line, flush=True))
        elif args.command == "check":
            from hub import Hub

            rows = read_manifest(args.manifest)
            with Hub(args.registry, create=False) as hub:  # a check writes nothing, not even a registry at a mistyped path
                check_manifest(hub, rows, lab_settings(args.registry, args.device).base_model)
            print(f"manifest {args.manifest}: {len(rows)} modules, every one in {args.registry} with its digest and base model")
        else:
            rows = read_manifest(args.manifest)
            done = {f"{row['task']}/{row['kind']}/{row['seed']}" for row in rows}
            entries = plan(load_suites(args.suites_root, args.suites), args.kinds)
            for entry in entries:
                print(f"{'done' if entry.key in done else 'todo'}  {entry.suite:10} {entry.key}")
            print(f"{len(entries)} modules from {len({e.task for e in entries})} tasks of {len({e.suite for e in entries})} suites; {len(done)} done")
            print(summary(rows))
    except ERRORS as error:
        print(error_line(error, args.registry), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
