"""Hub-ready export: the model card `adapters export` writes beside the PEFT files, and its round trip through `adapters push`.

Real parts throughout: a SQLite registry of LoRA modules on the packaged MiniLM, cards read back with
`huggingface_hub.ModelCard.load`, exports loaded with `PeftModel.from_pretrained`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import SOURCES, TARGET, build_small_registry, cli, one_line_error, random_module, snapshot, tiny
from huggingface_hub import ModelCard
from peft import PeftModel, get_peft_model_state_dict

from hub import Hub, TransferOptions, load_dataset
from hub.backbones import MINILM_NAME, load_base_model, resolve_base_model
from hub.cards import read_card
from store.records import Provenance, SourceWeight

TAGS = ("smoke", "wordnet")
METRICS = {"dev_acc": 0.75, "test_acc": 0.5, "loss": 0.3}


@pytest.fixture(scope="module")
def small_registry(suite: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """test_transfer's small registry, the target's own module with tags and metrics."""
    return build_small_registry(suite, tmp_path_factory.mktemp("cards"), metrics=METRICS, tags=TAGS)


@pytest.fixture
def registry(small_registry, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy, so a test may add inits."""
    source, target = small_registry
    shutil.copytree(source, tmp_path / "registry")
    return tmp_path / "registry", target


def target_module(path: Path):
    with Hub(path) as hub:
        return next(record for record in hub.list() if record.task == TARGET and record.origin == "trained")


def assert_peft_loads(path: Path, module_id: int, folder: Path) -> None:
    """PEFT loads the export, holding exactly the registry's tensors."""
    model = PeftModel.from_pretrained(load_base_model(resolve_base_model("minilm")), folder)
    loaded = get_peft_model_state_dict(model, save_embedding_layers=False)  # the base is not in the Hub cache: no vocabulary check
    with Hub(path) as hub:
        stored = hub.load_tensors(hub.show(module_id))
    assert sorted(loaded) == sorted(stored)
    assert all(torch.equal(loaded[name], stored[name]) for name in stored)


def test_export_of_a_trained_module_has_a_hub_card_and_still_loads_in_peft(registry, tmp_path: Path):
    path, _target = registry
    record = target_module(path)
    out = tmp_path / "isa-animal"
    result = cli("export", str(record.id), str(out), "--registry", str(path))
    assert result.exit_code == 0, result.output
    assert "README.md" in result.output
    card = ModelCard.load(out / "README.md")
    data = card.data
    assert data.library_name == "peft" and data.base_model == MINILM_NAME and data.base_model_relation == "adapter"
    assert data.datasets == [TARGET]
    assert data.tags == [*TAGS, "deltahub", "lora"]
    scores = {(r.dataset_type, r.dataset_split, r.metric_type): r.metric_value for r in data.eval_results}
    assert scores == {(TARGET, "dev", "acc"): 0.75, (TARGET, "test", "acc"): 0.5}
    assert data.model_name == "isa-animal"
    assert data["deltahub"] == {"category": "taxonomy", "origin": "trained", "metrics": {"loss": 0.3}}  # no provenance: not an init
    assert "| test_acc | 0.5 |" in card.text and "PeftModel.from_pretrained" in card.text
    assert_peft_loads(path, record.id, out)


