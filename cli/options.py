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
from hub import DEFAULT_COMBINE, DEFAULT_STRATEGY, SCORE_EXAMPLES
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
    typer.Option("--registry", "-r", envvar="ADAPTERS_REGISTRY", help="Registry directory or database URL."),
]
BlobsOption = Annotated[
    str | None,
    typer.Option("--blobs", envvar="ADAPTERS_BLOBS", help="A blob directory, or s3://BUCKET/PREFIX (credentials as the AWS SDK reads them)."),
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
# The strategies are many and their summaries long: `adapters strategies` lists them, the option points there.
StrategyOption = Annotated[
    str, typer.Option("--strategy", "-s", show_default=False, help=f"Weighting (default {DEFAULT_STRATEGY}); `adapters strategies` lists them.")
]
BaseModelOption = Annotated[str | None, typer.Option("--base-model", help="'minilm', a model folder or a cached Hub id ORG/NAME[@REV].")]
MethodOption = Annotated[str, typer.Option("--method", show_default=False, help=f"{DEFAULT_METHOD} (default), prefix, prompt, ia3 or adapter.")]
MethodOptionsOption = Annotated[list[str] | None, typer.Option("--method-option", "-O", help="A method hyperparameter KEY=VALUE (r=4), repeatable.")]
TopKOption = Annotated[int | None, typer.Option("--top-k", "-k", callback=at_least(1), help="Keep the k largest weights.")]
TemperatureOption = Annotated[float | None, typer.Option("--temperature", "-T", callback=positive, help="Softmax temperature (default: the strategy's).")]
CandidatesOption = Annotated[int | None, typer.Option("--candidates", callback=at_least(1), help="First narrow to the N nearest datasets' modules.")]
ShotsOption = Annotated[int | None, typer.Option("--shots", callback=at_least(1), help="Use k train + k dev examples per label (from train).")]
LayersOption = Annotated[str | None, typer.Option("--layers", help="Compose only these layers: upper, lower or 0,4-5.")]
CombineOption = Annotated[
    str,
    typer.Option(
        "--combine",
        show_default=False,
        help=f"Merge operator (default {DEFAULT_COMBINE}); `adapters strategies` lists them.",
    ),
]
ZnormOption = Annotated[bool | None, typer.Option("--znorm", help="z-normalize the scores before the softmax.")]
ScoreExamplesOption = Annotated[
    int, typer.Option("--score-examples", callback=at_least(1), show_default=False, help=f"Most target examples scored (default {SCORE_EXAMPLES}).")
]
StepsOption = Annotated[
    int | None,
    typer.Option("--steps", callback=at_least(1), help="Step cap of a strategy's own trainings."),
]
# The training budget: of `train`'s own training, and of every training a strategy runs on the target (guarded's
# two, auto's cross-validation, θ_t), so that `ensemble` decides under the budget `train` will train with.
EPOCHS, LR, BATCH_SIZE, PATIENCE = 10, 5e-4, 8, 3  # the paper's lr and batch size
EpochsOption = Annotated[int, typer.Option("--epochs", callback=at_least(1), show_default=False, help=f"Most epochs (default {EPOCHS}).")]
MaxStepsOption = Annotated[int | None, typer.Option("--max-steps", callback=at_least(1), help="Most optimizer steps.")]
LrOption = Annotated[float, typer.Option("--lr", callback=positive, show_default=False, help=f"Learning rate (default {LR:g}).")]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", callback=at_least(1), show_default=False, help=f"Examples per step (default {BATCH_SIZE}).")]
PatienceOption = Annotated[
    int, typer.Option("--patience", callback=at_least(1), show_default=False, help=f"Dev evaluations without gain before stopping (default {PATIENCE}).")
]
EvalEveryOption = Annotated[int | None, typer.Option("--eval-every", callback=at_least(1), help="Steps between dev evaluations (default: an epoch).")]
# Steps before patience may stop a training: a default init that starts slowly is not cut short (the step cap still ends it).
MIN_STEPS = 60  # the transfer benchmark's converged budget: patience counts only after 60 steps
MinStepsOption = Annotated[
    int, typer.Option("--min-steps", callback=at_least(0), show_default=False, help=f"Steps before patience may stop training (default {MIN_STEPS}).")
]
SkipCorruptOption = Annotated[bool, typer.Option("--skip-corrupt", help="Leave out candidates whose blobs fail their check.")]
SeedOption = Annotated[int, typer.Option("--seed", callback=at_least(0), show_default=False, help="Seed of the init, k-shot sample and training (default 0).")]
DeviceOption = Annotated[str, typer.Option("--device", show_default=False, help="auto (default: a GPU if any), cpu or cuda.")]


def parse_method_options(items: list[str] | None) -> dict[str, str]:
    """KEY=VALUE pairs as given; the method converts and checks the values."""
    options = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--method-option {item!r} is not KEY=VALUE, e.g. --method-option r=4")
        options[key.strip()] = value
    return options
