"""Bottleneck adapters (Houlsby et al., 2019), the one PET method of the paper that PEFT lacks.

An adapter is `h + up(act(down(h)))`: a down-projection (hidden -> adapter_size),
a nonlinearity, an up-projection (adapter_size -> hidden) and a residual. Every
transformer block gets two, as in Houlsby: one on the output of the attention
sub-layer and one on the output of the feed-forward sub-layer. The up-projection
starts at zero, so a fresh adapter leaves the backbone's outputs unchanged.

Placement: each adapter runs on the output of the sub-layer's *output projection*
(BERT `attention.output.dense` / `output.dense`, T5 `SelfAttention.o` /
`DenseReluDense.wo`, GPT-2 `attn.c_proj` / `mlp.c_proj`), through a forward hook
on that projection, i.e. before the sub-layer's dropout, residual add and
LayerNorm. The backbone's own modules and parameter names are untouched; the
adapter is registered as a child `adapter` of the projection's parent, so its
tensors have stable, canonical names such as
`bert.encoder.layer.0.attention.output.adapter.down.weight`.

Config (`adapter_config.json`)::

    {"peft_type": "BOTTLENECK", "method": "adapter", "adapter_size": 12,
     "nonlinearity": "relu", "task_type": "SEQ_CLS",
     "target_blocks": ["attention.output.dense", "output.dense"],
     "modules_to_save": ["classifier"]}

`target_blocks` names the output projections relative to a numbered block: a
module is adapted when its name is `<...>.<block index>.<target>`. For the
cross-encoder (`SEQ_CLS`) the one-logit head (`modules_to_save`) trains with the
adapters and is saved with them, as PEFT's `modules_to_save` does.

PEFT cannot load these folders (`PeftModel.from_pretrained` does not know
BOTTLENECK); deltahub's `BottleneckMethod.attach` + `set_tensors` does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from hub.backbones import BaseModelRef
from hub.errors import BaseModelMismatch, HubError, ModuleFolderError
from hub.folders import BOTTLENECK_TYPE
from hub.methods import register_method
from hub.methods.base import Method, Option

PEFT_TYPE = BOTTLENECK_TYPE
ADAPTER = "adapter"
# Output projections of the attention and feed-forward sub-layers, per model_type.
TARGET_BLOCKS: dict[str, list[str]] = {
    "bert": ["attention.output.dense", "output.dense"],
    "roberta": ["attention.output.dense", "output.dense"],
    "xlm-roberta": ["attention.output.dense", "output.dense"],
    "electra": ["attention.output.dense", "output.dense"],
    "deberta-v2": ["attention.output.dense", "output.dense"],
    "distilbert": ["attention.out_lin", "ffn.lin2"],
    "t5": ["SelfAttention.o", "DenseReluDense.wo"],
    "mt5": ["SelfAttention.o", "DenseReluDense.wo"],
    "umt5": ["SelfAttention.o", "DenseReluDense.wo"],
    "gpt2": ["attn.c_proj", "mlp.c_proj"],
    "llama": ["self_attn.o_proj", "mlp.down_proj"],
    "mistral": ["self_attn.o_proj", "mlp.down_proj"],
    "qwen2": ["self_attn.o_proj", "mlp.down_proj"],
    "gpt_neox": ["attention.dense", "mlp.dense_4h_to_h"],
}
NONLINEARITIES: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU, "swish": nn.SiLU}
DEFAULTS: dict[str, Any] = {"adapter_size": 12, "nonlinearity": "relu"}  # the paper's adapter size
INIT_SEED = 0
_SUFFIXES = (".adapter.down.weight", ".adapter.down.bias", ".adapter.up.weight", ".adapter.up.bias")
_LIVE_ATTR = "_deltahub_bottleneck_tensors"


class BottleneckAdapter(nn.Module):
    """`h + up(act(down(h)))`, with `up` zero-initialised so a fresh adapter is the identity."""

    def __init__(self, hidden: int, size: int, nonlinearity: str) -> None:
        super().__init__()
        self.down = nn.Linear(hidden, size)
        self.act = NONLINEARITIES[nonlinearity]()
        self.up = nn.Linear(size, hidden)

    def reset(self, generator: torch.Generator) -> None:
        with torch.no_grad():
            bound = self.down.in_features**-0.5  # nn.Linear's default range, drawn from a seeded generator
            self.down.weight.copy_(torch.empty_like(self.down.weight, device="cpu").uniform_(-bound, bound, generator=generator))
            self.down.bias.copy_(torch.empty_like(self.down.bias, device="cpu").uniform_(-bound, bound, generator=generator))
            self.up.weight.zero_()
            self.up.bias.zero_()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(self.act(self.down(hidden)))


class _AdapterHook:
    """Forward hook on an output projection that passes its output through the adapter.

    A plain object (not a closure), so `copy.deepcopy(model)` points the copy's hook at the copy's adapter.
    """

    def __init__(self, adapter: BottleneckAdapter) -> None:
        self.adapter = adapter

    def __call__(self, module: nn.Module, args: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (self.adapter(output[0]), *output[1:])
        return self.adapter(output)


def _target_pattern(target: str) -> re.Pattern[str]:
    return re.compile(rf"(?:.*\.)?\d+\.{re.escape(target)}")


def _adapter_prefix(projection: str) -> str:
    """`a.0.attention.output.dense` -> `a.0.attention.output.adapter` (targets always sit under a numbered block)."""
    return f"{projection.rsplit('.', 1)[0]}.{ADAPTER}"


def _output_width(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return module.out_features
    if hasattr(module, "nf"):  # transformers' Conv1D (GPT-2)
        return int(module.nf)
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dim() == 2:
        return int(weight.shape[0])
    raise HubError(f"cannot tell the output width of {type(module).__name__}; target a Linear output projection")


@register_method
class BottleneckMethod(Method):
    name: ClassVar[str] = "adapter"
    peft_type: ClassVar[str] = PEFT_TYPE
    summary: ClassVar[str] = "bottleneck adapters after each attention and feed-forward sub-layer (Houlsby)"

    def options(self) -> dict[str, Option]:
        return {
            "adapter_size": Option("adapter_size", int),
            "nonlinearity": Option("nonlinearity", str),
            "target_blocks": Option("target_blocks", list[str]),
            "modules_to_save": Option("modules_to_save", list[str]),
        }

    def default_config(self, ref: BaseModelRef, options: Mapping[str, object] | None = None) -> dict[str, Any]:
        config: dict[str, Any] = {
            "peft_type": PEFT_TYPE,
            "method": self.name,
            **DEFAULTS,
            "task_type": ref.family.task_type,
            "target_blocks": None,
            "modules_to_save": list(ref.family.heads),
            **self.parse_options(options),
        }
        if config["target_blocks"] is None:
            config["target_blocks"] = _default_targets(ref)
        _check_hyperparameters(config)
        return config

    def attach(self, model: nn.Module, config: dict[str, Any]) -> nn.Module:
        _check_hyperparameters(config)
        if hasattr(model, _LIVE_ATTR):
            raise HubError("this model already has bottleneck adapters attached; attach to a freshly loaded backbone")
        size, nonlinearity = int(config["adapter_size"]), str(config["nonlinearity"])
        patterns = [_target_pattern(target) for target in config["target_blocks"]]
        projections = [(name, module) for name, module in model.named_modules() if any(p.fullmatch(name) for p in patterns)]
        if not projections:
            raise BaseModelMismatch(
                f"no module of {type(model).__name__} matches target_blocks {config['target_blocks']}; "
                "name the output projections of its attention and feed-forward sub-layers"
            )
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        generator = torch.Generator().manual_seed(INIT_SEED)
        seen: dict[str, None] = {}
        for name, projection in projections:
            prefix = _adapter_prefix(name)
            if prefix in seen:
                raise HubError(f"two target_blocks put an adapter at {prefix}; target one output projection per sub-layer")
            seen[prefix] = None
            parent = model.get_submodule(prefix.rsplit(".", 1)[0])
            if hasattr(parent, ADAPTER):
                raise HubError(f"{prefix.rsplit('.', 1)[0]} already has an attribute {ADAPTER!r}; cannot attach a bottleneck adapter there")
            reference = next(projection.parameters())
            adapter = BottleneckAdapter(_output_width(projection), size, nonlinearity)
            adapter.reset(generator)
            adapter.to(device=reference.device, dtype=reference.dtype)
            parent.add_module(ADAPTER, adapter)
            projection.register_forward_hook(_AdapterHook(adapter))
        heads = [head for head in config.get("modules_to_save") or [] if isinstance(getattr(model, head, None), nn.Module)]
        for head in heads:
            getattr(model, head).requires_grad_(True)
        live: dict[str, nn.Parameter] = {}
        for prefix in seen:
            for name, parameter in model.get_submodule(prefix).named_parameters():
                live[f"{prefix}.{name}"] = parameter
        for head in heads:
            for name, parameter in getattr(model, head).named_parameters():
                live[f"{head}.{name}"] = parameter
        # canonical tensor name -> live parameter, built once so that switching candidates is a plain copy;
        # a plain attribute, so that copy.deepcopy(model) carries a map onto the copy's own parameters.
        object.__setattr__(model, _LIVE_ATTR, live)
        return model

    def live_parameters(self, model: nn.Module) -> dict[str, nn.Parameter]:
        live = getattr(model, _LIVE_ATTR, None)
        if live is None:
            raise HubError("this model has no bottleneck adapters; attach the adapter method first")
        return live

    def get_tensors(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return {name: parameter.detach().clone().contiguous() for name, parameter in self.live_parameters(model).items()}

    def check_config(self, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        if config.get("peft_type") != PEFT_TYPE:
            raise ModuleFolderError(f"config peft_type is {config.get('peft_type')!r}, expected {PEFT_TYPE}")
        try:
            _check_hyperparameters(config)
        except HubError as error:
            raise ModuleFolderError(f"{error}; the adapter config is invalid") from None
        size = int(config["adapter_size"])
        heads = list(config.get("modules_to_save") or [])
        patterns = [_target_pattern(target) for target in config["target_blocks"]]
        adapters: dict[str, dict[str, torch.Tensor]] = {}
        for name, tensor in tensors.items():
            suffix = next((s for s in _SUFFIXES if name.endswith(s)), None)
            if suffix is None:
                if any(name.startswith(f"{head}.") for head in heads):
                    continue
                raise ModuleFolderError(f"tensor {name} is neither an adapter tensor nor in modules_to_save {heads}; the config and weights disagree")
            prefix = name[: -len(suffix)]
            if not any(pattern.fullmatch(f"{prefix}.{_leaf(target)}") for pattern, target in zip(patterns, config["target_blocks"], strict=True)):
                raise ModuleFolderError(
                    f"tensor {name} sits on no output projection of target_blocks {config['target_blocks']}; the config and weights disagree"
                )
            adapters.setdefault(prefix, {})[suffix.split(".", 2)[2]] = tensor
        if not adapters:
            raise ModuleFolderError("the weights hold no adapter tensors but the config is a bottleneck adapter; the config and weights disagree")
        for prefix, parts in adapters.items():
            where = f"{prefix}.{ADAPTER}"
            lacking = sorted({"down.weight", "down.bias", "up.weight", "up.bias"} - set(parts))
            if lacking:
                raise ModuleFolderError(f"adapter {where} lacks {', '.join(lacking)}; the module is incomplete")
            down, up = parts["down.weight"], parts["up.weight"]
            if down.dim() != 2 or up.dim() != 2:
                raise ModuleFolderError(f"adapter {where} has non-matrix projections; the module is corrupt")
            if down.shape[0] != size or up.shape[1] != size:
                raise ModuleFolderError(
                    f"config says adapter_size {size} but {where}.down.weight has shape {tuple(down.shape)}; the config and weights disagree"
                )
            hidden = down.shape[1]
            expected = {"down.bias": (size,), "up.weight": (hidden, size), "up.bias": (hidden,)}
            for part, shape in expected.items():
                if tuple(parts[part].shape) != shape:
                    raise ModuleFolderError(f"{where}.{part} has shape {tuple(parts[part].shape)}, expected {shape}; the module is corrupt")


def _leaf(target: str) -> str:
    return target.rsplit(".", 1)[-1]


def _check_hyperparameters(config: dict[str, Any]) -> None:
    size = config.get("adapter_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise HubError(f"adapter_size must be a positive integer, not {size!r}")
    if config.get("nonlinearity") not in NONLINEARITIES:
        raise HubError(f"nonlinearity {config.get('nonlinearity')!r} is not supported; use one of {', '.join(NONLINEARITIES)}")
    targets = config.get("target_blocks")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets):
        raise HubError("target_blocks must be a non-empty list of output-projection names, e.g. ['attention.output.dense', 'output.dense']")
    heads = config.get("modules_to_save", [])
    if heads is not None and (not isinstance(heads, list) or not all(isinstance(h, str) for h in heads)):
        raise HubError("modules_to_save must be a list of module names")


def _default_targets(ref: BaseModelRef) -> list[str]:
    try:
        model_type = json.loads((ref.path / "config.json").read_text()).get("model_type", "")
    except (OSError, ValueError):
        model_type = ""
    if model_type not in TARGET_BLOCKS:
        raise HubError(
            f"no default adapter placement for model type {model_type!r}; pass target_blocks naming the output "
            "projections of its attention and feed-forward sub-layers (e.g. ['self_attn.o_proj', 'mlp.down_proj'])"
        )
    return list(TARGET_BLOCKS[model_type])
