"""The lab pool as the benchmark sees it: its committed manifest, the fixed pools of each size, and junk.

The manifest (benchmarks/results/lab-pool/manifest.csv, written by benchmarks/lab_pool.py) lists
every module of the lab registry with its task, kind (source, early, undertrained, shuffled,
duplicate) and digest. A pool of size n is the first n modules of one seeded order of the modules
whose task is no target's, so the pools are nested (20 in 50 in all) and the same for every target
and every arm; the targets' own tasks are out of every pool.
"""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from hub.errors import USER_ERRORS

FIELDS = ("task", "suite", "kind", "seed", "module_id", "digest", "base_model", "dev_acc", "chance", "steps", "best_step", "seconds")
KINDS = ("source", "early", "undertrained", "shuffled", "duplicate")
# A run whose best checkpoint is its first never left the method's default init: whatever its plan kind, its module
# is that init (on the lab pool, one set of tensors under 27 module ids of 27 tasks), junk like the others.
STALLED = "stalled"
JUNK = frozenset({"early", "undertrained", "shuffled", STALLED})
ALL = 0  # the pool size meaning every eligible module
POOL_SIZES = (20, 50, ALL)
SUITES = ("wordnet", "sentiment", "phonetics", "manpages")
DEFAULT_REGISTRY = Path("/root/deltahub-runs/lab-pool/registry")  # kept out of git: hours of training, on this machine
DEFAULT_MANIFEST = Path(__file__).resolve().parents[1] / "results" / "lab-pool" / "manifest.csv"


class PoolError(Exception):
    """A one-line reason the lab pool cannot be read, built or checked (its manifest, its registry, its suites)."""


# What a script over the pool prints as one line `error: …` (exit 2): the pool's own errors and the registry's
# user errors (a registry whose schema is behind this deltahub, a path that holds none), never a traceback.
ERRORS: tuple[type[Exception], ...] = (PoolError, *USER_ERRORS)


def error_line(error: Exception, registry: Path) -> str:
    """The one line a script prints for one of ERRORS; a registry to create or upgrade gets the command that does it."""
    from store.errors import NeedsUpgrade

    return f"error: {error}" + (f": adapters db upgrade --registry {registry}" if isinstance(error, NeedsUpgrade) else "")


