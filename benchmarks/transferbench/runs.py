"""Runs as they end: one JSONL file per (method, target), so an interrupted benchmark resumes where it stopped.

Each target is run by one process at a time, so a file has one writer. A line carries
the protocol digest of the budgets it was run under; lines of another protocol are
ignored (kept on disk, never mixed into a report). The `random` arm's trained module
is kept beside them, since it is θ_t for kl and weight-cos when a run resumes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch


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

    def has(self, target: str, method: str, shots: int, seed: int, arm: str) -> bool:
        return any(row["kind"] in ("run", "skip") and (row["shots"], row["seed"], row["arm"]) == (shots, seed, arm) for row in self.lines(target, method))

    def has_cell(self, target: str, method: str, shots: int, seed: int, fields: tuple[str, ...] = ()) -> bool:
        """Whether the cell's source diagnostics are stored, each source row with `fields` (a later row supersedes an older one)."""
        return any(
            row["kind"] == "cell" and (row["shots"], row["seed"]) == (shots, seed) and all(field in source for source in row["sources"] for field in fields)
            for row in self.lines(target, method)
        )

    def add_run(self, run: dict) -> None:
        self._append(run["target"], run["method"], {"kind": "run", **run})

    def add_skip(self, target: str, method: str, shots: int, seed: int, arm: str, reason: str) -> None:
        self._append(target, method, {"kind": "skip", "target": target, "method": method, "shots": shots, "seed": seed, "arm": arm, "reason": reason})

    def add_cell(self, target: str, method: str, shots: int, seed: int, sources: list[dict]) -> None:
        self._append(target, method, {"kind": "cell", "target": target, "method": method, "shots": shots, "seed": seed, "sources": sources})

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
