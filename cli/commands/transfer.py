"""Transfer verbs: search for related modules, ensemble them into a new task's init, train from an init.

`ensemble` and `train` take the same transfer options (cli/options.py); `train --init` is `ensemble --strategy`
that also accepts a module id or the default init.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import render
from cli.errors import fail, opened
from cli.options import (
    BATCH_SIZE,
    DEFAULT_DEVICE,
    DEFAULT_METHOD,
    EPOCHS,
    LR,
    MIN_STEPS,
    PATIENCE,
    BaseModelFilter,
    BaseModelOption,
    BatchSizeOption,
    BlobsOption,
    CandidatesOption,
    CategoryFilter,
    CombineOption,
    DeviceOption,
    EpochsOption,
    EvalEveryOption,
    JsonOption,
    LayersOption,
    LrOption,
    MaxStepsOption,
    MethodFilter,
    MethodOption,
    MethodOptionsOption,
    MinStepsOption,
    OutOption,
    PatienceOption,
    RegistryOption,
    ScoreExamplesOption,
    SeedOption,
    ShotsOption,
    SkipCorruptOption,
    StepsOption,
    StrategyOption,
    TemperatureOption,
    TopKOption,
    ZnormOption,
    at_least,
    parse_method_options,
)
from hub import COMBINE_OPERATORS, DEFAULT_COMBINE, DEFAULT_STRATEGY, NO_TRANSFER, SCORE_EXAMPLES, TransferOptions, load_dataset, strategy_summaries

app = typer.Typer()


@app.command()
def search(
    dataset: Annotated[Path | None, typer.Argument(help="Dataset folder of the new task.")] = None,
    module: Annotated[int | None, typer.Option("--module", help="Search by an existing module's parameters instead.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", callback=at_least(1), help="How many modules to return.")] = 10,
    base_model: BaseModelFilter = None,
    method: MethodFilter = None,
    category: CategoryFilter = None,
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Find the modules of the tasks most similar to a dataset (or to a module)."""
    with opened(registry, blobs) as hub:
        hits = hub.search(dataset, module=module, top_k=top_k, base_model=base_model, method=method, category=category)
        if as_json:
            render.print_json([{"similarity": hit.similarity, **hit.module.to_json()} for hit in hits])
        else:
            query = f"module {module}" if module is not None else str(dataset)
            render.console.print(render.hits_table(hits, title=f"modules closest to {query}"))


@app.command()
def strategies(as_json: JsonOption = False) -> None:
    """List the strategies that `ensemble --strategy` and `train --init` take, with what each scores, and the merge operators."""
    summaries = strategy_summaries()
    if as_json:
        render.print_json([{"strategy": name, "summary": summary, "default": name == DEFAULT_STRATEGY} for name, summary in summaries])
    else:
        render.console.print(render.strategies_table(summaries, DEFAULT_STRATEGY))
        render.console.print(f"Merge operators (--combine; ties:0.5 sets a density): {', '.join(COMBINE_OPERATORS)}; default {DEFAULT_COMBINE}.")


