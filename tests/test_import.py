"""Modules without a local dataset (`push` described by a model card or --task/--category) and `adapters import` of a folder tree.

Real parts throughout: a SQLite registry in tmp_path, real PEFT LoRA folders on the packaged MiniLM
(save_pretrained of `Hub.new_module`, holding seeded random tensors), cards written by hand.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from helpers import SOURCES, TARGET, cli, one_line_error, random_module, snapshot, tiny

from hub import Hub, TransferOptions, load_dataset

NONE_LINE = "none (pushed without one; not in dataset search)"


def save_module(hub: Hub, seed: int, folder: Path, card: str | None = None) -> Path:
    """A PEFT LoRA folder as save_pretrained writes it, holding seeded random tensors; `card` replaces PEFT's template README.md front matter."""
    module, tensors = random_module(hub, seed)
    module.method.set_tensors(module.model, tensors)
    module.save(folder)
    if card is not None:
        (folder / "README.md").write_text(f"---\n{card}\n---\n\n# a lab's module\n")
    return folder


def card_of(task: str, category: str) -> str:
    return f"datasets:\n- {task}\ndeltahub:\n  category: {category}"


@pytest.fixture(scope="module")
def prepared(suite: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A registry of four sources with datasets and the target's own module; the tiny target; module folders without datasets."""
    root = tmp_path_factory.mktemp("import")
    data, folders = root / "data", root / "folders"
    target = tiny(suite, TARGET, data)
    with Hub(root / "registry") as hub:
        # Pushed from folders like the modules without datasets, so that all share one config and compose together.
        for task, seed in SOURCES.items():
            hub.push(save_module(hub, seed, root / "sources" / task), tiny(suite, task, data))
        hub.push(save_module(hub, 99, root / "sources" / TARGET), target)
        save_module(hub, 11, folders / "carded", card_of("lab-isa-fish", "taxonomy"))
        save_module(hub, 12, folders / "template")  # PEFT's own card: it names no task
        tree = folders / "tree"
        save_module(hub, 21, tree / "a", card_of("lab-a", "taxonomy"))
        save_module(hub, 22, tree / "group" / "b", card_of("lab-b", "synonymy"))
        save_module(hub, 23, tree / "group" / "deeper" / "c", card_of("lab-c", "antonymy"))
        save_module(hub, 11, tree / "copy-of-carded", card_of("lab-isa-fish", "taxonomy"))  # the same weights as `carded`
        pickled = save_module(hub, 24, tree / "pickled", card_of("lab-pickled", "taxonomy"))
        (pickled / "adapter_model.safetensors").unlink()
        (pickled / "adapter_model.bin").write_bytes(pickle.dumps({"never": "opened"}))
        malformed = save_module(hub, 25, tree / "malformed")
        (malformed / "README.md").write_text("---\ndatasets: [lab-malformed\nlibrary_name: peft\n---\n")
    return root / "registry", target, folders


@pytest.fixture
def registry(prepared, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A private copy of the registry, so a test may push."""
    source, target, folders = prepared
    shutil.copytree(source, tmp_path / "registry")
    return tmp_path / "registry", target, folders


def pushed(*args: str) -> dict:
    result = cli("push", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_push_without_a_dataset_takes_the_task_from_the_card_or_the_options(registry):
    path, target, folders = registry
    carded = pushed(str(folders / "carded"), "--registry", str(path))
    assert (carded["task"], carded["category"], carded["task_format"]) == ("lab-isa-fish", "taxonomy", "unknown")
    assert carded["dataset_id"] is None and carded["dataset_fingerprint"] is None
    assert pushed(str(folders / "carded"), "--registry", str(path))["id"] == carded["id"]  # idempotent
    # The options describe a module whose card names no task, and win over a card that names one.
    optioned = pushed(str(folders / "template"), "--task", "lab-synonyms", "--category", "synonymy", "--registry", str(path))
    assert (optioned["task"], optioned["category"], optioned["dataset_id"]) == ("lab-synonyms", "synonymy", None)
    overridden = pushed(str(folders / "tree" / "a"), "--task", "lab-override", "--category", "synonymy", "--registry", str(path))
    assert (overridden["task"], overridden["category"]) == ("lab-override", "synonymy")  # its card says lab-a, taxonomy

    shown = cli("show", str(carded["id"]), "--registry", str(path))
    assert shown.exit_code == 0, shown.output
    assert any("dataset" in line and NONE_LINE in line for line in shown.output.splitlines()), shown.output

    # Dataset search leaves them out; parameter search keeps them.
    by_dataset = cli("search", str(target), "--top-k", "20", "--json", "--registry", str(path))
    assert by_dataset.exit_code == 0, by_dataset.output
    found = {hit["id"] for hit in json.loads(by_dataset.output)}
    assert len(found) == len(SOURCES) + 1 and not found & {carded["id"], optioned["id"], overridden["id"]}
    by_module = cli("search", "--module", str(carded["id"]), "--top-k", "20", "--json", "--registry", str(path))
    assert by_module.exit_code == 0, by_module.output
    assert optioned["id"] in {hit["id"] for hit in json.loads(by_module.output)}
    others = cli("search", "--module", str(min(found)), "--top-k", "20", "--json", "--registry", str(path))
    assert {carded["id"], optioned["id"]} <= {hit["id"] for hit in json.loads(others.output)}
    with Hub(path) as hub:
        assert hub.verify().healthy


@pytest.mark.parametrize("strategy", ["el2n", "loss"])
def test_a_module_without_a_dataset_is_scored_and_weighted_beside_modules_with_datasets(registry, strategy: str):
    path, target, folders = registry
    module_id = pushed(str(folders / "carded"), "--registry", str(path))["id"]
    result = cli("ensemble", str(target), "-s", strategy, "--score-examples", "8", "--json", "--registry", str(path))
    assert result.exit_code == 0, result.output
    sources = {row["module_id"]: row for row in json.loads(result.output)["sources"]}
    assert len(sources) == len(SOURCES) + 1  # every source but the target's own
    assert sources[module_id]["task"] == "lab-isa-fish" and sources[module_id]["score"] is not None and sources[module_id]["weight"] > 0
    assert sum(row["weight"] for row in sources.values()) == pytest.approx(1.0)


def test_group_average_retrieval_and_candidates_with_a_module_without_a_dataset(registry):
    path, target, folders = registry
    module_id = pushed(str(folders / "carded"), "--registry", str(path))["id"]  # category taxonomy, like the target
    with Hub(path) as hub:
        group = hub.ensemble(target, TransferOptions(strategy="group-average"), register=False)
        assert sorted(row.task for row in group.sources) == ["lab-isa-fish", "wn-isa-artifact", "wn-isa-plant"]
        # retrieval ranks it after every source with a dataset: with k = 3 of 4 ranked sources, it is not chosen.
        retrieval = hub.ensemble(target, TransferOptions(strategy="retrieval"), register=False)
        assert len(retrieval.sources) == 3 and module_id not in {row.module_id for row in retrieval.sources}
        # --candidates N: the N modules of the nearest datasets, and beside them every module without a dataset.
        narrowed = hub.ensemble(target, TransferOptions(strategy="average", candidates=2), register=False)
        assert len(narrowed.sources) == 3 and module_id in {row.module_id for row in narrowed.sources}
        everyone = hub.ensemble(target, TransferOptions(strategy="retrieval", candidates=1), register=False)
        assert [row.module_id for row in everyone.sources][-1] == module_id  # fewer than k ranked: it fills the pool, last


def test_import_of_a_tree_pushes_the_good_folders_reports_the_rest_and_is_idempotent(registry, monkeypatch):
    path, _target, folders = registry
    carded = pushed(str(folders / "carded"), "--registry", str(path))["id"]
    before = snapshot(path)

    def never(*_args, **_kwargs):
        raise AssertionError("a pickle checkpoint was opened")

    monkeypatch.setattr(pickle, "load", never)
    monkeypatch.setattr(pickle, "loads", never)
    monkeypatch.setattr(torch, "load", never)
    tree = folders / "tree"
    result = cli("import", str(tree), "--json", "--registry", str(path))
    assert result.exit_code == 1, result.output  # a refused folder makes the exit code say so
    report = json.loads(result.output)
    assert (report["imported"], report["already_there"], report["refused"]) == (3, 1, 2)
    outcomes = {Path(row["folder"]).relative_to(tree).as_posix(): row for row in report["folders"]}
    assert {name: row["status"] for name, row in outcomes.items()} == {
        "a": "imported",
        "copy-of-carded": "already there",
        "group/b": "imported",
        "group/deeper/c": "imported",
        "malformed": "refused",
        "pickled": "refused",
    }
    assert outcomes["copy-of-carded"]["module_id"] == carded
    assert "adapter_model.bin is a pickle checkpoint, which deltahub never loads" in outcomes["pickled"]["reason"]
    assert "malformed YAML front matter" in outcomes["malformed"]["reason"] and "\n" not in outcomes["malformed"]["reason"]
    after = snapshot(path)
    modules = after[0]
    added = {task for _id, _digest, task, _origin in modules} - {task for _id, _digest, task, _origin in before[0]}
    assert len(modules) == len(before[0]) + 3 and added == {"lab-a", "lab-b", "lab-c"}
    with Hub(path) as hub:
        assert all(hub.show(row["module_id"]).dataset_id is None for row in outcomes.values() if row["module_id"] is not None)

    again = cli("import", str(tree), "--registry", str(path))
    assert again.exit_code == 1, again.output
    text = " ".join(again.output.split())
    assert "0 imported, 4 already there, 2 refused" in text
    assert f"refused {tree / 'pickled'}: {tree / 'pickled' / 'adapter_model.bin'} is a pickle checkpoint" in text
    # Weights already registered are found before anything is written: not even the write generation moves.
    assert snapshot(path) == after


def test_import_with_one_dataset_for_every_folder(registry, tmp_path: Path):
    path, target, folders = registry
    shutil.copytree(folders / "template", tmp_path / "tree" / "only")
    result = cli("import", str(tmp_path / "tree"), "--dataset", str(target), "--json", "--registry", str(path))
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)["folders"]
    assert row["status"] == "imported" and row["task"] == TARGET
    with Hub(path) as hub:
        assert hub.show(row["module_id"]).dataset_fingerprint == load_dataset(target).fingerprint


@pytest.mark.parametrize(
    ("folder", "extra", "message"),
    [
        ("template", [], "is pushed without --dataset, but neither --task nor its model card (README.md) names its task"),
        ("template", ["--task", "lab-x"], "neither --category nor its model card (README.md) names its category"),
        ("tree/malformed", [], "has malformed YAML front matter (expected ',' or ']', but got ':' at line 2 of the front matter)"),
        ("carded", ["--dataset", "TARGET", "--task", "lab-x"], "--task/--category describe a module pushed without --dataset"),
        ("nowhere", [], "does not exist; pass the folder that save_pretrained wrote"),
    ],
)
def test_push_refusals_are_one_line_and_change_nothing(registry, folder: str, extra: list[str], message: str):
    path, target, folders = registry
    before = snapshot(path)
    args = [str(target) if item == "TARGET" else item for item in extra]
    line = one_line_error(cli("push", str(folders / folder), *args, "--registry", str(path)))
    assert message in line
    assert snapshot(path) == before


def test_import_of_a_missing_path_is_one_line_and_changes_nothing(registry, tmp_path: Path):
    path, _target, folders = registry
    before = snapshot(path)
    line = one_line_error(cli("import", str(folders / "tree"), str(tmp_path / "nowhere"), "--registry", str(path)))
    assert f"{tmp_path / 'nowhere'} does not exist" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no PEFT module folder" in one_line_error(cli("import", str(empty), "--registry", str(path)))
    assert snapshot(path) == before
