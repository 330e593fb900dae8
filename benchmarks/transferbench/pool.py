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

FIELDS = ("task", "suite", "kind", "seed", "module_id", "digest", "base_model", "dev_acc", "chance", "steps", "best_step", "seconds")
KINDS = ("source", "early", "undertrained", "shuffled", "duplicate")
JUNK = frozenset({"early", "undertrained", "shuffled"})
ALL = 0  # the pool size meaning every eligible module
POOL_SIZES = (20, 50, ALL)


class PoolError(Exception):
    """A one-line reason the lab pool cannot be read, built or checked (its manifest, its registry, its suites)."""


def read_manifest(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != FIELDS:
            raise PoolError(f"manifest {path} has columns {reader.fieldnames}, expected {list(FIELDS)}; restore it from git")
        return list(reader)


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


def pools(rows: Sequence[Mapping[str, str]], targets: Collection[str], sizes: Sequence[int] = POOL_SIZES, seed: int = 0) -> dict[int, list[Mapping[str, str]]]:
    """Pool size -> its modules: nested prefixes of one seeded order of the modules of non-target tasks.

    The order is drawn over the rows sorted by module id, so it does not depend on the manifest's row
    order; a size at least the number of eligible modules (or ALL) is every eligible module.
    """
    eligible = sorted((row for row in rows if row["task"] not in targets), key=lambda row: int(row["module_id"]))
    random.Random(f"lab-pool:{seed}").shuffle(eligible)
    return {size: eligible[: size or len(eligible)] for size in sizes}


def junk_share(weights: Mapping[int, float], kind_of: Mapping[int, str]) -> float:
    """The share of an ensemble's absolute weight that sits on junk modules (early, undertrained, shuffled labels)."""
    total = sum(abs(weight) for weight in weights.values())
    junk = sum(abs(weight) for module_id, weight in weights.items() if kind_of.get(module_id) in JUNK)
    return junk / total if total > 0 else 0.0