@app.command()
def ensemble(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder of the new (target) task.")],
    base_model: BaseModelOption = None,
    method: MethodOption = DEFAULT_METHOD,
    method_option: MethodOptionsOption = None,
    strategy: StrategyOption = DEFAULT_STRATEGY,
    top_k: TopKOption = None,
    temperature: TemperatureOption = None,
    znorm: ZnormOption = None,
    candidates: CandidatesOption = None,
    layers: LayersOption = None,
    combine: CombineOption = DEFAULT_COMBINE,
    shots: ShotsOption = None,
    score_examples: ScoreExamplesOption = SCORE_EXAMPLES,
    steps: StepsOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = DEFAULT_DEVICE,
    skip_corrupt: SkipCorruptOption = False,
    epochs: EpochsOption = EPOCHS,
    max_steps: MaxStepsOption = None,
    lr: LrOption = LR,
    batch_size: BatchSizeOption = BATCH_SIZE,
    patience: PatienceOption = PATIENCE,
    eval_every: EvalEveryOption = None,
    min_steps: MinStepsOption = MIN_STEPS,
    out: OutOption = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a bar chart of the weights (PNG).")] = None,
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compose a new task's init from the registry's modules and register it (default: task-retrieval, which trains nothing)."""
    refuse_used_folder(out)
    if plot is not None and not plot.parent.resolve().is_dir():
        fail(f"--plot {plot}: folder {plot.parent} does not exist")
    config = training_config(epochs, max_steps, lr, batch_size, patience, eval_every, min_steps, seed, device, as_json)
    options = TransferOptions(
        base_model=base_model, method=method, method_options=parse_method_options(method_option), strategy=strategy, top_k=top_k,
        temperature=temperature, znorm=znorm, candidates=candidates, layers=layers, combine=combine, score_examples=score_examples,
        **step_budget(steps, max_steps), seed=seed, device=device, skip_corrupt=skip_corrupt, tuning=config,
    )  # fmt: skip
    with opened(registry, blobs) as hub, render.counted_progress("scoring candidates", disable=as_json) as progress:
        # The init is built (and registered) for the k-shot sample when asked, as `train --shots` trains on it.
        target = dataset if shots is None else load_dataset(dataset).few_shot(shots, seed)
        result = hub.ensemble(target, options, progress=progress)
        if out is not None:
            result.save(out)
        if plot is not None:
            render.weights_plot(result, plot)
        if as_json:
            render.print_json(render.ensemble_json(result))
        else:
            render.console.print(render.weights_table(result))
            if result.decision is not None:
                render.console.print(f"{result.strategy}: {result.decision.reason}", highlight=False, soft_wrap=True)
            for line in result.skipped:
                render.console.print(f"[yellow]skipped[/] {line}", highlight=False, soft_wrap=True)
            saved = f"; wrote {out}" if out is not None else ""
            earlier = result.record.provenance
            if earlier is not None and earlier.strategy != result.strategy:
                # The catalog keeps one row per (base model, dataset, weights): identical weights are not registered twice.
                render.console.print(
                    f"the init has the same weights as module [bold]{result.record.id}[/], registered earlier by strategy "
                    f"{earlier.strategy}; kept that one{saved}"
                )
            else:
                render.console.print(f"registered the init as module [bold]{result.record.id}[/] (origin ensemble){saved}")


@app.command()
def train(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder of the task to train (task.json + splits).")],
    base_model: BaseModelOption = None,
    method: MethodOption = DEFAULT_METHOD,
    method_option: MethodOptionsOption = None,
    init: Annotated[str, typer.Option("--init", help=f"{NO_TRANSFER} (the default init), a module id or a strategy (`adapters strategies`).")] = NO_TRANSFER,
    top_k: TopKOption = None,
    temperature: TemperatureOption = None,
    znorm: ZnormOption = None,
    candidates: CandidatesOption = None,
    layers: LayersOption = None,
    combine: CombineOption = DEFAULT_COMBINE,
    shots: ShotsOption = None,
    score_examples: ScoreExamplesOption = SCORE_EXAMPLES,
    steps: StepsOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = DEFAULT_DEVICE,
    skip_corrupt: SkipCorruptOption = False,
    epochs: EpochsOption = EPOCHS,
    max_steps: MaxStepsOption = None,
    lr: LrOption = LR,
    batch_size: BatchSizeOption = BATCH_SIZE,
    patience: PatienceOption = PATIENCE,
    eval_every: EvalEveryOption = None,
    min_steps: MinStepsOption = MIN_STEPS,
    push_module: Annotated[bool, typer.Option("--push", help="Register the trained module with its metrics and its init's provenance.")] = False,
    out: OutOption = None,
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train a module for a task from an init (random, a registry module, or a strategy's ensemble)."""
    from hub.training import resolve_device

    refuse_used_folder(out)
    config = training_config(epochs, max_steps, lr, batch_size, patience, eval_every, min_steps, seed, device, as_json)
    options = TransferOptions(
        base_model=base_model, method=method, method_options=parse_method_options(method_option), top_k=top_k, temperature=temperature,
        znorm=znorm, candidates=candidates, layers=layers, combine=combine, score_examples=score_examples, **step_budget(steps, max_steps),
        seed=seed, device=device, skip_corrupt=skip_corrupt, tuning=config,
    )  # fmt: skip
    with opened(registry, blobs, create=push_module) as hub:
        resolve_device(device)
        data = load_dataset(dataset)
        data.split("train")
        if shots is not None:
            data = data.few_shot(shots, seed)
        module = hub.init_module(init, data, options)
        decision = module.transfer.decision if module.transfer is not None else None
        if decision is not None and not as_json:
            render.console.print(f"{init}: {decision.reason}", highlight=False, soft_wrap=True)
        elif init.isdigit() and not as_json:
            made = hub.show(int(init)).provenance
            if made is not None and made.rationale:
                # A composed init given by id: say how it was made, as `ensemble` did when it composed it.
                render.console.print(f"init {init} ({made.strategy}): {made.rationale}", highlight=False, soft_wrap=True)
        result = hub.train(module, data, config, push=push_module)
        if out is not None:
            module.save(out)
        summary = {
            "task": data.card.name,
            "init": init,
            "init_chosen": decision.chosen if decision is not None else None,
            "init_rationale": decision.reason if decision is not None else None,
            "train_examples": len(data.split("train")),
            "steps": result.steps,
            "dev_acc": result.best_dev,
            "test_acc": result.test,
            "module_id": result.module_id,
        }
        if as_json:
            render.print_json(summary)
        else:
            render.console.print(render.training_table(summary))


def training_config(
    epochs: int, max_steps: int | None, lr: float, batch_size: int, patience: int, eval_every: int | None, min_steps: int, seed: int, device: str, quiet: bool
):
    """The training budget the options give, for `train`'s own training and every training a strategy runs on the target."""
    from hub.training import TrainConfig

    return TrainConfig(
        epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, device=device, patience=patience, max_steps=max_steps, eval_every=eval_every,
        min_steps=min_steps, progress=not quiet,
    )  # fmt: skip


def step_budget(steps: int | None, max_steps: int | None) -> dict[str, int]:
    """The step cap of a strategy's trainings on the target: --steps, else the target's own --max-steps."""
    cap = steps if steps is not None else max_steps
    return {} if cap is None else {"reference_steps": cap, "tune_steps": cap}


def refuse_used_folder(out: Path | None) -> None:
    """Refuse --out unless it is a new or empty folder, before any work."""
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        fail(f"--out {out} exists and is not an empty folder; choose a new folder")
