"""Bad input: a one-line error, a non-zero exit code, and the registry exactly as it was."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from helpers import adapters, file_bytes, one_line_error, snapshot
from safetensors.torch import load_file, save_file
from sqlalchemy import text
from transformers import BertConfig, BertForSequenceClassification

from store.db import make_engine


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, trained_folders: dict[str, Path], suite: Path) -> Path:
    """A registry holding one real module, so 'unchanged' has something to compare."""
    root = tmp_path_factory.mktemp("bad") / "registry"
    result = adapters(root, "push", str(trained_folders["wn-isa-animal"]), "--dataset", str(suite / "wn-isa-animal"))
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def module_copy(tmp_path: Path, trained_folders: dict[str, Path]) -> Path:
    return Path(shutil.copytree(trained_folders["wn-supersense-noun-a"], tmp_path / "module"))


def push_fails(registry: Path, folder: Path, dataset: Path, *extra: str) -> str:
    before = snapshot(registry)
    message = one_line_error(adapters(registry, "push", str(folder), "--dataset", str(dataset), *extra))
    assert snapshot(registry) == before
    return message


def test_missing_module_folder(registry: Path, suite: Path, tmp_path: Path) -> None:
    assert "does not exist" in push_fails(registry, tmp_path / "nowhere", suite / "wn-isa-animal")


def test_unreadable_module_config(registry: Path, suite: Path, module_copy: Path) -> None:
    (module_copy / "adapter_config.json").write_text("{not json")
    assert "cannot read" in push_fails(registry, module_copy, suite / "wn-supersense-noun-a")


def test_config_and_weights_disagree(registry: Path, suite: Path, module_copy: Path) -> None:
    config = json.loads((module_copy / "adapter_config.json").read_text())
    (module_copy / "adapter_config.json").write_text(json.dumps({**config, "r": config["r"] * 2}))
    assert "disagree" in push_fails(registry, module_copy, suite / "wn-supersense-noun-a")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights(registry: Path, suite: Path, module_copy: Path, bad: float) -> None:
    weights = load_file(str(module_copy / "adapter_model.safetensors"))
    name = sorted(weights)[0]
    weights[name][0, 0] = bad
    save_file(weights, str(module_copy / "adapter_model.safetensors"))
    assert "NaN or Inf" in push_fails(registry, module_copy, suite / "wn-supersense-noun-a")


class _Tripwire:
    """Unpickling this would create a file: the test proves the pickle is never opened."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_pickle_only_checkpoint_is_refused_unopened(registry: Path, suite: Path, module_copy: Path, tmp_path: Path) -> None:
    tripwire = tmp_path / "pickle-was-loaded"
    (module_copy / "adapter_model.safetensors").unlink()
    (module_copy / "adapter_model.bin").write_bytes(pickle.dumps(_Tripwire(str(tripwire))))
    assert "pickle" in push_fails(registry, module_copy, suite / "wn-supersense-noun-a")
    assert not tripwire.exists()


def test_module_for_another_base_model(registry: Path, suite: Path, module_copy: Path, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny-bert"
    config = BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=1)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(tiny)
    message = push_fails(registry, module_copy, suite / "wn-supersense-noun-a", "--base-model", str(tiny))
    assert "base model" in message and "push it with the base model it was trained on" in message


def test_empty_dataset_file(registry: Path, suite: Path, module_copy: Path, tmp_path: Path) -> None:
    dataset = Path(shutil.copytree(suite / "wn-supersense-noun-a", tmp_path / "dataset"))
    (dataset / "train.jsonl").write_text("")
    assert "holds no examples" in push_fails(registry, module_copy, dataset)


def test_malformed_dataset_names_the_line(registry: Path, suite: Path, module_copy: Path, tmp_path: Path) -> None:
    dataset = Path(shutil.copytree(suite / "wn-supersense-noun-a", tmp_path / "dataset"))
    lines = (dataset / "train.jsonl").read_text().splitlines()
    lines[6] = '{"text": "broken'
    (dataset / "train.jsonl").write_text("\n".join(lines) + "\n")
    assert "train.jsonl:7:" in push_fails(registry, module_copy, dataset)


