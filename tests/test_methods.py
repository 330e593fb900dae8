"""One tester over every registered PET method, on every backbone family (PEFT's common-tester idea).

A method is covered by registering it: each test runs over `hub.methods.METHODS` on the
packaged MiniLM cross-encoder (through `session_hub`) and tiny random T5 (seq2seq) and
GPT-2 (causal). What every method must do: save and load back bit-exactly (through PEFT's
own `PeftModel.from_pretrained` where PEFT knows the method), be pushed, load a composed
module exactly, train only its own parameters, and switch candidates by an in-place copy.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from helpers import BACKBONES, MIXED, SMALL, noisy, tiny_backbone, toy_dataset
from peft import PeftModel, PeftType

from ensembling.candidates import Candidate
from ensembling.compose import compose
from hub.methods import METHODS, method_for_config, read_config
from hub.trainable import TrainableModule
from hub.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")

LEARNING_RATES = {"prefix": 1e-1, "prompt": 1e-1}
PEFT_TYPES = {peft_type.value for peft_type in PeftType}


@pytest.fixture(scope="module")
def backbones(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {"minilm": "minilm", "t5": tiny_backbone("t5", root), "gpt2": tiny_backbone("gpt2", root)}


def outputs(model: torch.nn.Module, module: TrainableModule) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return module.formulation.predictions(model, module.formulation.collate(MIXED)).log_probs


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("method", list(METHODS))
class TestEveryMethod:
    @pytest.fixture
    def module(self, session_hub, backbones, method: str, backbone: str) -> TrainableModule:
        return session_hub.new_module(backbones[backbone], method, SMALL.get(method))

    def test_saved_module_loads_back_bit_exactly_and_pushes(self, session_hub, module: TrainableModule, tmp_path: Path) -> None:
        tensors = noisy(module.tensors(), 0)
        module.method.set_tensors(module.model, tensors)
        expected = outputs(module.model, module)
        folder = module.save(tmp_path / "module")

        assert method_for_config(read_config(folder)) is module.method
        config, loaded = module.method.read_folder(folder)
        assert set(loaded) == set(tensors) and all(torch.equal(loaded[name], tensors[name]) for name in tensors)
        fresh = module.backbone.attach(module.method, config)
        module.method.set_tensors(fresh, loaded)
        assert torch.equal(outputs(fresh, module), expected)
        if config["peft_type"] in PEFT_TYPES:
            peft_model = PeftModel.from_pretrained(copy.deepcopy(module.backbone.model), folder)
            assert torch.allclose(outputs(peft_model, module), expected, atol=1e-5)

        record = session_hub.push(folder, toy_dataset(8))
        assert record.method == module.method.name and record.base_model == module.backbone.ref.name

    def test_a_new_module_is_the_same_default_init_whatever_the_process_drew_before(
        self, session_hub, backbones, method: str, backbone: str, module: TrainableModule
    ) -> None:
        torch.rand(1000)
        again = session_hub.new_module(backbones[backbone], method, SMALL.get(method))
        expected = module.tensors()
        assert all(torch.equal(tensor, expected[name]) for name, tensor in again.tensors().items())

    def test_a_composed_module_loads_exactly(self, module: TrainableModule) -> None:
        first, second = (Candidate(index, "task", "category", f"digest{index}", noisy(module.tensors(), index)) for index in (1, 2))
        composed = compose([first, second], [0.25, 0.75])
        module.method.set_tensors(module.model, composed)
        back = module.tensors()
        assert all(torch.equal(back[name], composed[name]) for name in composed)
        assert any(not torch.equal(composed[name], first.tensors[name]) for name in composed)

    def test_one_train_step_moves_the_module_and_nothing_else(self, module: TrainableModule) -> None:
        frozen = {name: parameter.detach().clone() for name, parameter in module.model.named_parameters() if not parameter.requires_grad}
        before = module.tensors()
        config = TrainConfig(epochs=1, max_steps=1, batch_size=4, lr=LEARNING_RATES.get(module.method.name, 1e-2), progress=False, device="cpu")
        train(module.model, module.method, module.formulation, toy_dataset(4).split("train"), (), config)
        after = module.tensors()
        assert any(not torch.equal(after[name], before[name]) for name in before), "one step moved the module"
        assert all(torch.equal(parameter, frozen[name]) for name, parameter in module.model.named_parameters() if name in frozen)

    def test_switching_modules_is_an_in_place_copy_into_every_trained_parameter(self, module: TrainableModule) -> None:
        live = module.method.live_parameters(module.model)
        trained = {id(parameter) for parameter in module.model.parameters() if parameter.requires_grad}
        assert {id(parameter) for parameter in live.values()} == trained
        storage = {name: parameter.data_ptr() for name, parameter in live.items()}
        tensors = noisy(module.tensors(), 3)
        module.method.set_tensors(module.model, tensors)
        assert {name: parameter.data_ptr() for name, parameter in live.items()} == storage
        back = module.tensors()
        assert all(torch.equal(back[name], tensors[name]) for name in tensors)
