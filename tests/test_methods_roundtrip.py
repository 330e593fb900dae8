"""A trained module survives `TrainableModule.save` -> load on a fresh base model, for every backbone kind.

PEFT modules (LoRA, prefix) load back with PEFT's own `PeftModel.from_pretrained`; bottleneck
adapters (which PEFT does not know) with deltahub's attach + set_tensors. Backbones: the
packaged MiniLM cross-encoder (loaded once for the session, through `session_hub`) and tiny
random T5 and GPT-2. Each module is also pushed, so `Hub.push` accepts every kind.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from test_text_to_text import MIXED, tiny_backbone, toy_dataset

from hub.backbones import load_base_model
from hub.methods import method_for_config, read_config
from hub.training import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

CASES = [
    ("minilm", "lora"),
    ("minilm", "prefix"),
    ("minilm", "adapter"),
    ("t5", "lora"),
    ("t5", "prefix"),
    ("t5", "adapter"),
    ("gpt2", "lora"),
    ("gpt2", "prefix"),
    ("gpt2", "adapter"),
]
SMALL = {"lora": {"r": 4}, "prefix": {"num_virtual_tokens": 4}, "adapter": {"adapter_size": 4}}
LEARNING_RATES = {"lora": 1e-2, "prefix": 1e-1, "adapter": 1e-2}


@pytest.fixture(scope="module")
def backbones(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {"minilm": "minilm", "t5": tiny_backbone("t5", root), "gpt2": tiny_backbone("gpt2", root)}


@functools.cache
def _fresh_base(path: Path, kind: str):
    """One more load of each base model, kept pristine: tests get deep copies of it."""
    from hub.backbones import resolve_base_model

    return load_base_model(resolve_base_model(path, kind=kind))


def outputs(model, formulation) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return formulation.predictions(model, formulation.collate(MIXED)).log_probs


@pytest.mark.parametrize(("backbone", "method"), CASES)
def test_saved_module_loads_back_with_the_same_outputs(session_hub, backbones, tmp_path: Path, backbone: str, method: str) -> None:
    module = session_hub.new_module(backbones[backbone], method, **SMALL[method])
    initial = module.tensors()
    dataset = toy_dataset(8)
    # No dev split: the epoch's mean train loss is what is kept, so the trained tensors are the ones saved.
    session_hub.train(module, dataset, TrainConfig(epochs=1, max_steps=2, batch_size=4, lr=LEARNING_RATES[method], progress=False, device="cpu"))
    trained = module.tensors()
    assert any(not torch.equal(trained[name], initial[name]) for name in trained), "training moved the module"
    expected = outputs(module.model, module.formulation)

    folder = module.save(tmp_path / "module")
    ref = module.backbone.ref
    base = copy.deepcopy(_fresh_base(ref.path, ref.kind))
    config = read_config(folder)
    if method == "adapter":
        chosen = method_for_config(config)
        _, tensors = chosen.read_folder(folder)
        loaded = chosen.attach(base, config)
        chosen.set_tensors(loaded, tensors)
    else:
        loaded = PeftModel.from_pretrained(base, folder)
    assert torch.allclose(outputs(loaded, module.formulation), expected, atol=1e-5)

    record = session_hub.push(folder, dataset)
    assert record.method == method and record.base_model == ref.name
