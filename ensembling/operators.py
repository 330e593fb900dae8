"""Composition operators: how weighted sources become one init (`--combine`).

`linear` is the paper's composition and the default: Σ wᵢθᵢ tensor by tensor (`compose`).
For LoRA it averages the factors, so the update it applies, (Σ wᵢBᵢ)(Σ wⱼAⱼ), holds the
cross terms BᵢAⱼ. The other operators are the ones PEFT users know from
`LoraModel.add_weighted_adapter`, under PEFT's names, computed by PEFT's own
`peft.utils.merge_utils` functions:

- in factor space (each factor merged apart, as PEFT does): `ties`, `dare_linear`,
  `dare_ties`, `magnitude_prune`;
- in update space, then projected back to the sources' rank r: `svd` (Σ wᵢBᵢAᵢ),
  `ties_svd`, `dare_linear_svd`, `dare_ties_svd`, `magnitude_prune_svd`.

Written here, because PEFT offers it only on a live `LoraModel` holding every source as an
adapter: the projection of a merged update M back to rank r. It is the best rank-r
approximation (Eckart–Young), factored as PEFT factors it, B = U_r·S_r and A = V_rᵀ. The
sources share one config, so their LoRA scaling α/r is one constant; every operator is
positively homogeneous, so it is left out and the init keeps the sources' config.

Every operator keeps the rank and tensor schema of a plain module of the sources' config, so
every arm trains the same number of parameters. `cat` (PEFT's concatenated ranks, exactly
Σ wᵢBᵢAᵢ) is refused: it raises the rank to Σ rᵢ, and projected back to rank r it is `svd`.

Weights: a convex combination (the strategies') or fitted coefficients (LoraHub's). PEFT's
TIES disjoint merge divides by the number of sources that agree in sign, so `ties` and
`dare_ties` receive N·wᵢ (N sources of non-zero weight): with uniform weights that is TIES's
disjoint mean, and where every source agrees and nothing is pruned it equals Σ wᵢxᵢ, the
scale of `linear`. Sources of weight 0 are left out. DARE draws its masks from a generator
seeded by the run's seed: one seed, one init.

Tensors outside a LoRA factor pair (the one-logit head, DoRA magnitudes) are composed
linearly under every operator: they have no update to project, and a head trained from
scratch has no reference to take a task vector against.

Other methods: IA³ vectors, bottleneck adapters, prefix and prompt tables have no factor
pair, so `svd` and its variants do not exist for them; TIES and DARE prune and sign-elect
task vectors θ − θ₀, and these modules have no θ₀ every source shares (IA³ starts at 1,
the others at random draws), so a pruned raw weight is not a pruned update. They compose
with `linear` only; any other operator is refused before scoring.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ensembling.candidates import Candidate
from ensembling.compose import compose
from ensembling.errors import EnsemblingError

if TYPE_CHECKING:
    import torch

LINEAR = "linear"
DEFAULT_DENSITY = 0.2  # the fraction kept by pruning operators: TIES's top-20 % and PEFT's documented example
FACTOR_OPERATORS = ("ties", "dare_linear", "dare_ties", "magnitude_prune")
UPDATE_OPERATORS = ("svd", "ties_svd", "dare_linear_svd", "dare_ties_svd", "magnitude_prune_svd")
OPERATORS = (LINEAR, *FACTOR_OPERATORS, *UPDATE_OPERATORS)
REFUSED = {"cat": "cat concatenates ranks (rank Σ rᵢ: another tensor schema, more trained parameters); projected back to rank r it is svd: use --combine svd"}
_DISJOINT = ("ties", "dare_ties")  # merge_utils functions ending in PEFT's disjoint mean (see the module docstring on N·w)
_FACTOR = re.compile(r"\.lora_(embedding_)?A\.")


@dataclass(frozen=True)
class Operator:
    """A composition operator and, for the pruning ones, the density (fraction of entries kept)."""

    name: str = LINEAR
    density: float | None = None

    @property
    def label(self) -> str:
        """How it is written and recorded: `svd`, `ties:0.2`."""
        return self.name if self.density is None else f"{self.name}:{self.density:g}"

    @property
    def merge(self) -> str:
        """The merge_utils function applied to the task tensors (an update-space operator's name without `_svd`)."""
        return "task_arithmetic" if self.name in (LINEAR, "svd") else self.name.removesuffix("_svd")

    @property
    def in_update_space(self) -> bool:
        return self.name in UPDATE_OPERATORS


def parse_operator(spec: str | Operator | None) -> Operator:
    """`linear`, `svd`, `ties`, `ties:0.5` (density) …; a one-line error naming the valid ones."""
    if spec is None:
        return Operator()
    if isinstance(spec, Operator):
        return spec
    name, _, density_text = spec.strip().lower().partition(":")
    if name in REFUSED:
        raise EnsemblingError(f"--combine {spec}: {REFUSED[name]}")
    if name not in OPERATORS:
        raise EnsemblingError(f"unknown --combine {spec!r}; use one of {', '.join(OPERATORS)} (pruning ones take a density, e.g. ties:0.5)")
    prunes = name not in (LINEAR, "svd")
    if not prunes:
        if density_text:
            raise EnsemblingError(f"--combine {spec}: {name} prunes nothing and takes no density; write {name}")
        return Operator(name)
    try:
        density = float(density_text) if density_text else DEFAULT_DENSITY
    except ValueError:
        raise EnsemblingError(f"--combine {spec}: the density must be a number in (0, 1), e.g. {name}:0.5") from None
    if not 0 < density < 1:
        raise EnsemblingError(f"--combine {spec}: the density must be in (0, 1), got {density:g}")
    return Operator(name, density)


def factor_pairs(tensors: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """Each LoRA A factor's name with its B factor's (PEFT's names: lora_A/lora_B, lora_embedding_A/B)."""
    pairs = {}
    for name in tensors:
        if _FACTOR.search(name):
            partner = _FACTOR.sub(lambda match: f".lora_{match.group(1) or ''}B.", name, count=1)
            if partner not in tensors:
                raise EnsemblingError(f"LoRA factor {name} has no partner {partner}; the module is incomplete")
            if tensors[name].dim() != 2 or tensors[partner].dim() != 2:
                raise EnsemblingError(f"LoRA factors {name} are not matrices (a convolution's?); only --combine linear composes them")
            pairs[name] = partner
    return pairs


def check_operator(operator: Operator, candidates: Sequence[Candidate]) -> None:
    """Refuse, before any scoring, an operator the sources' tensors do not support (no LoRA factor pairs)."""
    if operator.name == LINEAR or not candidates:
        return
    if not factor_pairs(candidates[0].tensors):
        raise EnsemblingError(
            f"--combine {operator.label} merges LoRA factor pairs (lora_A/lora_B) and these modules have none; "
            f"IA³, bottleneck adapters, prefix and prompt modules compose with --combine {LINEAR} only"
        )


def combine(
    candidates: Sequence[Candidate], weights: Sequence[float], operator: Operator = Operator(), *, normalized: bool = True, seed: int = 0
) -> dict[str, torch.Tensor]:
    """The init `operator` composes from the weighted sources, in their dtypes and tensor schema.

    `linear` is `compose`; every other operator composes the non-factor tensors linearly too,
    and merges each LoRA pair (see the module docstring) in float64.
    """
    import torch

    composed = compose(candidates, weights, normalized=normalized)  # checks schemas and weights
    if operator.name == LINEAR:
        return composed
    check_operator(operator, candidates)
    used = [(candidate.tensors, weight) for candidate, weight in zip(candidates, weights) if weight != 0]
    coefficients = torch.tensor([weight for _, weight in used], dtype=torch.float64)
    if operator.merge in _DISJOINT:
        coefficients = coefficients * len(used)
    merge = _merge_function(operator)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # DARE's masks, drawn in the fixed order of the sorted factor names
        for a_name, b_name in sorted(factor_pairs(candidates[0].tensors).items()):
            a_factors = [tensors[a_name].detach().to("cpu", torch.float64) for tensors, _ in used]
            b_factors = [tensors[b_name].detach().to("cpu", torch.float64) for tensors, _ in used]
            if operator.in_update_space:
                rank = a_factors[0].shape[0]
                b, a = best_rank(merge([b_ @ a_ for b_, a_ in zip(b_factors, a_factors)], coefficients), rank)
            else:
                a, b = merge(a_factors, coefficients), merge(b_factors, coefficients)
            composed[a_name] = a.to(composed[a_name].dtype).contiguous()
            composed[b_name] = b.to(composed[b_name].dtype).contiguous()
    return composed


def best_rank(update: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """B (out × r) and A (r × in) with B·A the best rank-r approximation of `update`; B = U_r·S_r, A = V_rᵀ as PEFT factors it."""
    import torch

    u, s, vh = torch.linalg.svd(update, full_matrices=False)
    kept = min(rank, s.shape[0])
    b = torch.zeros(update.shape[0], rank, dtype=update.dtype)
    a = torch.zeros(rank, update.shape[1], dtype=update.dtype)
    b[:, :kept] = u[:, :kept] * s[:kept]
    a[:kept] = vh[:kept]
    return b, a


def _merge_function(operator: Operator) -> Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor]:
    """PEFT's merge of stacked task tensors under `operator`, its density bound."""
    from peft.utils import merge_utils

    if operator.density is None:
        return merge_utils.task_arithmetic
    function, density = getattr(merge_utils, operator.merge), operator.density
    return lambda tensors, weights: function(tensors, weights, density)