def test_export_of_an_ensemble_init_is_a_merge_carrying_its_provenance(registry, tmp_path: Path):
    path, target = registry
    result = cli("ensemble", str(target), "-s", "average", "--registry", str(path))
    assert result.exit_code == 0, result.output
    with Hub(path) as hub:
        init = next(record for record in hub.list() if record.origin == "ensemble")
    out = tmp_path / "init"
    assert cli("export", str(init.id), str(out), "--registry", str(path)).exit_code == 0
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "peft" and card.data.base_model == MINILM_NAME and card.data.base_model_relation == "merge"
    assert card.data.eval_results is None  # an init has no scores yet
    provenance = card.data["deltahub"]["provenance"]
    assert (provenance["strategy"], provenance["top_k"], provenance["chosen"], provenance["layers"]) == ("average", None, None, None)
    assert provenance["temperature"] == init.provenance.temperature
    assert provenance["target_fingerprint"] == load_dataset(target).fingerprint
    expected = {s.module_id: (s.digest, s.weight) for s in init.provenance.sources}
    assert {s["module_id"]: (s["digest"], s["weight"]) for s in provenance["sources"]} == expected
    assert len(expected) == len(SOURCES) and all(weight == pytest.approx(0.25) for _digest, weight in expected.values())
    assert "## Provenance" in card.text and "strategy `average`" in card.text
    for module_id, (digest, _weight) in expected.items():
        assert f"| {module_id} | `{digest[:16]}…` |" in card.text
    assert read_card(out).task == TARGET and read_card(out).category == "taxonomy"
    assert_peft_loads(path, init.id, out)


def test_push_of_an_export_brings_back_its_tags_and_metrics_and_flags_win(registry, tmp_path: Path):
    path, target = registry
    record = target_module(path)
    out = tmp_path / "export"
    assert cli("export", str(record.id), str(out), "--registry", str(path)).exit_code == 0
    card = read_card(out)
    assert (card.task, card.category, card.tags, card.metrics) == (TARGET, "taxonomy", TAGS, METRICS)

    pushed = cli("push", str(out), "--dataset", str(target), "--registry", str(tmp_path / "fresh"), "--json")
    assert pushed.exit_code == 0, pushed.output
    again = json.loads(pushed.output)
    assert (again["task"], again["category"], again["blob_digest"]) == (TARGET, "taxonomy", record.blob_digest)
    assert (again["origin"], again["provenance"]) == ("trained", None)
    assert tuple(again["tags"]) == record.tags and again["metrics"] == record.metrics

    flagged = cli("push", str(out), "--dataset", str(target), "--metric", "test_acc=0.9", "--tag", "reviewed", "--registry", str(tmp_path / "other"), "--json")
    assert flagged.exit_code == 0, flagged.output
    overridden = json.loads(flagged.output)
    assert overridden["metrics"] == {**METRICS, "test_acc": 0.9}
    assert sorted(overridden["tags"]) == sorted([*TAGS, "reviewed"])


@pytest.mark.parametrize(
    ("front_matter", "message"),
    [
        ("tags: [smoke, wordnet\nlibrary_name: peft", "has malformed YAML front matter (expected ',' or ']', but got ':' at line 2 of the front matter)"),
        ("- a list\n- not a mapping", "has unusable front matter (repo card metadata block should be a dict)"),
        ("deltahub:\n  metrics:\n    loss: low", "metric loss is 'low', not a finite number"),
        ("deltahub: [category, taxonomy]", "`deltahub` is not a mapping"),
        ("deltahub:\n  origin: merged", "declares origin 'merged'; deltahub registers trained or ensemble modules"),
        ("deltahub:\n  origin: ensemble", "declares origin ensemble but has no `deltahub.provenance`"),
        ("deltahub:\n  provenance: [average]", "`deltahub.provenance` is not a mapping"),
        ("deltahub:\n  provenance: {strategy: average, temperature: hot, sources: []}", "`deltahub.provenance` has temperature 'hot', not a positive number"),
        ("deltahub:\n  provenance: {strategy: average, temperature: 1}", "`deltahub.provenance` has no list of sources"),
        ("deltahub:\n  provenance: {strategy: average, temperature: 1, combine: mean, sources: []}", "has combine 'mean' (unknown --combine 'mean'"),
        (
            "deltahub:\n  provenance: {strategy: average, temperature: 1, sources: [{digest: abc, weight: 1}]}",
            "source 1 has digest 'abc', not a blob's sha256 (64 hex digits)",
        ),
        (
            f"deltahub:\n  provenance: {{strategy: average, temperature: 1, sources: [{{digest: '{'0' * 64}', weight: .nan}}]}}",
            "source 1 has weight nan, not a finite number",
        ),
    ],
)
def test_push_of_a_folder_with_a_bad_card_is_one_line_and_changes_nothing(registry, tmp_path: Path, front_matter: str, message: str):
    path, target = registry
    out = tmp_path / "export"
    assert cli("export", str(target_module(path).id), str(out), "--registry", str(path)).exit_code == 0
    (out / "README.md").write_text(f"---\n{front_matter}\n---\n\n# a card\n")
    before = snapshot(path)
    line = one_line_error(cli("push", str(out), "--dataset", str(target), "--registry", str(path)))
    assert str(out / "README.md") in line and message in line
    assert snapshot(path) == before


