"""The shared part of every method whose modelling code is PEFT's: only defaults and checks are ours."""

from __future__ import annotations

import copy
import dataclasses
import typing
import warnings
import weakref
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from peft import PeftConfig, get_peft_model, get_peft_model_state_dict
from torch import nn

from hub.backbones import BaseModelRef
from hub.errors import HubError, ModuleFolderError
from hub.methods.base import Method, Option

ADAPTER_NAME = "default"
# Config fields deltahub sets itself (from the backbone, or when attaching); the rest are the user's options.
NOT_OPTIONS = frozenset({"task_type", "peft_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision", "inference_mode"})

# Saved name -> live parameter, per attached model, found once.
_LIVE: weakref.WeakKeyDictionary[nn.Module, dict[str, nn.Parameter]] = weakref.WeakKeyDictionary()


class PeftMethod(Method):
    """A method whose modelling code is PEFT's: `config_class` names it, `defaults` are the paper's sizes."""

    config_class: ClassVar[type[PeftConfig]]
    defaults: ClassVar[dict[str, Any]] = {}

    def options(self) -> dict[str, Option]:
        hints = typing.get_type_hints(self.config_class)
        return {field.name: Option(field.name, hints[field.name]) for field in dataclasses.fields(self.config_class) if field.name not in NOT_OPTIONS}

    def default_config(self, ref: BaseModelRef, options: Mapping[str, object] | None = None) -> dict[str, Any]:
        chosen = {**self.defaults, **self.parse_options(options)}
        try:
            config = self.config_class(task_type=ref.family.task_type, **chosen)
        except (TypeError, ValueError) as error:
            raise HubError(f"invalid {self.name} options: {str(error).splitlines()[0]}") from None
        return _json_config(config)

    def attach(self, model: nn.Module, config: dict[str, Any]) -> nn.Module:
        # A deep copy: PEFT extends list fields (modules_to_save) in place while attaching, which would change
        # the caller's config, e.g. a pushed module's stored config after `check_fits` attached it once.
        peft_config = PeftConfig.from_peft_type(**copy.deepcopy({k: v for k, v in config.items() if k != "base_model_name_or_path"}))
        peft_config.inference_mode = False
        with warnings.catch_warnings():
            # PEFT asks transformers about gradient checkpointing through a deprecated name; not the user's concern.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return get_peft_model(model, peft_config)

    def attached_config(self, model: nn.Module, config: dict[str, Any]) -> dict[str, Any]:
        # PEFT completes the config while attaching (e.g. num_transformer_submodules), as save_pretrained records it.
        return {key: value for key, value in _json_config(model.peft_config[ADAPTER_NAME]).items() if key != "base_model_name_or_path"}

    def get_tensors(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return {name: tensor.detach().clone().contiguous() for name, tensor in get_peft_model_state_dict(model).items()}

    def live_parameters(self, model: nn.Module) -> dict[str, nn.Parameter]:
        if model not in _LIVE:
            _LIVE[model] = _peft_named_parameters(model)
        return _LIVE[model]

    def check_config(self, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        if config.get("peft_type") != self.peft_type:
            raise ModuleFolderError(f"config peft_type is {config.get('peft_type')!r}, expected {self.peft_type}")


def _peft_named_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """PEFT's own state-dict naming applied to the model's parameters themselves, not to copies.

    Given the parameters as the state dict, `get_peft_model_state_dict` selects and renames
    them exactly as it does when saving; in inference mode it names a prompt encoder's
    embedding instead of recomputing it.
    """
    config = model.peft_config[ADAPTER_NAME]
    saved = {name: tuple(tensor.shape) for name, tensor in get_peft_model_state_dict(model).items()}
    was_inference = config.inference_mode
    config.inference_mode = True
    try:
        named = get_peft_model_state_dict(model, state_dict=dict(model.named_parameters()), save_embedding_layers=False)
    finally:
        config.inference_mode = was_inference
    owned = {id(parameter) for parameter in model.parameters()}
    fits = set(named) == set(saved) and all(
        isinstance(value, nn.Parameter) and id(value) in owned and tuple(value.shape) == saved[name] for name, value in named.items()
    )
    if not fits:
        raise HubError(f"PEFT saves {config.peft_type} tensors that no parameter of the model holds; deltahub cannot switch such modules in place")
    return dict(named)


def _json_config(config: PeftConfig) -> dict[str, Any]:
    raw = config.to_dict()
    return {key: (sorted(value) if isinstance(value, set) else value) for key, value in raw.items()}