def read_manifest(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != FIELDS:
            raise PoolError(f"manifest {path} has columns {reader.fieldnames}, expected {list(FIELDS)}; restore it from git")
        rows = list(reader)
    for line, row in enumerate(rows, start=2):
        if row["kind"] not in KINDS or not all(_whole(row[field]) for field in ("module_id", "seed", "best_step")):
            raise PoolError(
                f"manifest {path} line {line} (task {row['task']!r}) has kind {row['kind']!r}, module id {row['module_id']!r}, seed "
                f"{row['seed']!r} and best step {row['best_step']!r}; expected a kind of {', '.join(KINDS)} and whole numbers: restore it from git"
            )
    return rows


def _whole(value: str | None) -> bool:
    """A whole number as the manifest writes one (None: a short row)."""
    return value is not None and value.isascii() and value.isdigit()


def write_manifest(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    """Atomically: a crash leaves the previous manifest, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    with temp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def check_manifest(hub, rows: Sequence[Mapping[str, str]], base_model: str) -> None:
    """Every row's module is in the registry with the row's digest, on the pool's base model: else one line naming it."""
    from hub.backbones import resolve_base_model
    from store.errors import NotFound

    backbone = hub.backbone(resolve_base_model(base_model))
    base, arch_hash = backbone.ref.name, backbone.arch_hash
    for row in rows:
        name = f"module {row['module_id']} ({row['task']}/{row['kind']}/seed {row['seed']})"
        if row["base_model"] != base:
            raise PoolError(f"manifest {name} is on base model {row['base_model']!r}, the pool's is {base!r}; drop the row or use that base model")
        try:
            record = hub.show(int(row["module_id"]))
        except (NotFound, ValueError):
            raise PoolError(f"manifest {name} is not in the registry; point --registry at the pool's registry or drop the row") from None
        if record.blob_digest != row["digest"]:
            raise PoolError(
                f"manifest {name} has digest {row['digest'][:12]}…, the registry's module {record.blob_digest[:12]}…; the registry is not this manifest's"
            )
        if record.base_model != base or record.base_arch_hash != arch_hash:
            raise PoolError(
                f"manifest {name} is on base model {record.base_model!r} ({record.base_arch_hash[:12]}) in the registry, not {base!r} ({arch_hash[:12]})"
            )


def distinct_modules(rows: Sequence[Mapping[str, str]]) -> list[Mapping[str, str]]:
    """One row per module, in module-id order.

    The registry stores identical tensors once, so two plan entries can be one module: a source whose best
    checkpoint is its step-25 checkpoint is also its early checkpoint. Such a module is listed under its
    least junk kind (the order of KINDS, duplicate before the junk): it is the source, not junk.
    """
    chosen: dict[int, Mapping[str, str]] = {}
    for row in sorted(rows, key=lambda row: (int(row["module_id"]), row["kind"] in JUNK, KINDS.index(row["kind"]))):
        chosen.setdefault(int(row["module_id"]), row)
    return list(chosen.values())


def kinds_of(rows: Sequence[Mapping[str, str]]) -> dict[int, str]:
    """Module id -> its kind (a module listed under several: its least junk one; STALLED where its best step is 0)."""
    return {int(row["module_id"]): STALLED if int(row["best_step"]) == 0 else row["kind"] for row in distinct_modules(rows)}


def pools(rows: Sequence[Mapping[str, str]], targets: Collection[str], sizes: Sequence[int] = POOL_SIZES, seed: int = 0) -> dict[int, list[Mapping[str, str]]]:
    """Pool size -> its modules: nested prefixes of one seeded order of the distinct modules of non-target tasks.

    The order is drawn over the modules sorted by id, so it does not depend on the manifest's row
    order; a size at least the number of eligible modules (or ALL) is every eligible module.
    """
    eligible = [row for row in distinct_modules(rows) if row["task"] not in targets]
    random.Random(f"lab-pool:{seed}").shuffle(eligible)
    return {size: eligible[: size or len(eligible)] for size in sizes}


def load_suites(root: Path, suites: Sequence[str] | None = None) -> dict[str, tuple[str, object]]:
    """Every task of the named suites under `root` (None: of every suite folder there), by name, with its suite.

    Task names are unique across suites: a name met twice is refused.
    """
    from hub.datasets import CARD_FILE, load_dataset

    if suites is None:
        suites = sorted(path.name for path in root.iterdir() if path.is_dir() and any(path.glob(f"*/{CARD_FILE}"))) if root.is_dir() else []
    tasks: dict[str, tuple[str, object]] = {}
    for suite in suites:
        folder = root / suite
        if not folder.is_dir():
            raise PoolError(f"no suite {folder}; build it with suites/build_{suite}.py or drop it from --suites")
        for task_dir in sorted(path for path in folder.iterdir() if (path / CARD_FILE).is_file()):
            data = load_dataset(task_dir)
            if data.card.name in tasks:
                raise PoolError(f"task {data.card.name!r} is in both suites {tasks[data.card.name][0]} and {suite}; rename one")
            tasks[data.card.name] = (suite, data)
    return tasks


def lab_sources(hub, rows: Sequence[Mapping[str, str]], base_model: str) -> dict:
    """The pool's modules as the benchmark's sources, by `task/kind/seed` (a task has several), checked against the registry first."""
    from benchmarks.transferbench.sources import SourceInfo

    check_manifest(hub, rows, base_model)
    found = {}
    for row in rows:
        record = hub.show(int(row["module_id"]))
        found[f"{row['task']}/{row['kind']}/{row['seed']}"] = SourceInfo(
            row["task"], record.category, record.method, record.id, float(row["dev_acc"]), float(row["chance"]),
            int(row["steps"]), int(row["best_step"]), float(row["seconds"]), True,
        )  # fmt: skip
    return found


def junk_share(weights: Mapping[int, float], kind_of: Mapping[int, str]) -> float:
    """The share of an ensemble's absolute weight that sits on junk modules (early, undertrained, shuffled labels)."""
    total = sum(abs(weight) for weight in weights.values())
    junk = sum(abs(weight) for module_id, weight in weights.items() if kind_of.get(module_id) in JUNK)
    return junk / total if total > 0 else 0.0