def test_push_of_a_folder_peft_saved_takes_no_tags_from_its_template_card(registry, tmp_path: Path):
    """PEFT's save_pretrained writes a card tagged with the base model's path, the method and the library: columns, not tags."""
    path, target = registry
    folder = tmp_path / "peft-saved"
    with Hub(path) as hub:
        hub.new_module("minilm", "lora", {"r": 4}).model.save_pretrained(folder)
        assert "base_model:adapter:" in (folder / "README.md").read_text()
        record = hub.push(folder, target, tags=["mine"])
    assert record.tags == ("mine",) and record.metrics == {}


def test_export_of_a_bottleneck_adapter_does_not_claim_peft(registry, tmp_path: Path):
    path, target = registry
    with Hub(path) as hub:
        module = hub.new_module("minilm", "adapter")
        record = hub.register(module.method, module.config, module.tensors(), load_dataset(target), module.backbone)
        card = ModelCard.load(hub.export(record.id, tmp_path / "bottleneck") / "README.md")
    assert card.data.library_name is None and card.data.tags == ["deltahub", "adapter"]
    assert "PeftModel" not in card.text and "adapters push" in card.text


def composed_init(hub: Hub, target: Path, sources: list) -> tuple:
    """An init registered as `auto` registers one (chosen, rationale, layers), over `sources` with their scores and weights."""
    module, tensors = random_module(hub, 42)
    weights = [(record, score, weight) for record, score, weight in zip(sources, (0.9, 0.5, None), (0.6, 0.3, 0.1), strict=False)]
    provenance = Provenance(
        strategy="auto",
        temperature=0.1,
        top_k=3,
        sources=tuple(SourceWeight(record.id, record.blob_digest, score, weight) for record, score, weight in weights),
        target_fingerprint=load_dataset(target).fingerprint,
        chosen="el2n",
        rationale="auto: chose el2n: cross-validated accuracy 0.688 vs 0.531 for the default init; 2 folds",
        layers="upper",
        combine="ties_svd:0.5",
    )
    data = load_dataset(target)
    return hub.register(module.method, module.config, tensors, data, module.backbone, origin="ensemble", provenance=provenance, tags=("init:auto",))


