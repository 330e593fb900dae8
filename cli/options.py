"""Options shared by several commands, each defined once, with the callbacks that check them.

The transfer options (from `BaseModelOption` to `DeviceOption`) are the ones `ensemble` and `train` both
take: `train` builds its init with them as `ensemble` does. A default that both commands use is a constant here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from cli.errors import fail
from hub import COMBINE_OPERATORS, DEFAULT_COMBINE, strategy_summaries
from hub.devices import AUTO_DEVICE


def at_least(bound: int):
    """A callback refusing an integer option below `bound` with the usual one-line error."""

    def check(param: typer.CallbackParam, value: int | None) -> int | None:
        if value is not None and value < bound:
            fail(f"--{param.name.replace('_', '-')} must be at least {bound}, got {value}")
        return value

    return check


def positive(param: typer.CallbackParam, value: float | None) -> float | None:
    """A callback refusing a float option that is not a positive, finite number."""
    if value is not None and not (math.isfinite(value) and value > 0):
        fail(f"--{param.name.replace('_', '-')} must be a positive number, got {value}")
    return value


RegistryOption = Annotated[
    str | None,
    typer.Option("--registry", "-r", envvar="ADAPTERS_REGISTRY", help="Registry directory or database URL (default: the user data dir)."),
]
BlobsOption = Annotated[
    str | None,
    typer.Option(
        "--blobs", envvar="ADAPTERS_BLOBS", help="Blob location: a directory, or s3://BUCKET/PREFIX (endpoint and credentials as the AWS SDK reads them)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
BaseModelFilter = Annotated[str | None, typer.Option("--base-model", help="Only modules of this base model ('minilm', a path or a cached Hub id).")]
MethodFilter = Annotated[str | None, typer.Option("--method", help="Only modules of this method (lora, prefix, adapter, …).")]
CategoryFilter = Annotated[str | None, typer.Option("--category", help="Only modules of tasks in this category.")]
DatasetOption = Annotated[
    Path | None,
    typer.Option("--dataset", "-d", help="Dataset folder the module was trained on (task.json + splits); without it, the model card describes the task."),
]
PushBaseModelOption = Annotated[
    str | None,
    typer.Option("--base-model", help="Base model: 'minilm', a local model folder or a cached Hub id ORG/NAME[@REVISION] (default: from the config)."),
]
TagOption = Annotated[list[str] | None, typer.Option("--tag", "-t", help="A free tag, repeatable; added to the model card's.")]
OutOption = Annotated[Path | None, typer.Option("--out", "-o", help="Also write the module as a folder here (new or empty).")]

# The transfer options of `ensemble` and `train`.
DEFAULT_METHOD = "lora"
DEFAULT_DEVICE = AUTO_DEVICE
STRATEGY_HELP = "; ".join(f"{name}: {summary}" for name, summary in strategy_summaries())
StrategyOption = Annotated[str, typer.Option("--strategy", "-s", help=STRATEGY_HELP)]
BaseModelOption = Annotated[str | None, typer.Option("--base-model", help="Base model: 'minilm', a local model folder or a cached Hub id ORG/NAME[@REVISION].")]
MethodOption = Annotated[str, typer.Option("--method", help="PET method: lora, prefix, prompt, ia3 or adapter (bottleneck).")]
MethodOptionsOption = Annotated[
    list[str] | None,
    typer.Option("--method-option", "-O", help="A hyperparameter of the method as KEY=VALUE (e.g. r=4; lists as JSON), repeatable."),
]
TopKOption = Annotated[int | None, typer.Option("--top-k", "-k", callback=at_least(1), help="Ensemble: keep only the k largest weights (renormalized).")]
TemperatureOption = Annotated[
    float | None, typer.Option("--temperature", "-T", callback=positive, help="Ensemble: softmax temperature (default: the strategy's).")
]
CandidatesOption = Annotated[
    int | None, typer.Option("--candidates", callback=at_least(1), help="Ensemble: first narrow to the N modules of the most similar datasets.")
]
ShotsOption = Annotated[
    int | None,
    typer.Option("--shots", callback=at_least(1), help="The k-shot sample: k train and k dev examples per label, both drawn from the train split."),
]
LayersOption = Annotated[
    str | None,
    typer.Option("--layers", help="Ensemble: compose only these layers (upper, lower, or indices such as 0,4-5); the others keep the default init."),
]
CombineOption = Annotated[
    str,
    typer.Option(
        "--combine",
        help=f"Ensemble: how the weighted sources become the init: {', '.join(COMBINE_OPERATORS)} (the pruning ones take a density, e.g. ties:0.5); "
        f"any but {DEFAULT_COMBINE} merges LoRA factor pairs.",
    ),
]
ZnormOption = Annotated[bool | None, typer.Option("--znorm/--no-znorm", help="z-normalize scores before the softmax (default: the strategy's).")]
ScoreExamplesOption = Annotated[
    int, typer.Option("--score-examples", callback=at_least(1), help="Most target examples scored (one dev batch; the paper: up to 50).")
]
StepsOption = Annotated[
    int | None,
    typer.Option(
        "--steps",
        callback=at_least(1),
        help="Step cap of every training on the target: auto's cross-validation, the reference θ_t (kl, weight-cos), each tuned source (euclidean, performance); the best dev checkpoint is kept (train: by default its --max-steps).",
    ),
]
# The training budget: of `train`'s own training, and of every training a strategy runs on the target (guarded's
# two, auto's cross-validation, θ_t), so that `ensemble` decides under the budget `train` will train with.
EpochsOption = Annotated[int, typer.Option("--epochs", callback=at_least(1), help="Most epochs; early stopping on dev accuracy may end sooner.")]
MaxStepsOption = Annotated[int | None, typer.Option("--max-steps", callback=at_least(1), help="Stop after this many optimizer steps.")]
LrOption = Annotated[float, typer.Option("--lr", callback=positive, help="Learning rate (the paper: 5e-4).")]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", callback=at_least(1), help="Examples per step (the paper: 8).")]
PatienceOption = Annotated[int, typer.Option("--patience", callback=at_least(1), help="Dev evaluations without a better dev score before stopping.")]
EvalEveryOption = Annotated[int | None, typer.Option("--eval-every", callback=at_least(1), help="Steps between dev evaluations (default: once an epoch).")]
MinStepsOption = Annotated[
    int,
    typer.Option(
        "--min-steps",
        callback=at_least(0),
        help="Steps before patience may stop a training: a default init that starts slowly is not cut short (the step cap still ends it).",
    ),
]
MIN_STEPS = 60  # the transfer benchmark's converged budget: patience counts only after 60 steps
SkipCorruptOption = Annotated[bool, typer.Option("--skip-corrupt", help="Ensemble without candidates whose blobs fail their digest check.")]
SeedOption = Annotated[int, typer.Option("--seed", callback=at_least(0), help="Seed of the default init, the few-shot sample and any training.")]
DeviceOption = Annotated[str, typer.Option("--device", help="auto (a GPU when there is one), cpu or cuda.")]


def parse_method_options(items: list[str] | None) -> dict[str, str]:
    """KEY=VALUE pairs as given; the method converts and checks the values."""
    options = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--method-option {item!r} is not KEY=VALUE, e.g. --method-option r=4")
        options[key.strip()] = value
    return options
