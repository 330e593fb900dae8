"""Runs as they end: one JSONL file per (method, target), so an interrupted benchmark resumes where it stopped.

Each target is run by one process at a time, so a file has one writer. A line carries
the protocol digest of the budgets it was run under; lines of another protocol are
ignored (kept on disk, never mixed into a report). A line of a cell also carries the
digest of the source modules its arms read (`pool`): an arm stored against other
sources is run again, and the report sets the old line aside. `random` reads no source,
so its lines stand whatever the pool. Lines written before the pool was recorded carry
none and are taken as made against their cell's sources. The `random` arm's trained
module is kept beside them, since it is θ_t for kl and weight-cos when a run resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import torch


def pool_digest(sources: Iterable[tuple[str, str]]) -> str:
    """The digest of a cell's sources: each (task, blob digest), in any order."""
    return hashlib.sha256(json.dumps(sorted(sources)).encode()).hexdigest()[:12]


def same_pool(row: dict, pool: str | None) -> bool:
    """Whether a stored line was made against `pool` (None: any); a line from before pools were recorded is."""
    return pool is None or row.get("pool", pool) == pool


def of_current_pools(rows: list[dict], no_transfer: str) -> tuple[list[dict], int]:
    """The lines made against their cell's latest sources (its last cell line's pool), and how many other runs are set aside."""
    latest = {(row["target"], row["method"], row["shots"], row["seed"]): row["pool"] for row in rows if row["kind"] == "cell" and "pool" in row}
    kept, aside = [], 0
    for row in rows:
        cell = (row["target"], row["method"], row["shots"], row["seed"])
        if row["kind"] == "cell" or row.get("arm") == no_transfer or same_pool(row, latest.get(cell)):
            kept.append(row)
        elif row["kind"] == "run":
            aside += 1
    return kept, aside


class RunStore:
    def __init__(self, root: Path, protocol: str) -> None:
        self.root = root / "runs"
        self.protocol = protocol
        self._lines: dict[tuple[str, str], list[dict]] = {}

    def _file(self, target: str, method: str) -> Path:
        return self.root / method / f"{target}.jsonl"

    def lines(self, target: str, method: str) -> list[dict]:
        key = (target, method)
        if key not in self._lines:
            path = self._file(target, method)
            rows = []
            if path.exists():
                for line in path.read_text(encoding="utf-8").splitlines():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut short by a kill
                    if row.get("protocol") == self.protocol:
                        rows.append(row)
            self._lines[key] = rows
        return self._lines[key]

    def _append(self, target: str, method: str, row: dict) -> None:
        row = {"protocol": self.protocol, **row}
        path = self._file(target, method)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.lines(target, method).append(row)

    def has(self, target: str, method: str, shots: int, seed: int, arm: str, pool: str | None = None) -> bool:
        """Whether the arm's run (or its reason to skip) is stored, made against the sources `pool` (None: any)."""
        return any(
            row["kind"] in ("run", "skip") and (row["shots"], row["seed"], row["arm"]) == (shots, seed, arm) and same_pool(row, pool)
            for row in self.lines(target, method)
        )

    def cell(self, target: str, method: str, shots: int, seed: int, pool: str | None = None, fields: tuple[str, ...] = ()) -> dict | None:
        """The cell's latest stored source diagnostics made against `pool`, each source row with `fields`; None: none stored."""
        found = [
            row
            for row in self.lines(target, method)
            if row["kind"] == "cell"
            and (row["shots"], row["seed"]) == (shots, seed)
            and same_pool(row, pool)
            and all(field in source for source in row["sources"] for field in fields)
        ]
        return found[-1] if found else None

    def add_run(self, run: dict) -> None:
        self._append(run["target"], run["method"], {"kind": "run", **run})

    def add_skip(self, target: str, method: str, shots: int, seed: int, arm: str, reason: str, pool: str) -> None:
        row = {"kind": "skip", "target": target, "method": method, "shots": shots, "seed": seed, "arm": arm, "reason": reason, "pool": pool}
        self._append(target, method, row)

    def add_cell(self, target: str, method: str, shots: int, seed: int, sources: list[dict], pool: str) -> None:
        self._append(target, method, {"kind": "cell", "target": target, "method": method, "shots": shots, "seed": seed, "sources": sources, "pool": pool})

    def _module_path(self, target: str, method: str, shots: int, seed: int) -> Path:
        return self.root / method / f"{target}-{shots}shot-seed{seed}-random-{self.protocol}.safetensors"

    def save_random_module(self, target: str, method: str, shots: int, seed: int, tensors: dict[str, torch.Tensor]) -> None:
        from safetensors.torch import save_file

        path = self._module_path(target, method, shots, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({name: tensor.contiguous() for name, tensor in tensors.items()}, str(path.with_suffix(".tmp")))
        os.replace(path.with_suffix(".tmp"), path)

    def random_module(self, target: str, method: str, shots: int, seed: int) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        return load_file(str(self._module_path(target, method, shots, seed)))

    def targets(self, methods: list[str]) -> list[str]:
        """Every target that has a runs file for one of `methods`, in name order."""
        return sorted({path.stem for method in methods for path in (self.root / method).glob("*.jsonl")})

    def other_protocols(self, methods: list[str]) -> list[str]:
        """One line per protocol other than this one with runs on disk (kept, never mixed into this report)."""
        counts: dict[str, int] = {}
        for method in methods:
            for path in (self.root / method).glob("*.jsonl"):
                for line in path.read_text(encoding="utf-8").splitlines():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if row.get("protocol") != self.protocol and row.get("kind") == "run":
                        counts[row.get("protocol", "?")] = counts.get(row.get("protocol", "?"), 0) + 1
        return [f"{count} runs of protocol {protocol} (another budget): reported by a run with that budget" for protocol, count in sorted(counts.items())]

    def all_rows(self, targets: list[str], methods: list[str]) -> list[dict]:
        return [row for method in methods for target in targets for row in self.lines(target, method)]