@pytest.mark.parametrize("verb", [("show", "999"), ("rm", "999"), ("export", "999", "out-dir")])
def test_unknown_module_id(registry: Path, verb: tuple[str, ...]) -> None:
    before = snapshot(registry)
    assert "no module with id 999" in one_line_error(adapters(registry, *verb))
    assert snapshot(registry) == before


def test_registry_path_under_a_file(tmp_path: Path, trained_folders: dict[str, Path], suite: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    message = one_line_error(adapters(blocker / "registry", "push", str(trained_folders["wn-isa-animal"]), "--dataset", str(suite / "wn-isa-animal")))
    assert f"registry {blocker / 'registry'} cannot be made: {blocker} is a file, not a directory; choose another path" in message
    assert f"registry {blocker / 'registry'} does not exist" in one_line_error(adapters(blocker / "registry", "list"))
    assert blocker.read_text() == "not a directory"


READ_VERBS = [
    ("list",),
    ("show", "1"),
    ("rm", "1"),
    ("export", "1", "{out}"),
    ("search", "--module", "1"),
    ("verify",),
    ("gc",),
    ("index", "rebuild"),
    ("token", "list"),
    ("token", "create", "ci"),
    ("train", "{suite}/wn-isa-plant", "--init", "average"),
]


@pytest.mark.parametrize("verb", READ_VERBS, ids=lambda verb: "-".join(verb[:2]))
def test_a_verb_that_adds_no_module_does_not_create_a_registry(tmp_path: Path, suite: Path, verb: tuple[str, ...]) -> None:
    """A mistyped --registry is an error naming it, not a new empty registry answering '0 modules'."""
    missing = tmp_path / "typo"
    filled = [arg.format(out=tmp_path / "out", suite=suite) for arg in verb]
    message = one_line_error(adapters(missing, *filled))
    assert message.endswith(f"registry {missing} does not exist; check the path, or create the registry by upgrading its database: `adapters db upgrade`")
    assert not missing.exists() and not (tmp_path / "out").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"{empty} holds no registry (no registry.db)" in one_line_error(adapters(empty, *filled))
    assert list(empty.iterdir()) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mysql://user@db.lab/registry", "the registry URL names a mysql database, which deltahub does not support; use a directory, sqlite:///FILE or "),
        ("{garbage}", "is not a SQLite database file; name a registry directory, or restore its registry.db from a backup"),
        ("{plain}", "is a file, not a directory; name the registry's directory or a database URL (sqlite:///FILE)"),
        ("sqlite:///{garbage}/registry.db", "is not a SQLite database file"),
    ],
)
def test_a_registry_that_is_not_one_is_named_for_what_it_is(tmp_path: Path, spec: str, message: str) -> None:
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "registry.db").write_bytes(bytes(range(256)) * 8)
    plain = tmp_path / "plain.txt"
    plain.write_text("a plain file")
    before = file_bytes(tmp_path)
    for verb in (("list",), ("push", str(tmp_path / "nowhere"), "--task", "t", "--category", "c"), ("db", "upgrade")):
        assert message in one_line_error(adapters(spec.format(garbage=garbage, plain=plain), *verb)), verb
    assert file_bytes(tmp_path) == before


def test_registry_from_a_newer_schema(tmp_path: Path, registry: Path) -> None:
    newer = Path(shutil.copytree(registry, tmp_path / "newer"))
    engine = make_engine(f"sqlite:///{newer / 'registry.db'}")
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00dcafe9999'"))
    engine.dispose()
    before = snapshot_raw(newer)
    for verb in (("list",), ("db", "upgrade")):
        message = one_line_error(adapters(newer, *verb))
        assert "newer than this deltahub" in message
    assert snapshot_raw(newer) == before


