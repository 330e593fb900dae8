"""Bottleneck (Houlsby) adapters on tiny random BERT (cross-encoder), T5 and GPT-2."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from helpers import MIXED, tiny_backbone, toy_dataset

from hub.backbones import formulation_for, load_base_model, resolve_base_model
from hub.datasets import TaskCard, from_records
from hub.errors import BaseModelMismatch, HubError, ModuleFolderError
from hub.methods import METHODS, get_method, method_for_config, read_config
from hub.methods.bottleneck import BottleneckMethod
from hub.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")

KINDS = ["bert", "t5", "gpt2"]
ADAPTER = BottleneckMethod()


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("tiny")
    loaded = {}
    for kind in KINDS:
        ref = resolve_base_model(tiny_backbone(kind, root))
        loaded[kind] = (ref, load_base_model(ref))
    return loaded


def fresh(bases, kind: str, **overrides):
    ref, base = bases[kind]
    config = ADAPTER.default_config(ref, overrides)
    return ref, config, ADAPTER.attach(copy.deepcopy(base), config)


def outputs(model, formulation, examples=MIXED) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return formulation.predictions(model, formulation.collate(examples)).log_probs


def randomize(model) -> None:
    """Give every module tensor random values, so that the up-projections are no longer zero."""
    generator = torch.Generator().manual_seed(1)
    ADAPTER.set_tensors(model, {name: torch.randn(t.shape, generator=generator) * 0.1 for name, t in ADAPTER.get_tensors(model).items()})


def test_registered_under_adapter() -> None:
    assert isinstance(METHODS["adapter"], BottleneckMethod)
    assert isinstance(method_for_config({"peft_type": "BOTTLENECK"}), BottleneckMethod)


@pytest.mark.parametrize(
    ("kind", "task_type", "first", "count"),
    [
        ("bert", "SEQ_CLS", "bert.encoder.layer.0.attention.output.adapter.down.weight", 2 * 2 * 4 + 2),
        ("t5", "SEQ_2_SEQ_LM", "encoder.block.0.layer.0.SelfAttention.adapter.down.weight", 4 * 2 * 4),
        ("gpt2", "CAUSAL_LM", "transformer.h.0.attn.adapter.down.weight", 2 * 2 * 4),
    ],
)
def test_config_and_canonical_tensor_names(bases, kind: str, task_type: str, first: str, count: int) -> None:
    ref, config, model = fresh(bases, kind)
    assert config["peft_type"] == "BOTTLENECK" and config["method"] == "adapter" and config["task_type"] == task_type
    assert config["adapter_size"] == 12 and config["nonlinearity"] == "relu"
    json.dumps(config)
    tensors = ADAPTER.get_tensors(model)
    assert next(iter(tensors)) == first and len(tensors) == count
    assert tensors[first].shape == (12, 32)
    assert all("default" not in name and not name.startswith("base_model") for name in tensors)
    if kind == "bert":
        assert {"classifier.weight", "classifier.bias"} <= set(tensors), "the cross-encoder head belongs to the module"
    if kind == "t5":
        assert any(name.startswith("decoder.block.1.layer.2.DenseReluDense.adapter.") for name in tensors), "decoder feed-forward adapted"
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(tensors), "only the module trains"
    # A fixed init: attaching twice gives the same tensors whatever the global RNG state.
    torch.manual_seed(123)
    again = ADAPTER.get_tensors(fresh(bases, kind)[2])
    assert all(torch.equal(tensors[name], again[name]) for name in tensors)


@pytest.mark.parametrize("kind", KINDS)
def test_a_fresh_adapter_is_the_identity(bases, kind: str) -> None:
    ref, base = bases[kind]
    formulation = formulation_for(ref)
    _, _, model = fresh(bases, kind)
    assert torch.equal(outputs(model, formulation), outputs(copy.deepcopy(base), formulation))
    randomize(model)
    assert not torch.allclose(outputs(model, formulation), outputs(copy.deepcopy(base), formulation)), "the hooks are live"


@pytest.mark.parametrize("kind", KINDS)
def test_training_changes_only_the_module(bases, kind: str) -> None:
    ref, _, model = fresh(bases, kind)
    formulation = formulation_for(ref)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    module = set(ADAPTER.get_tensors(model))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(3):
        loss = formulation.loss(model, formulation.collate(MIXED))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    changed = {name for name, tensor in model.state_dict().items() if not torch.equal(tensor, before[name])}
    assert changed and changed <= module
    assert any(name.endswith("adapter.up.weight") for name in changed) and any(name.endswith("adapter.down.weight") for name in changed)


@pytest.mark.parametrize("kind", KINDS)
def test_get_set_round_trip_reproduces_outputs(bases, kind: str) -> None:
    ref, config, model = fresh(bases, kind)
    formulation = formulation_for(ref)
    randomize(model)
    expected = outputs(model, formulation)
    target = ADAPTER.attach(copy.deepcopy(bases[kind][1]), config)
    storage = {name: p.data_ptr() for name, p in target.named_parameters()}
    ADAPTER.set_tensors(target, ADAPTER.get_tensors(model))
    assert torch.equal(outputs(target, formulation), expected)
    assert storage == {name: p.data_ptr() for name, p in target.named_parameters()}, "set_tensors copies in place"
    # A deep copy of an adapted model has its own adapters, hooked into its own layers.
    clone = copy.deepcopy(target)
    ADAPTER.set_tensors(clone, {name: torch.zeros_like(t) for name, t in ADAPTER.get_tensors(clone).items()})
    assert torch.equal(outputs(target, formulation), expected)
    assert not torch.equal(outputs(clone, formulation), expected)


def test_set_tensors_refuses_what_does_not_fit(bases) -> None:
    _, _, model = fresh(bases, "gpt2")
    tensors = ADAPTER.get_tensors(model)
    name = next(iter(tensors))
    with pytest.raises(ModuleFolderError, match="missing"):
        ADAPTER.set_tensors(model, {k: v for k, v in tensors.items() if k != name})
    with pytest.raises(ModuleFolderError, match="shape"):
        ADAPTER.set_tensors(model, {**tensors, name: torch.zeros(3, 32)})
    with pytest.raises(HubError, match="already has bottleneck adapters"):
        ADAPTER.attach(model, ADAPTER.default_config(bases["gpt2"][0]))


def test_folder_round_trip_and_config_checks(bases, tmp_path: Path) -> None:
    ref, config, model = fresh(bases, "bert", adapter_size=6)
    randomize(model)
    tensors = ADAPTER.get_tensors(model)
    folder = tmp_path / "module"
    ADAPTER.write_folder(folder, config, tensors, ref.name)
    assert sorted(path.name for path in folder.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    read, loaded = method_for_config(read_config(folder)).read_folder(folder)
    assert read["adapter_size"] == 6 and read["base_model_name_or_path"] == ref.name
    assert set(loaded) == set(tensors) and all(torch.equal(loaded[name], tensors[name]) for name in tensors)

    def refused(bad_config: dict, bad_tensors: dict, match: str) -> None:
        with pytest.raises(ModuleFolderError, match=match) as error:
            ADAPTER.check_config(bad_config, bad_tensors)
        assert "\n" not in str(error.value)

    refused({**config, "adapter_size": 12}, tensors, "adapter_size 12 but .* has shape \\(6, 32\\)")
    refused({**config, "nonlinearity": "sigmoid"}, tensors, "nonlinearity")
    refused({**config, "peft_type": "LORA"}, tensors, "peft_type")
    up = next(name for name in tensors if name.endswith("up.weight"))
    refused(config, {k: v for k, v in tensors.items() if k != up}, "lacks up.weight")
    refused(config, {**tensors, up: torch.zeros(32, 5)}, "disagree")
    refused(config, {**tensors, "bert.pooler.dense.weight": torch.zeros(32, 32)}, "neither an adapter tensor")
    refused({**config, "target_blocks": ["self_attn.o_proj"]}, tensors, "no output projection")
    refused(config, {k: v for k, v in tensors.items() if ".adapter." not in k}, "no adapter tensors")


def test_default_config_refuses_bad_overrides(bases) -> None:
    ref = bases["bert"][0]
    with pytest.raises(HubError, match="adapter has no option 'r'; its options are adapter_size, modules_to_save, nonlinearity, target_blocks"):
        ADAPTER.default_config(ref, {"r": 4})
    with pytest.raises(HubError, match="adapter_size"):
        ADAPTER.default_config(ref, {"adapter_size": 0})
    with pytest.raises(HubError, match="no module"):
        ADAPTER.attach(copy.deepcopy(bases["bert"][1]), ADAPTER.default_config(ref, {"target_blocks": ["mlp.down_proj"]}))


def green_dataset(size: int = 16):
    """The gold answer is always "green", wherever it sits among the choices: a bias a few steps learn."""
    orders = [["red", "green", "blue sky"], ["green", "blue sky", "red"], ["blue sky", "red", "green"]]
    records = [{"text": f"pick the color of grass , item {i}", "choices": orders[i % 3], "label": orders[i % 3].index("green")} for i in range(size)]
    return from_records(TaskCard("toy-green", "multiple-choice QA", "multiple_choice"), {"train": records})


@pytest.mark.parametrize("kind", KINDS)
def test_hub_training_lowers_the_loss(bases, kind: str) -> None:
    ref, _, model = fresh(bases, kind)
    formulation = formulation_for(ref)
    examples = green_dataset().split("train")
    batch = formulation.collate(examples)
    with torch.no_grad():
        before = float(formulation.loss(model, batch))
    result = train(model, get_method("adapter"), formulation, examples, (), TrainConfig(epochs=3, lr=3e-2, batch_size=8, progress=False, device="cpu"))
    with torch.no_grad():
        after = float(formulation.loss(model, batch))
    assert result.steps == 6
    assert after < before - 0.2, (before, after)


def test_hub_push_accepts_an_adapter_folder(bases, session_hub, tmp_path: Path) -> None:
    dataset = toy_dataset(6)
    module = session_hub.new_module(bases["bert"][0].path, "adapter", {"adapter_size": 4})
    assert module.method.name == "adapter"
    session_hub.train(module, dataset, TrainConfig(epochs=1, max_steps=1, batch_size=6, progress=False, device="cpu"))
    folder = module.save(tmp_path / "adapter")
    record = session_hub.push(folder, dataset)
    assert record.method == "adapter" and record.num_params == sum(t.numel() for t in module.tensors().values())
    assert session_hub.push(folder, dataset).id == record.id
    # The same module declared for another backbone does not fit.
    with pytest.raises(BaseModelMismatch):
        session_hub.push(folder, dataset, base_model=bases["gpt2"][0].path)
