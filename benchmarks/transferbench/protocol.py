"""One target under the fair protocol: one k-shot sample per (shots, seed), every arm built and trained on it.

For each (shots, seed): `Dataset.few_shot` draws k train and k dev examples per label
from the target's train split. The arms read that sample only (`without_test`); the
test split is read once per arm, for its final score. `random` is trained first: its
trained module is θ_t for kl and weight-cos. Every arm is trained with the same
`TrainConfig` (budget, early stopping on the k-shot dev, seed). Inits come from
`hub.transfer.make_evaluator` + `hub.transfer.compose_init`, the code path of
`adapters ensemble`; one memo per sample lets each shuffled control permute the
weights its strategy found, and auto reuses the inits of the arms run before it. With
`--oracle` the target is also trained from each source alone, at lab scale from a subset of
the sources drawn from the sample's dataset-embedding similarities (oracle.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from benchmarks.transferbench.oracle import Source, cell_sources, oracle_arms
from benchmarks.transferbench.runs import RunStore, pool_digest
from benchmarks.transferbench.settings import Settings, parse_arm


def target_config(settings: Settings, seed: int):
    from hub.training import TrainConfig

    return TrainConfig(
        epochs=settings.target_max_steps, max_steps=settings.target_max_steps, eval_every=settings.target_eval_every, patience=settings.target_patience,
        min_steps=settings.target_min_steps, lr=settings.target_lr, batch_size=settings.batch_size, seed=seed, device=settings.device, progress=False,
    )  # fmt: skip


def test_examples(data, settings: Settings):
    from hub.datasets import deterministic_sample

    test = data.split("test")
    return deterministic_sample(test, settings.test_cap) if settings.test_cap else list(test)


def source_diagnostics(evaluator, candidates) -> list[dict]:
    """Per source, on the target's scoring examples: zero-shot accuracy and confidence (mean top probability); its dataset-embedding similarity."""
    rows = []
    for candidate in candidates:
        predictions = evaluator.predict(candidate)
        probs = predictions.log_probs.exp()
        rows.append(
            {
                "source": candidate.task,
                "module_id": candidate.id,  # a lab-pool task has several modules
                "category": candidate.category,
                "zero_shot": float((predictions.log_probs.argmax(dim=1) == predictions.gold).double().mean()),
                "confidence": float(probs.max(dim=1).values.double().mean()),
                "similarity": candidate.similarity,
            }
        )
    return rows


