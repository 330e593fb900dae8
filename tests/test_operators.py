"""Composition operators (`--combine`): each composed update against an independent computation on small random factors.

The references here are written from the papers' definitions (TIES: trim, elect sign, disjoint mean;
DARE: drop and rescale; magnitude pruning) and `torch.linalg.svd`, not from ensembling.operators;
`svd` and `ties_svd` are also checked against PEFT's own `LoraModel.add_weighted_adapter`.
"""

from __future__ import annotations

import copy

import pytest
import torch

from ensembling.candidates import Candidate, Target
from ensembling.ensemble import Options, run
from ensembling.errors import EnsemblingError
from ensembling.operators import DEFAULT_DENSITY, OPERATORS, Operator, combine, parse_operator
from ensembling.strategies import get_strategy

A, B, HEAD = "layer.0.query.lora_A.weight", "layer.0.query.lora_B.weight", "classifier.weight"
RANK, OUT, IN = 3, 7, 5


def source(i: int, seed: int | None = None, **tensors: torch.Tensor) -> Candidate:
    generator = torch.Generator().manual_seed(i if seed is None else seed)
    own = {A: torch.randn(RANK, IN, generator=generator), B: torch.randn(OUT, RANK, generator=generator), HEAD: torch.randn(1, OUT, generator=generator)}
    return Candidate(i, f"task-{i}", "c", f"{i:064d}", {**own, **tensors}, "minilm")


def update(tensors) -> torch.Tensor:
    return tensors[B].double() @ tensors[A].double()