def test_push_of_an_exported_init_restores_its_origin_and_provenance_with_sources_found_by_digest(registry, tmp_path: Path):
    path, target = registry
    data = target.parent
    with Hub(path) as hub:
        sources = [record for record in hub.list() if record.task in SOURCES][:3]
        init = composed_init(hub, target, sources)
        hub.export(init.id, tmp_path / "init")
    card = read_card(tmp_path / "init")
    assert card.origin == "ensemble" and card.provenance.strategy == "auto"
    assert [s.digest for s in card.provenance.sources] == [r.blob_digest for r in sources]
    assert {s.module_id for s in card.provenance.sources} == {0}  # ids are the exporting registry's: mapped on push

    # Another registry holding the same sources under other ids (a module of its own first, then the sources in reverse).
    other = tmp_path / "other"
    with Hub(path) as hub, Hub(other) as there:
        module, tensors = random_module(there, 7)
        there.register(module.method, module.config, tensors, load_dataset(data / "wn-isa-plant"), module.backbone)
        ids = {}
        for record in reversed(sources):
            held = there.register(module.method, module.config, hub.load_tensors(record), load_dataset(data / record.task), module.backbone)
            ids[record.blob_digest] = held.id
    assert sorted(ids.values()) == [2, 3, 4] and [ids[r.blob_digest] for r in sources] == [4, 3, 2]

    pushed = cli("push", str(tmp_path / "init"), "--dataset", str(target), "--registry", str(other), "--json")
    assert pushed.exit_code == 0, pushed.output
    again = json.loads(pushed.output)
    assert again["origin"] == "ensemble" and again["blob_digest"] == init.blob_digest and "init:auto" in again["tags"]
    with Hub(other) as there:
        restored = there.show(again["id"]).provenance
    expected = init.provenance
    assert (restored.strategy, restored.temperature, restored.top_k) == ("auto", 0.1, 3)
    assert (restored.chosen, restored.rationale, restored.layers, restored.combine) == (expected.chosen, expected.rationale, "upper", "ties_svd:0.5")
    assert restored.target_fingerprint == expected.target_fingerprint
    assert [(s.digest, s.score, s.weight) for s in restored.sources] == [(s.digest, s.score, s.weight) for s in expected.sources]
    assert [s.module_id for s in restored.sources] == [ids[r.blob_digest] for r in sources]

    shown = cli("show", str(again["id"]), "--registry", str(other))
    assert shown.exit_code == 0, shown.output
    assert "ensemble" in shown.output and "auto τ=0.1 top-k=3 layers=upper; 4:0.600, 3:0.300, 2:0.100" in shown.output
    assert "auto: chose el2n" in shown.output

    # A registry that holds none of them: every source keeps its digest, with module id 0.
    empty = tmp_path / "empty"
    pushed = cli("push", str(tmp_path / "init"), "--dataset", str(target), "--registry", str(empty), "--json")
    assert pushed.exit_code == 0, pushed.output
    alone = json.loads(pushed.output)
    assert alone["origin"] == "ensemble"
    assert [(s["module_id"], s["digest"], s["weight"]) for s in alone["provenance"]["sources"]] == [
        (0, r.blob_digest, w) for r, w in zip(sources, (0.6, 0.3, 0.1), strict=True)
    ]
    assert (alone["provenance"]["chosen"], alone["provenance"]["layers"], alone["provenance"]["combine"]) == ("el2n", "upper", "ties_svd:0.5")
    shown = cli("show", str(alone["id"]), "--registry", str(empty))
    assert f"{sources[0].blob_digest[:8]}:0.600" in shown.output


def test_push_of_an_exported_average_init_into_a_fresh_registry_keeps_it_an_init(registry, tmp_path: Path):
    path, target = registry
    assert cli("ensemble", str(target), "-s", "average", "--registry", str(path)).exit_code == 0
    with Hub(path) as hub:
        init = next(record for record in hub.list() if record.origin == "ensemble")
        hub.export(init.id, tmp_path / "init")
    pushed = cli("push", str(tmp_path / "init"), "--dataset", str(target), "--registry", str(tmp_path / "fresh"), "--json")
    assert pushed.exit_code == 0, pushed.output
    again = json.loads(pushed.output)
    assert again["origin"] == "ensemble" and again["provenance"]["strategy"] == "average"
    assert [(s["digest"], s["weight"]) for s in again["provenance"]["sources"]] == [(s.digest, s.weight) for s in init.provenance.sources]
    # Back into the registry it came from: the same weights on the same dataset are the init itself.
    back = cli("push", str(tmp_path / "init"), "--dataset", str(target), "--registry", str(path), "--json")
    assert back.exit_code == 0, back.output
    assert json.loads(back.output)["id"] == init.id


