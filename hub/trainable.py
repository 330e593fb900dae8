"""A loaded base model, and a module attached to a copy of it: what is trained, scored and saved."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from hub.backbones import BaseModelRef
from hub.formulations import Formulation
from hub.inits import TransferResult
from hub.methods import Method
from hub.training import seed_everything
from store.records import Provenance


@dataclass
class Backbone:
    """A base model loaded once per Hub, with the hash of its weights' names and shapes."""

    ref: BaseModelRef
    model: nn.Module
    arch_hash: str

    def attach(self, method: Method, config: dict) -> nn.Module:
        """A copy of the base model with `method` attached; the loaded model itself stays bare for the next caller."""
        return method.attach(copy.deepcopy(self.model), config)

    def default_init(self, method: Method, config: dict, seed: int) -> nn.Module:
        """`attach` under `seed`: LoRA's A matrices (and prefix and prompt embeddings) are drawn from the global
        generator while attaching, so unseeded a module would depend on whatever the process drew before."""
        seed_everything(seed)
        return self.attach(method, config)


@dataclass
class TrainableModule:
    """A backbone with a module attached: the model to train, and how to read and save its module."""

    model: nn.Module
    method: Method
    config: dict
    formulation: Formulation
    backbone: Backbone
    origin: Provenance | None = None  # where the init came from; None for the method's default init
    transfer: TransferResult | None = None  # the scores and weights of a `transfer_init`, whatever the strategy

    def tensors(self) -> dict[str, torch.Tensor]:
        return self.method.get_tensors(self.model)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the module in the PEFT folder layout (what `adapters push` reads)."""
        target = Path(folder)
        self.method.write_folder(target, self.config, {k: v.cpu() for k, v in self.tensors().items()}, self.backbone.ref.name)
        return target
