"""`--combine` through the Hub and the `adapters` CLI on a small real registry: every operator's init is
registered with its operator, exported, and loaded by PEFT; modules without LoRA factor pairs are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import SOURCES, TARGET, build_small_registry, cli, one_line_error, snapshot, tiny
from huggingface_hub import ModelCard
from peft import PeftModel, get_peft_model_state_dict

from ensembling.errors import EnsemblingError
from ensembling.operators import DEFAULT_DENSITY, OPERATORS, parse_operator
from hub import Hub, TransferOptions, load_dataset
from hub.backbones import load_base_model, resolve_base_model


@pytest.fixture(scope="module")
def small_registry(suite: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_small_registry(suite, tmp_path_factory.mktemp("combine"))


@pytest.fixture
def registry(small_registry, tmp_path: Path) -> tuple[Path, Path]:
    source, target = small_registry
    shutil.copytree(source, tmp_path / "registry")
    return tmp_path / "registry", target


def test_every_operator_registers_an_init_of_the_plain_schema_that_peft_loads(registry, tmp_path: Path):
    path, target = registry
    base = load_base_model(resolve_base_model("minilm"))
    with Hub(path) as hub:
        plain = hub.new_module("minilm", "lora", {"r": 4})
        trained = sum(p.numel() for p in plain.model.parameters() if p.requires_grad)
        for name in OPERATORS:
            result = hub.ensemble(target, TransferOptions(base_model="minilm", strategy="average", combine=name, seed=1))
            record = hub.show(result.record.id)
            label = parse_operator(name).label
            assert record.provenance.combine == label and result.ensemble.combine == label
            # the same schema, config and number of trained parameters as a plain module of the sources' config
            assert record.tensor_schema == hub.show(result.sources[0].module_id).tensor_schema and record.config["r"] == 4
            assert record.num_params == trained
            folder = hub.export(record.id, tmp_path / name)
            card = ModelCard.load(folder / "README.md")
            assert card.data.to_dict()["deltahub"]["provenance"]["combine"] == label and f"operator `{label}`" in card.text
            model = PeftModel.from_pretrained(base, folder)
            loaded = get_peft_model_state_dict(model, save_embedding_layers=False)
            assert all(torch.equal(loaded[key], tensor) for key, tensor in result.tensors.items()), name
            base = model.unload()  # the same backbone for the next operator, without this adapter


def test_svd_init_applies_the_best_rank_r_approximation_of_the_weighted_updates(registry):
    path, target = registry
    with Hub(path) as hub:
        result = hub.ensemble(target, TransferOptions(base_model="minilm", strategy="average", combine="svd"), register=False)
        sources = [hub.load_tensors(hub.show(row.module_id)) for row in result.sources]
        for a_key in (key for key in result.tensors if ".lora_A." in key):
            b_key = a_key.replace(".lora_A.", ".lora_B.")
            target_update = sum(row.weight * s[b_key].double() @ s[a_key].double() for row, s in zip(result.sources, sources))
            u, singular, vh = torch.linalg.svd(target_update)
            best = u[:, :4] @ torch.diag(singular[:4]) @ vh[:, :][:4]
            assert torch.allclose(result.tensors[b_key].double() @ result.tensors[a_key].double(), best, atol=1e-5)


def test_cli_ensemble_combine_shows_and_records_the_operator(registry):
    path, target = registry
    made = cli("ensemble", str(target), "--strategy", "average", "--combine", "ties", "--json", "--registry", str(path))
    assert made.exit_code == 0, made.output
    answer = json.loads(made.output)
    assert answer["combine"] == f"ties:{DEFAULT_DENSITY:g}"
    shown = cli("show", str(answer["module_id"]), "--registry", str(path))
    assert shown.exit_code == 0 and f"ties:{DEFAULT_DENSITY:g}" in shown.output
    as_json = json.loads(cli("show", str(answer["module_id"]), "--json", "--registry", str(path)).output)
    assert as_json["provenance"]["combine"] == f"ties:{DEFAULT_DENSITY:g}"


@pytest.fixture
def ia3_registry(suite: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Two IA³ sources with random vectors and the tiny target."""
    data = tmp_path / "data"
    target = tiny(suite, TARGET, data)
    with Hub(tmp_path / "registry") as hub:
        for task, seed in list(SOURCES.items())[:2]:
            module = hub.new_module("minilm", "ia3")
            generator = torch.Generator().manual_seed(seed)
            tensors = {name: 1 + 0.05 * torch.randn(t.shape, generator=generator) for name, t in module.tensors().items()}
            hub.register(module.method, module.config, tensors, load_dataset(tiny(suite, task, data)), module.backbone)
    return tmp_path / "registry", target


@pytest.mark.parametrize("name", ["svd", "ties", "dare_linear:0.5"])
def test_modules_without_factor_pairs_refuse_every_operator_but_linear(ia3_registry, name):
    path, target = ia3_registry
    before = snapshot(path)
    result = cli("ensemble", str(target), "--method", "ia3", "--strategy", "loss", "--combine", name, "--registry", str(path))
    assert "merges LoRA factor pairs (lora_A/lora_B) and these modules have none" in one_line_error(result)
    assert result.exit_code == 1 and snapshot(path) == before
    with Hub(path) as hub, pytest.raises(EnsemblingError, match="compose with --combine linear only"):
        hub.ensemble(target, TransferOptions(method="ia3", strategy="loss", combine=name))
    assert snapshot(path) == before


@pytest.mark.parametrize(
    ("combine", "message"),
    [("cat", "cat concatenates ranks"), ("mean", "unknown --combine 'mean'"), ("ties:2", "density must be in (0, 1)")],
)
def test_cli_bad_operators_are_refused_in_one_line(registry, combine, message):
    path, target = registry
    before = snapshot(path)
    for command in (("ensemble", str(target)), ("train", str(target), "--init", "average", "--push")):
        result = cli(*command, "--combine", combine, "--registry", str(path))
        assert message in one_line_error(result), command
    assert snapshot(path) == before


def test_train_from_a_registry_module_takes_no_operator(registry):
    path, target = registry
    before = snapshot(path)
    result = cli("train", str(target), "--init", "1", "--combine", "svd", "--registry", str(path))
    assert "--combine does not apply to --init 1: a registry module is loaded whole" in one_line_error(result)
    assert snapshot(path) == before