def run_cell(
    hub, suite: dict, target: str, method: str, shots: int, seed: int, sources: dict, settings: Settings, store: RunStore, log: Callable[[str], None]
) -> None:
    """Every missing arm of one (target, shots, seed), each run appended to `store` as it ends."""
    from dataclasses import replace

    from ensembling.candidates import Tuned
    from ensembling.ensemble import Options
    from ensembling.errors import EnsemblingError
    from ensembling.strategies import NO_TRANSFER, get_strategy
    from ensembling.strategies.retrieval import nearest
    from hub.backbones import formulation_for, resolve_base_model
    from hub.methods import get_method
    from hub.training import measure, train
    from hub.transfer import candidate_of, compose_init, make_evaluator

    full = suite[target]
    method_obj = get_method(method)
    backbone = hub.backbone(resolve_base_model(settings.base_model))
    records = [hub.show(sources[task].module_id) for task in sorted(sources) if task != target]
    pool = pool_digest((record.task, record.blob_digest) for record in records)
    config = dict(records[0].config)
    candidates, _skipped = hub.transfer.load_candidates([candidate_of(record) for record in records], skip_corrupt=False)
    formulation = formulation_for(backbone.ref)
    model = backbone.attach(method_obj, config)
    test = test_examples(full, settings)
    sample = full.few_shot(shots, seed).without_test()
    # The target is embedded from its sample, as `adapters ensemble` would embed a k-shot dataset.
    candidates = hub.transfer.with_similarity(candidates, sample, backbone, method_obj)
    cell = store.cell(target, method, shots, seed, pool, fields=("similarity", "module_id"))
    arms = [NO_TRANSFER, *[name for name in settings.strategies if name != NO_TRANSFER]]
    if settings.oracle:
        # Its subset is drawn by similarity to the sample; the report draws it again from the cell line's, so from those where stored.
        pooled = cell_sources(cell) if cell is not None else [Source(candidate.task, candidate.id, candidate.similarity) for candidate in candidates]
        arms += oracle_arms(pooled, settings.oracle_subset, target, shots, seed)

    def stored(arm: str) -> bool:
        return store.has(target, method, shots, seed, arm, None if arm == NO_TRANSFER else pool)

    if all(stored(arm) for arm in arms):
        return
    evaluator = make_evaluator(
        backbone, method_obj, config, sample, device=settings.device, seed=seed, score_examples=settings.score_examples,
        tuning=target_config(settings, seed), model=model,
    )  # fmt: skip
    if cell is None:
        store.add_cell(target, method, shots, seed, source_diagnostics(evaluator, candidates), pool)
    options = Options(seed=seed, reference_steps=settings.target_max_steps, tune_steps=settings.tune_steps, pool_size=settings.pool_size)
    memos: dict[int | None, dict[str, object]] = {}
    for arm in arms:
        if stored(arm):
            if arm == NO_TRANSFER:
                evaluator.use_reference(Tuned(store.random_module(target, method, shots, seed), 0, math.nan))
            continue
        started, reused = time.perf_counter(), evaluator.reused_s
        try:
            strategy, combine, count = parse_arm(arm)
            if count is not None and count >= len(candidates):
                raise EnsemblingError(f"the pool's {len(candidates)} sources are all within the {count} nearest: this arm is {strategy}'s here")
            # Two stages: the N sources nearest by dataset embedding, the ranking `--candidates N` narrows the registry by.
            weighed = candidates if count is None else nearest(candidates, count)
            # A memo per candidate set: guarded, shuffled and auto reuse an inner strategy's weights only over the same sources.
            init = compose_init(get_strategy(strategy), weighed, sample, evaluator, replace(options, combine=combine), memo=memos.setdefault(count, {}))
        except EnsemblingError as error:
            log(f"skip {arm} for {target} ({shots}-shot, seed {seed}): {error}")
            store.add_skip(target, method, shots, seed, arm, str(error), pool)
            continue
        built = time.perf_counter()
        method_obj.set_tensors(model, init.tensors)
        result = train(model, method_obj, formulation, sample.split("train"), sample.split("dev"), target_config(settings, seed))
        trained = time.perf_counter()
        test_acc = measure(model, formulation, test).accuracy
        done = time.perf_counter()
        if arm == NO_TRANSFER:
            tensors = {name: tensor.detach().cpu().clone() for name, tensor in method_obj.get_tensors(model).items()}
            store.save_random_module(target, method, shots, seed, tensors)
            evaluator.use_reference(Tuned(tensors, result.steps, result.best_dev))
        store.add_run(
            dict(
                target=target, category=full.card.category, method=method, shots=shots, seed=seed, arm=arm, pool=pool,
                test_acc=test_acc, dev_acc=result.best_dev, steps=result.steps, best_step=result.best_step,
                history=[[row["step"], row["dev"], round(row["seconds"], 3)] for row in result.history], stopped_by=result.stopped_by,
                init_s=built - started, reused_s=evaluator.reused_s - reused, train_s=trained - built, eval_s=done - trained, tuning_steps=init.tuning_steps,
                effective_sources=init.effective_sources,
                chosen=init.decision.chosen if init.decision else None, rationale=init.decision.reason if init.decision else None,
                weights=[[source.candidate.task, source.score, source.weight] for source in init.sources],
                module_weights=[[source.candidate.id, source.weight] for source in init.sources],  # a task may have several modules
            )
        )  # fmt: skip
        log(
            f"{method} {target} {shots}-shot seed {seed} {arm:>20}: test {test_acc:.3f} dev {result.best_dev:.3f} "
            f"({built - started:.0f}+{trained - built:.0f}+{done - trained:.0f} s, {result.steps} steps)"
        )