def best_rank_r(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    u, s, vh = torch.linalg.svd(matrix)
    return u[:, :rank] @ torch.diag(s[:rank]) @ vh[:rank]


def trimmed(x: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the int(density·n) entries of largest magnitude (TIES's trim), by sorting."""
    keep = int(density * x.numel())
    threshold = x.abs().flatten().sort(descending=True).values[keep - 1]
    return torch.where(x.abs() >= threshold, x, torch.zeros_like(x))


def ties_reference(xs: list[torch.Tensor], weights: list[float], density: float | None) -> torch.Tensor:
    """TIES-merging on weighted task tensors: trim, elect the sign of the summed trimmed tensors, mean over the agreeing ones."""
    kept = [trimmed(x, density) if density is not None else x for x in xs]
    sign = torch.sign(sum(kept))
    sign[sign == 0] = 1
    weighted = [w * x for w, x in zip(weights, kept)]
    agree = [(torch.sign(x) == sign).double() for x in kept]
    return sum(a * x for a, x in zip(agree, weighted)) / torch.clamp(sum(agree), min=1.0)


WEIGHTS = [0.2, 0.5, 0.3]


@pytest.fixture
def sources() -> list[Candidate]:
    return [source(i) for i in (1, 2, 3)]


@pytest.mark.parametrize("name", OPERATORS)
def test_every_operator_keeps_the_schema_and_composes_the_head_linearly(sources, name):
    composed = combine(sources, WEIGHTS, parse_operator(name))
    for key, tensor in sources[0].tensors.items():
        assert composed[key].shape == tensor.shape and composed[key].dtype == tensor.dtype
    expected_head = sum(w * s.tensors[HEAD].double() for w, s in zip(WEIGHTS, sources))
    assert torch.allclose(composed[HEAD].double(), expected_head, atol=1e-6)


def test_linear_averages_the_factors_and_so_holds_cross_terms(sources):
    composed = combine(sources, WEIGHTS, Operator())
    mean_b = sum(w * s.tensors[B].double() for w, s in zip(WEIGHTS, sources))
    mean_a = sum(w * s.tensors[A].double() for w, s in zip(WEIGHTS, sources))
    assert torch.allclose(update(composed), mean_b @ mean_a, atol=1e-5)
    assert not torch.allclose(update(composed), sum(w * update(s.tensors) for w, s in zip(WEIGHTS, sources)), atol=1e-2)


def test_svd_is_the_best_rank_r_approximation_of_the_weighted_updates(sources):
    composed = combine(sources, WEIGHTS, parse_operator("svd"))
    target = sum(w * update(s.tensors) for w, s in zip(WEIGHTS, sources))  # what cat would apply exactly (rank 3r)
    assert torch.linalg.matrix_rank(target) > RANK
    assert torch.allclose(update(composed), best_rank_r(target, RANK), atol=1e-5)
    # no rank-r update is closer: the error is the norm of the dropped singular values
    dropped = torch.linalg.svdvals(target)[RANK:]
    assert torch.linalg.norm(update(composed) - target).item() == pytest.approx(torch.linalg.norm(dropped).item(), rel=1e-5)


def test_svd_of_one_source_reproduces_its_update():
    one = source(1)
    assert torch.allclose(update(combine([one, source(2)], [1.0, 0.0], parse_operator("svd"))), update(one.tensors), atol=1e-5)


@pytest.mark.parametrize("density", [None, 0.4])
def test_ties_in_update_space_is_the_rank_r_projection_of_ties_of_the_updates(sources, density):
    name = "ties_svd" if density is None else f"ties_svd:{density}"
    operator = parse_operator(name)
    composed = combine(sources, WEIGHTS, operator)
    n = len(sources)
    merged = ties_reference([update(s.tensors) for s in sources], [n * w for w in WEIGHTS], operator.density)
    assert torch.allclose(update(composed), best_rank_r(merged, RANK), atol=1e-5)


def test_ties_in_factor_space_merges_each_factor_apart(sources):
    composed = combine(sources, WEIGHTS, parse_operator("ties:0.5"))
    for key in (A, B):
        expected = ties_reference([s.tensors[key].double() for s in sources], [3 * w for w in WEIGHTS], 0.5)
        assert torch.allclose(composed[key].double(), expected, atol=1e-6)


def test_ties_without_conflicts_or_pruning_scale_is_the_weighted_sum():
    """N·w into PEFT's disjoint mean: where every source agrees, ties keeps linear's scale."""
    positive = [source(i, **{A: torch.rand(RANK, IN) + 0.1, B: torch.rand(OUT, RANK) + 0.1}) for i in (1, 2, 3)]
    composed = combine(positive, WEIGHTS, parse_operator("ties:0.999"))
    for key in (A, B):
        # density 0.999 of 15 or 21 entries trims exactly one: compare on the entries every source kept
        expected = sum(w * s.tensors[key] for w, s in zip(WEIGHTS, positive))
        kept = torch.stack([trimmed(s.tensors[key], 0.999) != 0 for s in positive]).all(0)
        assert torch.allclose(composed[key][kept], expected[kept], atol=1e-6)


def test_magnitude_prune_keeps_each_sources_largest_entries(sources):
    composed = combine(sources, WEIGHTS, parse_operator("magnitude_prune:0.4"))
    for key in (A, B):
        expected = sum(w * trimmed(s.tensors[key].double(), 0.4) for w, s in zip(WEIGHTS, sources))
        assert torch.allclose(composed[key].double(), expected, atol=1e-6)
    update_space = combine(sources, WEIGHTS, parse_operator("magnitude_prune_svd:0.4"))
    expected = sum(w * trimmed(update(s.tensors), 0.4) for w, s in zip(WEIGHTS, sources))
    assert torch.allclose(update(update_space), best_rank_r(expected, RANK), atol=1e-5)


def disjoint_sources() -> list[Candidate]:
    """Two sources whose factors are non-zero on alternate entries: every entry of a merge comes from one source."""
    first, second = source(1), source(2)
    tensors = []
    for candidate, parity in ((first, 0), (second, 1)):
        masked = {}
        for key in (A, B):
            x = candidate.tensors[key].clone()
            x.view(-1)[parity::2] = 0
            masked[key] = x
        tensors.append(Candidate(candidate.id, candidate.task, "c", candidate.digest, {**candidate.tensors, **masked}, "minilm"))
    return tensors


@pytest.mark.parametrize("name, scale", [("dare_linear:0.5", 1), ("dare_ties:0.5", 2)])
def test_dare_drops_entries_and_rescales_the_kept_ones_by_one_over_density(name, scale):
    pair = disjoint_sources()
    weights = [0.25, 0.75]
    composed = combine(pair, weights, parse_operator(name), seed=4)
    for key in (A, B):
        # `scale`: dare_ties's disjoint mean receives N·w (N = 2) and divides by the one source present at each entry
        full = sum(scale * w * s.tensors[key] for w, s in zip(weights, pair)) / 0.5
        kept = composed[key] != 0
        assert torch.allclose(composed[key][kept], full[kept], atol=1e-6)
        assert 0 < kept.sum() < (full != 0).sum()  # some dropped, some kept


def test_dare_is_deterministic_under_a_seed_and_unbiased_over_seeds(sources):
    operator = parse_operator("dare_linear:0.5")
    first = combine(sources, WEIGHTS, operator, seed=1)
    assert all(torch.equal(first[key], combine(sources, WEIGHTS, operator, seed=1)[key]) for key in first)
    assert not torch.equal(first[A], combine(sources, WEIGHTS, operator, seed=2)[A])
    state = torch.random.get_rng_state()
    mean = sum(combine(sources, WEIGHTS, operator, seed=seed)[A].double() for seed in range(400)) / 400
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator is left as it was
    expected = sum(w * s.tensors[A].double() for w, s in zip(WEIGHTS, sources))
    assert torch.allclose(mean, expected, atol=0.25)


def test_fitted_weights_of_any_sign_compose_under_svd(sources):
    weights = [1.5, -0.7, 0.0]
    composed = combine(sources, weights, parse_operator("svd"), normalized=False)
    target = sum(w * update(s.tensors) for w, s in zip(weights, sources))
    assert torch.allclose(update(composed), best_rank_r(target, RANK), atol=1e-5)


def test_operators_agree_with_peft_add_weighted_adapter():
    """The same merge as PEFT's, on a live LoraModel: svd and ties_svd (PEFT folds α/r into the update; here α/r stays in the config)."""
    from peft import LoraConfig, get_peft_model
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    lora = LoraConfig(r=RANK, lora_alpha=6, target_modules=["query"])
    model = get_peft_model(BertModel(config), lora, adapter_name="s0")
    model.add_adapter("s1", lora)
    layer = model.base_model.model.encoder.layer[0].attention.self.query
    generator = torch.Generator().manual_seed(0)
    candidates = []
    for index, name in enumerate(("s0", "s1")):
        a, b = torch.randn(RANK, 16, generator=generator), torch.randn(16, RANK, generator=generator)
        layer.lora_A[name].weight.data.copy_(a)
        layer.lora_B[name].weight.data.copy_(b)
        candidates.append(Candidate(index, f"t{index}", "c", f"{index:064d}", {A: a, B: b}))
    scaling = layer.scaling["s0"]
    weights = [0.3, 0.7]
    for name, peft_weights, extra in (("svd", weights, {}), ("ties_svd", [2 * w for w in weights], {"density": 0.5})):
        peft_model = copy.deepcopy(model)
        peft_model.add_weighted_adapter(["s0", "s1"], peft_weights, "merged", combination_type=name, svd_rank=RANK, **extra)
        expected = peft_model.base_model.model.encoder.layer[0].attention.self.query.get_delta_weight("merged").double()
        ours = combine(candidates, weights, parse_operator(f"{name}:0.5" if extra else name))
        assert torch.allclose(scaling * update(ours), expected, atol=1e-5), name


@pytest.mark.parametrize(
    "spec, message",
    [
        ("cat", r"cat concatenates ranks .*projected back to rank r it is svd"),
        ("mean", r"unknown --combine 'mean'; use one of linear, ties"),
        ("svd:0.5", r"svd prunes nothing and takes no density"),
        ("ties:1.5", r"density must be in \(0, 1\)"),
        ("ties:x", r"density must be a number"),
    ],
)
def test_bad_operators_are_refused_in_one_line(spec, message):
    with pytest.raises(EnsemblingError, match=message):
        parse_operator(spec)


def test_operator_labels_record_the_density():
    assert parse_operator("ties").label == f"ties:{DEFAULT_DENSITY:g}"
    assert parse_operator("DARE_TIES:0.5").label == "dare_ties:0.5"
    assert parse_operator("svd").label == "svd" and parse_operator(None).label == "linear"


def ia3(i: int) -> Candidate:
    generator = torch.Generator().manual_seed(i)
    return Candidate(i, f"task-{i}", "c", f"{i:064d}", {"layer.0.key.ia3_l.weight": torch.rand(8, 1, generator=generator)}, "minilm")


def test_modules_without_factor_pairs_are_refused_before_scoring():
    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"scored ({name}) before refusing")

    for name in OPERATORS[1:]:
        with pytest.raises(EnsemblingError, match=r"merges LoRA factor pairs .* compose with --combine linear only"):
            run(get_strategy("loss"), [ia3(1), ia3(2)], Target("target", "c"), Untouchable(), Options(combine=name))
    assert run(get_strategy("average"), [ia3(1), ia3(2)], Target("target", "c"), None, Options(combine="linear")).combine == "linear"


def test_the_default_init_takes_no_operator():
    with pytest.raises(EnsemblingError, match=r"--combine svd does not apply to strategy random"):
        run(get_strategy("random"), [source(1)], Target("target", "c"), None, Options(combine="svd"))


def test_the_ensemble_records_its_operator(sources):
    result = run(get_strategy("average"), sources, Target("target", "c"), None, Options(combine="dare_ties", seed=3))
    assert result.combine == f"dare_ties:{DEFAULT_DENSITY:g}"
    again = run(get_strategy("average"), sources, Target("target", "c"), None, Options(combine="dare_ties", seed=3))
    assert all(torch.equal(result.tensors[key], again.tensors[key]) for key in result.tensors)
