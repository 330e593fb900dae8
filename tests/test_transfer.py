"""Ensembles and transfer inits through the Hub and the `adapters ensemble` CLI, on a small real registry.

Sources are LoRA modules of the packaged MiniLM with random (untrained) tensors, registered
for tiny WordNet datasets; what is checked is the plumbing: candidate choice, exclusion of the
target's own modules, composition from the blobs, provenance, determinism and bad input.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import SOURCES, TARGET, build_small_registry, cli, one_line_error, snapshot

from ensembling.errors import EnsemblingError
from hub import Hub, TransferOptions, load_dataset
from hub.datasets import Dataset


@pytest.fixture(scope="module")
def small_registry(suite: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_small_registry(suite, tmp_path_factory.mktemp("transfer"))


@pytest.fixture
def registry(small_registry, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy, so a test may add inits or corrupt blobs."""
    source, target = small_registry
    shutil.copytree(source, tmp_path / "registry")
    return tmp_path / "registry", target


def test_ensemble_scores_every_compatible_source_but_the_targets_own(registry):
    path, target = registry
    with Hub(path) as hub:
        before = len(hub.list())
        result = hub.ensemble(target, TransferOptions(base_model="minilm", method="lora", strategy="el2n", score_examples=8))
        assert sorted(row.task for row in result.sources) == sorted(SOURCES)
        assert sum(result.weights.values()) == pytest.approx(1.0)
        assert all(row.score is not None and row.score > 0 for row in result.sources)
        # the composed init is Σ w_i θ_i of the blobs
        for key, tensor in result.tensors.items():
            expected = sum(row.weight * hub.load_tensors(hub.show(row.module_id))[key].double() for row in result.sources)
            assert torch.allclose(tensor.double(), expected, atol=1e-6)
        record = result.record
        assert record.origin == "ensemble" and len(hub.list()) == before + 1
        assert record.task == TARGET
        provenance = hub.show(record.id).provenance
        assert provenance.strategy == "el2n" and provenance.temperature == pytest.approx(0.1)
        assert {s.module_id: s.weight for s in provenance.sources} == pytest.approx(result.weights)
        assert provenance.target_fingerprint == load_dataset(target).fingerprint
        # determinism: the same inputs give the same weights, and the same init (one module)
        again = hub.ensemble(target, TransferOptions(base_model="minilm", strategy="el2n", score_examples=8))
        assert again.weights == result.weights and again.record.id == record.id
        # composed inits are never sources of later ensembles
        assert all(hub.show(row.module_id).origin == "trained" for row in again.sources)


def test_top_k_candidates_and_group_average(registry):
    path, target = registry
    with Hub(path) as hub:
        top = hub.ensemble(target, TransferOptions(strategy="loss", score_examples=8, top_k=2), register=False)
        assert sum(1 for row in top.sources if row.weight > 0) == 2
        narrowed = hub.ensemble(target, TransferOptions(strategy="average", candidates=2), register=False)
        assert len(narrowed.sources) == 2
        group = hub.ensemble(target, TransferOptions(strategy="group-average"), register=False)
        assert sorted(row.task for row in group.sources) == ["wn-isa-artifact", "wn-isa-plant"]  # taxonomy, like the target
        assert [row.weight for row in group.sources] == [0.5, 0.5]


def test_transfer_init_returns_a_peft_model_holding_the_ensemble(registry):
    from peft import PeftModel

    path, target = registry
    with Hub(path) as hub:
        module = hub.transfer_init(target, TransferOptions(base_model="minilm", strategy="cos", score_examples=8), register=False)
        assert isinstance(module.model, PeftModel)
        for key, tensor in module.transfer.tensors.items():
            assert torch.equal(module.tensors()[key], tensor)
        first = hub.transfer_init(target, TransferOptions(base_model="minilm", strategy="random"), register=False)
        second = hub.transfer_init(target, TransferOptions(base_model="minilm", strategy="random"), register=False)
        assert first.transfer.sources == ()
        for key, tensor in first.tensors().items():
            assert torch.equal(tensor, second.tensors()[key])
            if ".lora_B." in key:
                assert not tensor.any()  # LoRA's default init: B = 0, no transfer
        torch.rand(1000)  # whatever the process drew before does not change a seeded default init
        fresh = hub.new_module("minilm", "lora", {"r": 4}, seed=0)  # the sources' config, which transfer_init takes
        assert all(torch.equal(tensor, first.tensors()[key]) for key, tensor in fresh.tensors().items())
        other = hub.new_module("minilm", "lora", {"r": 4}, seed=1)
        assert any(not torch.equal(tensor, first.tensors()[key]) for key, tensor in other.tensors().items())
        parameters = sum(p.numel() for p in module.model.parameters() if p.requires_grad)
        assert parameters == sum(t.numel() for t in module.tensors().values())