def test_push_of_an_exported_init_without_its_target_dataset_is_one_line_and_changes_nothing(registry, tmp_path: Path):
    path, target = registry
    with Hub(path) as hub:
        init = composed_init(hub, target, [record for record in hub.list() if record.task in SOURCES][:2])
        hub.export(init.id, tmp_path / "init")
    other = tmp_path / "other"
    assert cli("push", str(tmp_path / "init"), "--dataset", str(target), "--registry", str(other)).exit_code == 0
    before = snapshot(other)
    line = one_line_error(cli("push", str(tmp_path / "init"), "--registry", str(other)))
    assert "is a composed init (strategy auto)" in line and "pass --dataset TARGET_DIR" in line
    assert snapshot(other) == before


def test_a_trained_module_keeps_its_inits_provenance_with_a_dataset_and_is_still_pushed_without_one(registry, tmp_path: Path):
    path, target = registry
    with Hub(path) as hub:
        source = next(record for record in hub.list() if record.task in SOURCES)
        module, tensors = random_module(hub, 43)
        init = Provenance(strategy="module", temperature=1.0, top_k=None, sources=(SourceWeight(source.id, source.blob_digest, None, 1.0),))
        trained = hub.register(module.method, module.config, tensors, load_dataset(target), module.backbone, provenance=init)
        hub.export(trained.id, tmp_path / "trained")
    assert read_card(tmp_path / "trained").origin == "trained"
    with Hub(tmp_path / "with") as there:
        record = there.push(tmp_path / "trained", target)
    assert record.origin == "trained" and record.provenance.strategy == "module"
    assert [(s.module_id, s.digest) for s in record.provenance.sources] == [(0, source.blob_digest)]
    with Hub(tmp_path / "without") as there:
        record = there.push(tmp_path / "trained")
    assert (record.origin, record.provenance, record.dataset_id) == ("trained", None, None)


def test_an_init_of_peft_saved_sources_is_stored_and_exported_trainable(suite: Path, tmp_path: Path):
    """PEFT's save_pretrained records inference_mode true; the init composed from such sources is meant to be trained."""
    from peft import PeftConfig, get_peft_model

    path = tmp_path / "registry"
    with Hub(path) as hub:
        for seed, task in enumerate(list(SOURCES)[:2]):
            folder = tmp_path / task
            hub.new_module("minilm", "lora", {"r": 2}, seed=seed).model.save_pretrained(folder)
            assert json.loads((folder / "adapter_config.json").read_text())["inference_mode"] is True
            assert hub.push(folder, tiny(suite, task, tmp_path / "data")).config["inference_mode"] is False
        init = hub.ensemble(tiny(suite, TARGET, tmp_path / "data"), TransferOptions(strategy="average")).record
        assert init.config["inference_mode"] is False
        hub.export(init.id, tmp_path / "init")
    assert json.loads((tmp_path / "init" / "adapter_config.json").read_text())["inference_mode"] is False
    assert 'PeftModel.from_pretrained(base, "path/to/this/folder", is_trainable=True)' in (tmp_path / "init" / "README.md").read_text()
    model = get_peft_model(load_base_model(resolve_base_model("minilm")), PeftConfig.from_pretrained(tmp_path / "init"))
    assert any(parameter.requires_grad for name, parameter in model.named_parameters() if "lora_" in name)


def test_export_loads_no_model_library(registry, tmp_path: Path):
    """Writing a config, a blob's bytes and a card needs neither torch nor PEFT (importing them took most of an export's seconds)."""
    import subprocess
    import sys

    path, _target = registry
    record = target_module(path)
    script = (
        "import sys\nfrom hub import Hub\nwith Hub(sys.argv[1]) as hub:\n    hub.export(int(sys.argv[2]), sys.argv[3])\n"
        "print(sorted(name for name in ('torch', 'peft', 'transformers') if name in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path), str(record.id), str(tmp_path / "out")], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stderr
    assert_peft_loads(path, record.id, tmp_path / "out")