def snapshot_raw(registry: Path) -> bytes:
    """The database file's bytes: the newer-schema registry must not even be opened for writing."""
    engine = make_engine(f"sqlite:///{registry / 'registry.db'}")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, blob_digest FROM modules ORDER BY id")).all()
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    return repr((rows, version)).encode()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("train", "{suite}/wn-isa-plant", "--epochs", "-1"), "--epochs must be at least 1, got -1"),
        (("train", "{suite}/wn-isa-plant", "--lr", "0"), "--lr must be a positive number, got 0.0"),
        (("train", "{suite}/wn-isa-plant", "--max-steps", "0"), "--max-steps must be at least 1, got 0"),
        (("train", "{suite}/wn-isa-plant", "--shots", "0"), "--shots must be at least 1, got 0"),
        (("ensemble", "{suite}/wn-isa-plant", "--temperature", "inf"), "--temperature must be a positive number, got inf"),
        (("ensemble", "{suite}/wn-isa-plant", "--score-examples", "0"), "--score-examples must be at least 1, got 0"),
        (("search", "{suite}/wn-isa-plant", "--top-k", "0"), "--top-k must be at least 1, got 0"),
        (("push", "{folder}", "--dataset", "{suite}/wn-isa-animal", "--metric", "acc=nan"), "needs a name and a finite number"),
        (("ensemble", "{suite}/wn-isa-plant", "--method-option", "temprature=0.5"), "lora has no option 'temprature'; its options are "),
        (("ensemble", "{suite}/wn-isa-plant", "--method-option", "r"), "--method-option 'r' is not KEY=VALUE"),
        (("train", "{suite}/wn-isa-plant", "--method-option", "r=four"), "lora option r takes int, got 'four'"),
        (("train", "{suite}/wn-isa-plant", "--method", "adapter", "--method-option", "r=4"), "adapter has no option 'r'"),
        (("train", "{suite}/wn-isa-plant", "--init", "1", "--method-option", "r=4"), "--method-option does not apply to --init 1"),
    ],
)
def test_bad_numbers_get_one_line_and_change_nothing(
    registry: Path, suite: Path, trained_folders: dict[str, Path], args: tuple[str, ...], message: str
) -> None:
    before = snapshot(registry)
    filled = [arg.format(suite=suite, folder=trained_folders["wn-isa-animal"]) for arg in args]
    assert message in one_line_error(adapters(registry, *filled))
    assert snapshot(registry) == before


def test_export_onto_a_file_is_refused(registry: Path, tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("x")
    assert "is a file; choose a new folder" in one_line_error(adapters(registry, "export", "1", str(target)))
    assert target.read_text() == "x"


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("../../etc/passwd", "taxonomy"),
        ("../../x y/z", "taxonomy"),
        ("lab/../../x", "taxonomy"),
        ("-dash", "taxonomy"),
        ("ok-name", "../up"),
        ("ok-name", "a/b"),
    ],
)
def test_task_and_category_names_follow_one_rule(registry: Path, suite: Path, trained_folders: dict[str, Path], tmp_path: Path, name: str, category: str):
    """A task.json, --task/--category and a model card are refused alike, before anything is written."""
    kind, bad = ("task", name) if category == "taxonomy" else ("category", category)
    rule = f"{kind} name {bad!r} is not allowed: a {kind} name is "
    dataset = Path(shutil.copytree(suite / "wn-isa-animal", tmp_path / "dataset"))
    card = json.loads((dataset / "task.json").read_text())
    (dataset / "task.json").write_text(json.dumps({**card, "name": name, "category": category}))
    folder = str(trained_folders["wn-isa-animal"])
    carded = Path(shutil.copytree(folder, tmp_path / "carded"))
    (carded / "README.md").write_text(f"---\ndatasets:\n- {json.dumps(name)}\ndeltahub:\n  category: {json.dumps(category)}\n---\n")
    before = snapshot(registry)
    assert rule in push_fails(registry, Path(folder), dataset)
    assert rule in one_line_error(adapters(registry, "push", folder, "--task", name, "--category", category))
    assert rule in one_line_error(adapters(registry, "push", str(carded)))
    imported = adapters(registry, "import", folder, "--task", name, "--category", category, "--json")
    assert imported.exit_code == 1 and rule in json.loads(imported.output)["folders"][0]["reason"]
    assert snapshot(registry) == before


def test_a_task_card_missing_one_field_says_add_it(registry: Path, suite: Path, module_copy: Path, tmp_path: Path) -> None:
    dataset = Path(shutil.copytree(suite / "wn-supersense-noun-a", tmp_path / "dataset"))
    card = json.loads((dataset / "task.json").read_text())
    (dataset / "task.json").write_text(json.dumps({key: value for key, value in card.items() if key != "format"}))
    assert push_fails(registry, module_copy, dataset).endswith("lacks format; add it")
