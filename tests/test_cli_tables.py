"""`adapters list` and `search` tables in an 80-column terminal: ids, scores, methods and task names stay whole."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest
from rich.console import Console

from cli import render

TASKS = ["wn-supersense-noun-a", "wn-definition-adj", "wn-antonym-pair-adj"]


def records():
    metrics = {"dev_acc": 0.8125, "test_acc": 0.77, "train_s": 123.4}
    return [
        SimpleNamespace(
            id=1000 + i,
            task=task,
            method="lora",
            category="supersense-and-more",
            origin="trained",
            num_params=123456,
            metrics=metrics,
            created_at=datetime(2026, 11, 23),
        )
        for i, task in enumerate(TASKS)
    ]


@pytest.mark.parametrize("width", [80, 100, 160])
def test_tables_fit_the_terminal_without_folding_what_identifies_a_row(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    console = Console(width=width, record=True, color_system=None)
    monkeypatch.setattr(render, "console", console)
    console.print(render.modules_table(records()))
    console.print(render.hits_table([SimpleNamespace(module=record, similarity=0.91234) for record in records()], "closest"))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= width
    for record in records():
        assert f"{record.id} │ {record.task}" in text  # list: id then task, whole, on one line
        assert f"0.912 │ {record.task}" in text  # search: similarity then task, whole
    assert text.count("│ lora ") == 2 * len(TASKS)


def test_the_import_table_wraps_sources_and_cuts_no_status_or_task_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    from hub.bulk_import import ImportOutcome

    console = Console(width=80, record=True, color_system=None)
    monkeypatch.setattr(render, "console", console)
    sources = [f"hf://lab/lora-{name}@{digit * 40}" for name, digit in (("orphan", "e"), ("isa-bird", "1"))]
    outcomes = [
        ImportOutcome(Path("/cache/a"), "refused", reason="…", source=sources[0]),
        ImportOutcome(Path("/cache/b"), "already there", 12, "lab/isa-bird", source=sources[1], task_from="model card"),
    ]
    console.print(render.import_table(outcomes))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text
    assert "import of 2 module folders" in text
    for word in ("refused", "already there", "12", "lab/isa-bird"):
        assert f"│ {word} " in text or f" {word} │" in text, word
    cells = "".join(line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│"))
    assert all(source in cells for source in sources)  # each source whole, folded over lines
