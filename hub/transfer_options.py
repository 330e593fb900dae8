"""`TransferOptions`: everything that shapes one ensemble or transfer init, defined once.

The CLI's `ensemble` and `train` build one from their options; `Hub.ensemble`, `Hub.transfer_init` and
`Hub.init_module` take one. Light on purpose (no model library is imported), so the CLI can import it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ensembling.strategies.base import REFERENCE_STEPS, TUNE_STEPS
from hub.devices import AUTO_DEVICE
from hub.strategies import DEFAULT_COMBINE, DEFAULT_STRATEGY

if TYPE_CHECKING:
    from hub.training import TrainConfig

SCORE_EXAMPLES = 50  # the paper scores with one dev batch of up to 50 examples


@dataclass(frozen=True, kw_only=True)
class TransferOptions:
    """How an init is built for a target from the registry's modules; every field has the paper's or deltahub's default.

    - `base_model`: 'minilm' (the default), a local model folder or a cached Hub id ORG/NAME[@REVISION].
    - `method`: the PET method (lora, prefix, prompt, ia3, adapter); sources are modules of this method.
    - `method_options`: method hyperparameters (e.g. {"r": 4}): only sources whose config has them are
      candidates, and the default init is configured with them.
    - `strategy`: the ensembling strategy's name (`ensembling.strategies.known()` lists them).
    - `top_k`: keep only the k largest weights, renormalized (None: every source).
    - `temperature`: the softmax temperature over scores (None: the strategy's own).
    - `znorm`: z-normalize scores before the softmax (None: the strategy's own).
    - `candidates`: first narrow the sources to the N modules of the datasets nearest the target's.
    - `layers`: compose only these layers (`upper`, `lower`, or indices such as 0,4-5); the others keep the default init.
    - `combine`: the composition operator (`linear`, `svd`, `ties:0.5`, …: ensembling.operators); any but `linear` needs LoRA.
    - `score_examples`: most target examples scored (one dev batch; the paper: up to 50).
    - `reference_steps`: step cap of training on the target: the reference θ_t (kl, weight-cos) and auto's cross-validation.
    - `tune_steps`: step cap of tuning each source on the target (euclidean, performance).
    - `seed`: seed of the default init and of any training or sampling.
    - `device`: where models run: auto (a GPU when there is one), cpu or cuda.
    - `skip_corrupt`: leave out candidates whose blobs fail their digest check (otherwise one stops the run).
    - `tuning`: the training configuration of every training on the target (None: the strategy's defaults);
      `adapters train` passes its own, so auto's cross-validation trains as the target will.
    """

    base_model: str | os.PathLike[str] | None = None
    method: str = "lora"
    method_options: Mapping[str, object] = field(default_factory=dict)
    strategy: str = DEFAULT_STRATEGY
    top_k: int | None = None
    temperature: float | None = None
    znorm: bool | None = None
    candidates: int | None = None
    layers: str | None = None
    combine: str = DEFAULT_COMBINE
    score_examples: int = SCORE_EXAMPLES
    reference_steps: int = REFERENCE_STEPS
    tune_steps: int = TUNE_STEPS
    seed: int = 0
    device: str = AUTO_DEVICE
    skip_corrupt: bool = False
    tuning: TrainConfig | None = None
