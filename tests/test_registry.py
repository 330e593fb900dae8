"""The registry core end to end on a real SQLite file, real faiss and real PEFT modules."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from helpers import adapters
from peft import PeftModel

from hub import Hub
from hub.backbones import load_base_model, resolve_base_model
from store.db import make_engine, upgrade
from store.models import Base


def test_migrations_make_exactly_the_declared_schema(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    upgrade(engine)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_push_list_show_search_rm_through_the_cli(tmp_path: Path, trained_folders: dict[str, Path], suite: Path) -> None:
    registry = tmp_path / "registry"
    ids = {}
    for task, folder in trained_folders.items():
        result = adapters(registry, "push", str(folder), "--dataset", str(suite / task), "--metric", "acc=0.5", "--tag", "demo", "--json")
        assert result.exit_code == 0, result.output
        ids[task] = json.loads(result.output)["id"]
    again = adapters(registry, "push", str(trained_folders["wn-isa-animal"]), "--dataset", str(suite / "wn-isa-animal"), "--json")
    assert json.loads(again.output)["id"] == ids["wn-isa-animal"], "pushing the same weights twice is idempotent"

    listed = json.loads(adapters(registry, "list", "--json").output)
    assert sorted(m["id"] for m in listed) == sorted(ids.values())
    assert {m["category"] for m in json.loads(adapters(registry, "list", "--category", "taxonomy", "--json").output)} == {"taxonomy"}

    shown = json.loads(adapters(registry, "show", str(ids["wn-isa-animal"]), "--json").output)
    assert shown["task"] == "wn-isa-animal" and shown["metrics"] == {"acc": 0.5} and shown["tags"] == ["demo"]

    # A supersense query ranks the supersense modules above the is-a module.
    hits = json.loads(adapters(registry, "search", str(suite / "wn-supersense-noun-c"), "--top-k", "3", "--json").output)
    assert [hit["task"] for hit in hits][-1] == "wn-isa-animal"
    assert hits[0]["similarity"] >= hits[1]["similarity"] >= hits[2]["similarity"]
    filtered = json.loads(adapters(registry, "search", str(suite / "wn-supersense-noun-c"), "--category", "taxonomy", "--json").output)
    assert [hit["task"] for hit in filtered] == ["wn-isa-animal"]
    by_module = json.loads(adapters(registry, "search", "--module", str(ids["wn-isa-animal"]), "--json").output)
    assert ids["wn-isa-animal"] not in [hit["id"] for hit in by_module] and len(by_module) == 2

    table = adapters(registry, "search", str(suite / "wn-supersense-noun-c"))
    assert "wn-supersense-noun-a" in table.output and "similarity" in table.output

    assert adapters(registry, "rm", str(ids["wn-supersense-noun-b"])).exit_code == 0
    after = json.loads(adapters(registry, "search", str(suite / "wn-supersense-noun-c"), "--json").output)
    assert "wn-supersense-noun-b" not in [hit["task"] for hit in after], "the index follows rm"

    rebuilt = adapters(registry, "index", "rebuild")
    assert rebuilt.exit_code == 0 and "datasets: 2 vectors" in rebuilt.output


def test_stale_or_missing_indexes_are_rebuilt_not_trusted(tmp_path: Path, session_hub: Hub, trained_folders: dict[str, Path], suite: Path) -> None:
    registry = tmp_path / "registry"
    with Hub(registry) as hub:
        hub._backbones = session_hub._backbones
        hub._encoder = session_hub._encoder
        first = hub.push(trained_folders["wn-isa-animal"], suite / "wn-isa-animal")
        assert [hit.module.id for hit in hub.search(suite / "wn-isa-plant")] == [first.id]
    for index_file in (registry / "indexes").glob("*.faiss"):
        index_file.write_bytes(b"garbage")
    with Hub(registry) as other:
        other._backbones = session_hub._backbones
        other._encoder = session_hub._encoder
        assert [hit.module.id for hit in other.search(suite / "wn-isa-plant")] == [first.id]
        # A second process's push makes this one's cached index stale; the next search sees it.
        with Hub(registry) as writer:
            writer._backbones = session_hub._backbones
            writer._encoder = session_hub._encoder
            second = writer.push(trained_folders["wn-supersense-noun-a"], suite / "wn-supersense-noun-a")
        assert {hit.module.id for hit in other.search(suite / "wn-isa-plant")} == {first.id, second.id}


def test_export_loads_in_peft_with_the_same_outputs(tmp_path: Path, session_hub: Hub, trained_folders: dict[str, Path], suite: Path) -> None:
    folder = trained_folders["wn-supersense-noun-a"]
    record = session_hub.push(folder, suite / "wn-supersense-noun-a")
    exported = session_hub.export(record.id, tmp_path / "exported")
    ref = resolve_base_model("minilm")
    tokenizer_inputs = session_hub.new_module("minilm", "lora").formulation.tokenizer(
        ["a small furry animal", "a tool for cutting"], ["animal", "artifact"], return_tensors="pt", padding=True
    )
    original = PeftModel.from_pretrained(load_base_model(ref), folder).eval()
    roundtrip = PeftModel.from_pretrained(load_base_model(ref), exported).eval()
    with torch.no_grad():
        expected = original(**tokenizer_inputs).logits
        actual = roundtrip(**tokenizer_inputs).logits
    assert torch.allclose(expected, actual, atol=1e-6)
    # The module changes the backbone's outputs: the comparison above is not vacuous.
    with torch.no_grad():
        assert not torch.allclose(load_base_model(ref)(**tokenizer_inputs).logits, actual, atol=1e-4)
