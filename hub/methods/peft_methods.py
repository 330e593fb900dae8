"""PET methods that PEFT implements: LoRA, prefix tuning, prompt tuning, IA3."""

from __future__ import annotations

import warnings
import weakref
from typing import Any, ClassVar

import torch
from peft import (
    IA3Config,
    LoraConfig,
    PeftConfig,
    PrefixTuningConfig,
    PromptTuningConfig,
    TaskType,
    get_peft_model,
    get_peft_model_state_dict,
    set_peft_model_state_dict,
)
from torch import nn

from hub.backbones import BaseModelRef
from hub.errors import ModuleFolderError
from hub.methods.base import Method

TASK_TYPES = {"cross-encoder": TaskType.SEQ_CLS, "seq2seq": TaskType.SEQ_2_SEQ_LM, "causal": TaskType.CAUSAL_LM}

# canonical tensor name -> live parameter, per attached model; built once so that
# switching candidates is a plain copy into existing storage.
_LIVE: weakref.WeakKeyDictionary[nn.Module, dict[str, nn.Parameter]] = weakref.WeakKeyDictionary()


def _live_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    if model not in _LIVE:
        live = {}
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                live[name.replace(".modules_to_save.default.", ".").replace(".default.", ".")] = parameter
        _LIVE[model] = live
    return _LIVE[model]


class PeftMethod(Method):
    """A method whose modelling code is PEFT's; only defaults and checks are ours."""

    config_class: ClassVar[type[PeftConfig]]
    defaults: ClassVar[dict[str, Any]] = {}

    def default_config(self, ref: BaseModelRef, **overrides: Any) -> dict[str, Any]:
        config = self.config_class(task_type=TASK_TYPES[ref.kind], **{**self.defaults, **overrides})
        return _json_config(config)

    def attach(self, model: nn.Module, config: dict[str, Any]) -> nn.Module:
        peft_config = PeftConfig.from_peft_type(**{k: v for k, v in config.items() if k != "base_model_name_or_path"})
        peft_config.inference_mode = False
        with warnings.catch_warnings():
            # PEFT asks transformers about gradient checkpointing through a deprecated name; not the user's concern.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return get_peft_model(model, peft_config)

    def attached_config(self, model: nn.Module, config: dict[str, Any]) -> dict[str, Any]:
        # PEFT completes the config while attaching (e.g. num_transformer_submodules), as save_pretrained records it.
        return {key: value for key, value in _json_config(model.peft_config["default"]).items() if key != "base_model_name_or_path"}

    def get_tensors(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return {name: tensor.detach().clone().contiguous() for name, tensor in get_peft_model_state_dict(model).items()}

    def set_tensors(self, model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
        live = _live_parameters(model)
        expected = get_peft_model_state_dict(model) if not all(name in live for name in tensors) else live
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        if missing or unexpected:
            raise ModuleFolderError(f"module tensors do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
        for name, tensor in tensors.items():
            if tuple(tensor.shape) != tuple(expected[name].shape):
                raise ModuleFolderError(f"tensor {name} has shape {tuple(tensor.shape)}, the model expects {tuple(expected[name].shape)}")
        if expected is live:
            with torch.no_grad():
                for name, tensor in tensors.items():
                    live[name].copy_(tensor)
        else:
            set_peft_model_state_dict(model, tensors)

    def check_config(self, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        if config.get("peft_type") != self.peft_type:
            raise ModuleFolderError(f"config peft_type is {config.get('peft_type')!r}, expected {self.peft_type}")


class LoraMethod(PeftMethod):
    name = "lora"
    peft_type = "LORA"
    config_class = LoraConfig
    defaults = {"r": 10, "lora_alpha": 16, "lora_dropout": 0.0}  # the paper's LoRA size

    def check_config(self, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        super().check_config(config, tensors)
        rank = int(config.get("r", 8))
        patterns = config.get("rank_pattern") or {}
        targets = config.get("target_modules")
        for name, tensor in tensors.items():
            if ".lora_A." in name or ".lora_B." in name:
                module_path = name.split(".lora_")[0]
                expected = next((int(r) for key, r in patterns.items() if module_path.endswith(key)), rank)
                actual = tensor.shape[0] if ".lora_A." in name else tensor.shape[1]
                if actual != expected:
                    raise ModuleFolderError(f"config says LoRA rank {expected} but {name} has rank {actual}; the config and weights disagree")
                if isinstance(targets, list) and targets and module_path.rsplit(".", 1)[-1] not in targets:
                    raise ModuleFolderError(
                        f"{name} adapts {module_path.rsplit('.', 1)[-1]!r}, which is not in the config's target_modules {targets}; "
                        "the config and weights disagree"
                    )
        if not any(".lora_A." in name for name in tensors):
            raise ModuleFolderError("the weights hold no lora_A tensors but the config is LoRA; the config and weights disagree")


class PrefixMethod(PeftMethod):
    name = "prefix"
    peft_type = "PREFIX_TUNING"
    config_class = PrefixTuningConfig
    # The paper uses 120 virtual tokens on T5-base; 20 keep CPU training of MiniLM affordable.
    defaults = {"num_virtual_tokens": 20}

    def check_config(self, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        super().check_config(config, tensors)
        prompt = tensors.get("prompt_embeddings")
        if prompt is None:
            raise ModuleFolderError(f"the weights hold no prompt_embeddings but the config is {self.peft_type}; the config and weights disagree")
        if prompt.shape[0] != self.prompt_rows(config):
            raise ModuleFolderError(
                f"config says {config.get('num_virtual_tokens')} virtual tokens but prompt_embeddings has {prompt.shape[0]} rows; "
                "the config and weights disagree"
            )

    def prompt_rows(self, config: dict[str, Any]) -> int:
        # One prefix (its keys and values for every layer) a virtual token, shared by encoder and decoder.
        return int(config.get("num_virtual_tokens", 0))


class PromptTuningMethod(PrefixMethod):
    name = "prompt"
    peft_type = "PROMPT_TUNING"
    config_class = PromptTuningConfig

    def prompt_rows(self, config: dict[str, Any]) -> int:
        # Prompt tuning keeps separate virtual tokens for the encoder and the decoder of a seq2seq model.
        return int(config.get("num_virtual_tokens", 0)) * int(config.get("num_transformer_submodules") or 1)


class IA3Method(PeftMethod):
    name = "ia3"
    peft_type = "IA3"
    config_class = IA3Config


def _json_config(config: PeftConfig) -> dict[str, Any]:
    raw = config.to_dict()
    return {key: (sorted(value) if isinstance(value, set) else value) for key, value in raw.items()}