def test_ensemble_bad_input_in_the_api_leaves_the_registry_as_it_was(registry):
    path, target = registry
    before = snapshot(path)
    with Hub(path) as hub:
        with pytest.raises(EnsemblingError, match="no compatible candidates.*prefix"):
            hub.ensemble(target, TransferOptions(method="prefix", strategy="el2n", score_examples=8))
        with pytest.raises(EnsemblingError, match="reads the target's dev split, but 'wn-isa-animal' has none"):
            hub.ensemble(Dataset(load_dataset(target).card, {"train": load_dataset(target).split("train")}), TransferOptions(strategy="performance"))
        with pytest.raises(EnsemblingError, match="temperature"):
            hub.ensemble(target, TransferOptions(strategy="el2n", temperature=0.0, score_examples=8))
    assert snapshot(path) == before


def test_cli_ensemble_end_to_end(registry, tmp_path: Path):
    path, target = registry
    before = snapshot(path)
    out, plot = tmp_path / "init", tmp_path / "weights.png"
    result = cli(
        "ensemble", str(target), "--base-model", "minilm", "--method", "lora", "--strategy", "el2n", "--top-k", "3",
        "--score-examples", "8", "--out", str(out), "--plot", str(plot), "--registry", str(path),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for task in SOURCES:
        assert task in result.output
    assert "el2n init for wn-isa-animal" in result.output and "registered the init as module" in result.output
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    modules, generation, *_ = snapshot(path)
    assert len(modules) == len(before[0]) + 1 and modules[-1][3] == "ensemble" and generation > before[1]
    # the saved folder loads back as a module of this registry's schema
    with Hub(path) as hub:
        config, tensors = hub.show(modules[-1][0]).method, hub.load_tensors(hub.show(modules[-1][0]))
        from hub.methods import get_method

        _, saved = get_method(config).read_folder(out)
        assert all(torch.equal(saved[key], tensors[key]) for key in tensors)


def test_cli_ensemble_says_when_another_strategy_already_registered_the_same_weights(registry):
    path, target = registry
    common = ("--candidates", "1", "--score-examples", "8", "--registry", str(path))  # one source: weight 1 whatever the strategy
    first = cli("ensemble", str(target), "--strategy", "cos", *common)
    assert first.exit_code == 0, first.output
    assert "registered the init as module" in first.output
    modules = snapshot(path)[0]
    second = cli("ensemble", str(target), "--strategy", "average", *common)
    assert second.exit_code == 0, second.output
    assert f"the init has the same weights as module {modules[-1][0]}, registered earlier by strategy cos" in " ".join(second.output.split())
    assert snapshot(path)[0] == modules


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strategy", "nearest"], "unknown strategy 'nearest'; use one of auto, guarded, cos, el2n, grand, kl, loss, euclidean, performance, weight-cos"),
        (["--strategy", "shuffled:average"], "shuffled:average: only scored strategies have weights to shuffle"),
        (["--temperature", "0"], "--temperature must be a positive number"),
        (["--temperature", "-1"], "--temperature must be a positive number"),
        (["--method", "prefix"], "no compatible candidates"),
        (["--score-examples", "0"], "--score-examples must be at least 1"),
        (["--top-k", "0"], "--top-k must be at least 1"),
    ],
)
def test_cli_ensemble_bad_input(registry, extra, message):
    path, target = registry
    before = snapshot(path)
    result = cli("ensemble", str(target), "--score-examples", "8", *extra, "--registry", str(path))
    assert message in one_line_error(result)
    assert snapshot(path) == before


def test_cli_ensemble_refuses_a_dataset_without_labels_and_a_used_out_folder(registry, tmp_path: Path):
    path, target = registry
    before = snapshot(path)
    unlabelled = tmp_path / "unlabelled"
    shutil.copytree(target, unlabelled)
    (unlabelled / "dev.jsonl").write_text('{"text": "cat: a small feline", "text_pair": "animal"}\n')
    assert "label None is not one of the card's labels" in one_line_error(cli("ensemble", str(unlabelled), "--score-examples", "1", "--registry", str(path)))
    used = tmp_path / "used"
    used.mkdir()
    (used / "file").write_text("x")
    assert "not an empty folder" in one_line_error(cli("ensemble", str(target), "--out", str(used), "--registry", str(path)))
    assert snapshot(path) == before


def test_cli_ensemble_corrupt_candidate_is_named_and_skipped_only_when_asked(registry):
    path, target = registry
    with Hub(path) as hub:
        victim = next(record for record in hub.list() if record.task == "wn-isa-plant")
        blob = hub.registry.blobs.path(victim.blob_digest)
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-8] + b"corrupt!")
    before = snapshot(path)
    line = one_line_error(cli("ensemble", str(target), "--score-examples", "8", "--registry", str(path)))
    assert f"module {victim.id} (wn-isa-plant)" in line and "sha256" in line and "--skip-corrupt" in line
    assert snapshot(path) == before
    result = cli("ensemble", str(target), "--score-examples", "8", "--skip-corrupt", "--json", "--registry", str(path))
    assert result.exit_code == 0, result.output
    assert "wn-isa-plant" not in [row["task"] for row in json.loads(result.output)["sources"]]
