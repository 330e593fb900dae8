"""`adapters`: push, search, list, show, rm, export modules; index and db maintenance; API tokens."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from cli import render
from hub import DEFAULT_STRATEGY, NO_TRANSFER, USER_ERRORS, Hub, NotFound, load_dataset, strategy_summaries
from hub.devices import AUTO_DEVICE

app = typer.Typer(help="deltahub: a registry of adapter modules and task-transfer initializations.", no_args_is_help=True, add_completion=False)
index_app = typer.Typer(help="The faiss indexes (caches of the database).", no_args_is_help=True)
db_app = typer.Typer(help="The registry database schema.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens of the registry server (read, write or admin).", no_args_is_help=True)
app.add_typer(index_app, name="index")
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")

STRATEGY_HELP = "; ".join(f"{name}: {summary}" for name, summary in strategy_summaries())


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
BlobsOption = Annotated[str | None, typer.Option("--blobs", envvar="ADAPTERS_BLOBS", help="Blob directory of a server registry (PostgreSQL).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
BaseModelFilter = Annotated[str | None, typer.Option("--base-model", help="Only modules of this base model ('minilm', a path or a cached Hub id).")]
MethodFilter = Annotated[str | None, typer.Option("--method", help="Only modules of this method (lora, prefix, adapter, …).")]
CategoryFilter = Annotated[str | None, typer.Option("--category", help="Only modules of tasks in this category.")]
# Shared by `ensemble` and `train`, which builds its init with the same ensemble options.
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
DatasetOption = Annotated[
    Path | None,
    typer.Option("--dataset", "-d", help="Dataset folder the module was trained on (task.json + splits); without it, the model card describes the task."),
]
PushBaseModelOption = Annotated[
    str | None,
    typer.Option("--base-model", help="Base model: 'minilm', a local model folder or a cached Hub id ORG/NAME[@REVISION] (default: from the config)."),
]
TagOption = Annotated[list[str] | None, typer.Option("--tag", "-t", help="A free tag, repeatable; added to the model card's.")]
SeedOption = Annotated[int, typer.Option("--seed", callback=at_least(0), help="Seed of the default init, the few-shot sample and any training.")]
OutOption = Annotated[Path | None, typer.Option("--out", "-o", help="Also write the module as a folder here (new or empty).")]


def parse_method_options(items: list[str] | None) -> dict[str, str]:
    """KEY=VALUE pairs as given; the method converts and checks the values."""
    options = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--method-option {item!r} is not KEY=VALUE, e.g. --method-option r=4")
        options[key.strip()] = value
    return options


def refuse_used_folder(out: Path | None) -> None:
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        fail(f"--out {out} exists and is not an empty folder; choose a new folder")


def fail(message: str) -> None:
    render.console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


@contextmanager
def opened(registry: str | None, blobs: str | None) -> Iterator[Hub]:
    """Open the registry and turn user errors into one line and exit code 1."""
    try:
        with Hub(registry, blobs) as hub:
            yield hub
    except NotFound as error:
        fail(f"{error}; `adapters list` shows the ids")
    except USER_ERRORS as error:
        fail(str(error))
    except KeyboardInterrupt:
        render.console.print("[yellow]interrupted; the registry is unchanged by the unfinished step[/]")
        raise typer.Exit(code=130) from None


@app.command()
def push(
    folder: Annotated[Path, typer.Argument(help="Module folder as save_pretrained writes it (adapter_config.json + adapter_model.safetensors).")],
    dataset: DatasetOption = None,
    task: Annotated[str | None, typer.Option("--task", help="Without --dataset: the module's task name (default: the model card's).")] = None,
    category: Annotated[str | None, typer.Option("--category", help="Without --dataset: its task's category (default: the model card's).")] = None,
    base_model: PushBaseModelOption = None,
    metric: Annotated[list[str] | None, typer.Option("--metric", "-m", help="A score as NAME=VALUE, repeatable; overrides the model card's.")] = None,
    tag: TagOption = None,
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a trained module with its dataset, scores and tags (a model card, README.md, in the folder gives tags and scores too).

    Without --dataset the module is described by its task (--task/--category, else its model card) and has no
    dataset embedding: dataset search leaves it out, parameter search and ensembles keep it.
    """
    metrics = {}
    for item in metric or ():
        name, _, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            fail(f"--metric {item!r} is not NAME=NUMBER")
        if not name.strip() or not math.isfinite(number):
            fail(f"--metric {item!r} needs a name and a finite number (JSON has no NaN or infinity)")
        metrics[name.strip()] = number
    with opened(registry, blobs) as hub:
        record = hub.push(folder, dataset, task=task, category=category, base_model=base_model, metrics=metrics, tags=tag or ())
        if as_json:
            render.print_json(record.to_json())
        else:
            without = ", no dataset: not in dataset search" if record.dataset_id is None else ""
            render.console.print(f"pushed module [bold]{record.id}[/] ({record.method}, task {record.task}, {record.num_params:,} parameters{without})")


@app.command("import")
def import_modules(
    paths: Annotated[list[Path] | None, typer.Argument(help="Folders to search, recursively, for PEFT module folders (with adapter_config.json).")] = None,
    hf_cache: Annotated[
        bool, typer.Option("--hf-cache", help="Instead of PATHS: every PEFT adapter repo in the local Hugging Face cache (HF_HUB_CACHE).")
    ] = False,
    dataset: DatasetOption = None,
    base_model: PushBaseModelOption = None,
    tag: TagOption = None,
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Push every module folder under PATHS (or every adapter repo of the Hugging Face cache): each described by its model card, or all by one --dataset.

    A cache repo records its repo id and commit sha as the module's source. A folder whose weights are registered already is reported as already there; one that cannot be pushed is
    refused with its reason and the others go on. Exit code 1 when any folder was refused.
    """
    if bool(paths) == hf_cache:
        fail("pass the folders to import or --hf-cache, not both or neither")
    options = {"dataset": dataset, "base_model": base_model, "tags": tag or ()}
    with opened(registry, blobs) as hub, render.import_progress(disable=as_json) as progress:
        outcomes = hub.import_hf_cache(progress=progress, **options) if hf_cache else hub.import_folders(paths, progress=progress, **options)
    if as_json:
        render.print_json(render.import_json(outcomes))
    else:
        render.console.print(render.import_table(outcomes))
        for line in render.import_refusals(outcomes):
            render.console.print(line, highlight=False, soft_wrap=True)
    if any(outcome.status == "refused" for outcome in outcomes):
        raise typer.Exit(code=1)


@app.command()
def pull(
    repo: Annotated[str, typer.Argument(help="An adapter repo of the Hugging Face Hub: ORG/NAME or ORG/NAME@REVISION (branch, tag or commit sha).")],
    task: Annotated[str | None, typer.Option("--task", help="The module's task name (default: the repo's model card's).")] = None,
    category: Annotated[str | None, typer.Option("--category", help="Its task's category (default: the repo's model card's).")] = None,
    base_model: PushBaseModelOption = None,
    tag: TagOption = None,
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an adapter repo from the local Hugging Face cache (downloaded only when not cached and HF_HUB_OFFLINE is unset).

    Its model card describes it as for `push` without --dataset; the module records the repo id and commit sha as its source.
    """
    with opened(registry, blobs) as hub:
        record = hub.pull(repo, task=task, category=category, base_model=base_model, tags=tag or ())
        if as_json:
            render.print_json(record.to_json())
        else:
            render.console.print(
                f"pulled {record.source} as module [bold]{record.id}[/] ({record.method}, task {record.task}, {record.num_params:,} parameters)"
            )


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


@app.command("list")
def list_modules(
    base_model: BaseModelFilter = None,
    method: MethodFilter = None,
    category: CategoryFilter = None,
    task: Annotated[str | None, typer.Option("--task", help="Only modules of this task.")] = None,
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the registry's modules."""
    with opened(registry, blobs) as hub:
        records = hub.list(base_model=base_model, method=method, category=category, task=task)
        if as_json:
            render.print_json([record.to_json() for record in records])
        else:
            render.console.print(render.modules_table(records, title=f"{len(records)} modules in {hub.registry.location.display}"))


@app.command()
def show(
    module_id: Annotated[int, typer.Argument(help="Module id.")],
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one module: task, method, schema, metrics, provenance."""
    with opened(registry, blobs) as hub:
        record = hub.show(module_id)
        if as_json:
            render.print_json(record.to_json())
        else:
            render.console.print(render.module_details(record))


@app.command()
def rm(
    module_id: Annotated[int, typer.Argument(help="Module id.")],
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
) -> None:
    """Remove a module from the catalog and the indexes."""
    with opened(registry, blobs) as hub:
        record = hub.remove(module_id)
        render.console.print(f"removed module {record.id} ({record.task}, {record.method})")


@app.command()
def export(
    module_id: Annotated[int, typer.Argument(help="Module id.")],
    out: Annotated[Path, typer.Argument(help="New folder to write (PEFT layout and a model card, README.md).")],
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
) -> None:
    """Write a module as a folder that PeftModel.from_pretrained loads, with a Hugging Face Hub model card (README.md)."""
    with opened(registry, blobs) as hub:
        target = hub.export(module_id, out)
        render.console.print(f"exported module {module_id} to {target} (with its model card, README.md)")


@app.command()
def publish(
    module_id: Annotated[int, typer.Argument(help="Module id.")],
    repo_id: Annotated[str, typer.Argument(help="The Hugging Face Hub model repo to upload to, ORG/NAME (created when new).")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
) -> None:
    """Upload a module to the Hugging Face Hub as `export` writes it (PEFT files and model card); needs network and a token."""
    with opened(registry, blobs) as hub:
        url = hub.publish(module_id, repo_id, private=private)
        render.console.print(f"published module {module_id} to {repo_id}: {url}")


@app.command()
def ensemble(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder of the new (target) task.")],
    base_model: BaseModelOption = None,
    method: MethodOption = "lora",
    method_option: MethodOptionsOption = None,
    strategy: Annotated[str, typer.Option("--strategy", "-s", help=STRATEGY_HELP)] = DEFAULT_STRATEGY,
    top_k: TopKOption = None,
    temperature: TemperatureOption = None,
    znorm: Annotated[bool | None, typer.Option("--znorm/--no-znorm", help="z-normalize scores before the softmax (default: the strategy's).")] = None,
    candidates: CandidatesOption = None,
    layers: LayersOption = None,
    shots: ShotsOption = None,
    score_examples: Annotated[
        int, typer.Option("--score-examples", callback=at_least(1), help="Most target examples scored (one dev batch; the paper: up to 50).")
    ] = 50,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps",
            callback=at_least(1),
            help="Step cap of every training on the target: auto's cross-validation, the reference θ_t (kl, weight-cos), each tuned source (euclidean, performance); the best dev checkpoint is kept.",
        ),
    ] = None,
    seed: SeedOption = 0,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")] = "cpu",
    skip_corrupt: Annotated[bool, typer.Option("--skip-corrupt", help="Ensemble without candidates whose blobs fail their digest check.")] = False,
    out: OutOption = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a bar chart of the weights (PNG).")] = None,
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score the registry's modules on a new task, compose the weighted init and register it."""
    refuse_used_folder(out)
    if plot is not None and not plot.parent.resolve().is_dir():
        fail(f"--plot {plot}: folder {plot.parent} does not exist")
    step_options = {} if steps is None else {"reference_steps": steps, "tune_steps": steps}
    method_options = parse_method_options(method_option)
    with opened(registry, blobs) as hub, render.scoring_progress(disable=as_json) as progress:
        # The init is built (and registered) for the k-shot sample when asked, as `train --shots` trains on it.
        target = dataset if shots is None else load_dataset(dataset).few_shot(shots, seed)
        result = hub.ensemble(
            target, base_model=base_model, method=method, method_options=method_options, strategy=strategy, top_k=top_k, temperature=temperature, znorm=znorm,
            candidates=candidates, layers=layers, score_examples=score_examples, seed=seed, device=device, skip_corrupt=skip_corrupt,
            progress=progress, **step_options,
        )  # fmt: skip
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
    method: MethodOption = "lora",
    method_option: MethodOptionsOption = None,
    init: Annotated[
        str, typer.Option("--init", help=f"{NO_TRANSFER} (the method's default init), a module id, or an ensembling strategy (see `adapters ensemble --help`).")
    ] = NO_TRANSFER,
    top_k: TopKOption = None,
    temperature: TemperatureOption = None,
    candidates: CandidatesOption = None,
    layers: LayersOption = None,
    shots: ShotsOption = None,
    epochs: Annotated[int, typer.Option("--epochs", callback=at_least(1), help="Most epochs; early stopping on dev accuracy may end sooner.")] = 10,
    max_steps: Annotated[int | None, typer.Option("--max-steps", callback=at_least(1), help="Stop after this many optimizer steps.")] = None,
    lr: Annotated[float, typer.Option("--lr", callback=positive, help="Learning rate (the paper: 5e-4).")] = 5e-4,
    batch_size: Annotated[int, typer.Option("--batch-size", callback=at_least(1), help="Examples per step (the paper: 8).")] = 8,
    patience: Annotated[int, typer.Option("--patience", callback=at_least(1), help="Dev evaluations without a better dev score before stopping.")] = 3,
    eval_every: Annotated[
        int | None, typer.Option("--eval-every", callback=at_least(1), help="Steps between dev evaluations (default: once an epoch).")
    ] = None,
    seed: SeedOption = 0,
    device: Annotated[str, typer.Option("--device", help="auto (a GPU when there is one), cpu or cuda.")] = AUTO_DEVICE,
    push_module: Annotated[bool, typer.Option("--push", help="Register the trained module with its metrics and its init's provenance.")] = False,
    out: OutOption = None,
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train a module for a task from an init (random, a registry module, or a strategy's ensemble)."""
    from hub.training import TrainConfig, resolve_device

    refuse_used_folder(out)
    method_options = parse_method_options(method_option)
    config = TrainConfig(
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        device=device,
        patience=patience,
        max_steps=max_steps,
        eval_every=eval_every,
        progress=not as_json,
    )
    with opened(registry, blobs) as hub:
        resolve_device(device)
        data = load_dataset(dataset)
        data.split("train")
        if shots is not None:
            data = data.few_shot(shots, seed)
        # A strategy that trains on the target (auto's cross-validation, θ_t, tuned sources) does so under the target's own step cap.
        budget = {} if max_steps is None else {"reference_steps": max_steps, "tune_steps": max_steps}
        module = hub.init_module(
            init, base_model, data, method=method, method_options=method_options, top_k=top_k, temperature=temperature, candidates=candidates, seed=seed,
            device=device, tuning=config, layers=layers, **budget,
        )  # fmt: skip
        decision = module.transfer.decision if module.transfer is not None else None
        if decision is not None and not as_json:
            render.console.print(f"{init}: {decision.reason}", highlight=False, soft_wrap=True)
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


@index_app.command("rebuild")
def index_rebuild(registry: RegistryOption = None, blobs: BlobsOption = None) -> None:
    """Rebuild every faiss index from the database."""
    with opened(registry, blobs) as hub:
        sizes = hub.rebuild_indexes()
        for name, size in sizes.items():
            render.console.print(f"{name}: {size} vectors")


@db_app.command("upgrade")
def db_upgrade(registry: RegistryOption = None, blobs: BlobsOption = None) -> None:
    """Create the registry's schema, or upgrade it to this deltahub's newest migration."""
    try:
        before, after = Hub.upgrade(registry, blobs)
    except USER_ERRORS as error:
        fail(str(error))
    render.console.print(f"registry schema: {before or 'empty'} -> {after}")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="A name for the token, e.g. the machine or person that will use it (unique).")],
    scope: Annotated[str, typer.Option("--scope", help="read, write (includes read) or admin (includes both).")] = "read",
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
) -> None:
    """Make an API token and print its secret, this once: the registry keeps only its hash."""
    with opened(registry, blobs) as hub:
        record, secret = hub.registry.tokens.create(name, scope)
    # The secret alone on the first line, so a script can take it with `head -1`.
    render.console.print(secret, markup=False, highlight=False, soft_wrap=True)
    render.console.print(
        f"created token {record.name!r} ({record.scope}); the secret above will not be shown again: keep it, e.g. export ADAPTERS_TOKEN=<secret> where the client runs",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@token_app.command("list")
def token_list(registry: RegistryOption = None, blobs: BlobsOption = None, as_json: JsonOption = False) -> None:
    """List the API tokens, revoked ones included (never their secrets)."""
    with opened(registry, blobs) as hub:
        records = hub.registry.tokens.list()
        if as_json:
            render.print_json([record.to_json() for record in records])
        else:
            render.console.print(render.tokens_table(records, title=f"{len(records)} tokens in {hub.registry.location.display} (times in UTC)"))


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="The token's name (`adapters token list` shows them).")],
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
) -> None:
    """Revoke an API token: it stops authenticating at once; its row stays in the list."""
    with opened(registry, blobs) as hub:
        record = hub.registry.tokens.revoke(name)
    render.console.print(f"revoked token {record.name!r} ({record.scope}); it no longer authenticates", markup=False, highlight=False, soft_wrap=True)


def _seconds(text: str) -> float:
    """'3600', '90s', '30m', '1h', '2d' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    scale = units.get(text[-1:])
    try:
        value = float(text[:-1] if scale else text) * (scale or 1)
    except ValueError:
        fail(f"--grace {text!r} is not a duration; use seconds or e.g. 30m, 1h, 2d")
    if value < 0:
        fail("--grace must not be negative")
    return value


@app.command()
def gc(
    grace: Annotated[str, typer.Option("--grace", help="Keep unreferenced blobs younger than this (a push in flight); e.g. 3600, 30m, 1h.")] = "1h",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed.")] = False,
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove blobs that no module references (older than the grace period) and dead temp files."""
    grace_s = _seconds(grace)
    with opened(registry, blobs) as hub:
        report = hub.gc(grace_s, dry_run=dry_run)
        if as_json:
            render.print_json(render.gc_json(report, dry_run))
        else:
            render.console.print(render.gc_summary(report, grace, dry_run))


@app.command()
def verify(
    repair: Annotated[bool, typer.Option("--repair", help="Rebuild the indexes; broken modules are reported, never deleted.")] = False,
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Re-hash every blob, check every row and index entry; exit code 0 only when the registry is healthy."""
    with opened(registry, blobs) as hub:
        report = hub.verify(repair=repair)
        if as_json:
            render.print_json(render.verify_json(report))
        else:
            for line in render.verify_lines(report):
                render.console.print(line, highlight=False, soft_wrap=True)
    if not report.healthy:
        raise typer.Exit(code=1)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on; 0.0.0.0 serves the whole network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8470,
    workers: Annotated[int, typer.Option("--workers", callback=at_least(1), help="Server processes.")] = 1,
    public_read: Annotated[bool, typer.Option("--public-read", help="Let anyone read (list, show, search, download) without a token.")] = False,
    max_upload: Annotated[str, typer.Option("--max-upload", help="Largest module upload, e.g. 2G, 500M; bigger ones are refused unread.")] = "2G",
    cors_origin: Annotated[list[str] | None, typer.Option("--cors-origin", help="Allow browser scripts from this origin (repeatable); off by default.")] = None,
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
) -> None:
    """Serve the registry over HTTP: clients use `--registry http://HOST:PORT` with ADAPTERS_TOKEN; a web page lists the modules."""
    import os

    import uvicorn

    from cli.server.app import SETTINGS_ENV, create_app, settings_env
    from cli.server.auth import ServerSettings

    settings = ServerSettings(registry, blobs, public_read, _bytes(max_upload), tuple(cors_origin or ()))
    try:
        application = create_app(settings)  # opens the registry: a bad one fails here, before the port opens
    except USER_ERRORS as error:
        fail(str(error))
    render.console.print(
        f"serving {application.state.service.display} on http://{host}:{port} ({'public reads' if public_read else 'every request needs a token'})",
        highlight=False,
    )
    if workers == 1:
        uvicorn.run(application, host=host, port=port, log_level="info")
        return
    application.state.service.close()
    os.environ[SETTINGS_ENV] = settings_env(settings)
    uvicorn.run("cli.server.app:app_from_env", factory=True, host=host, port=port, workers=workers, log_level="info")


def _bytes(text: str) -> int:
    """'2G', '500M', '1024' -> bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().removesuffix("b") or "x"
    scale = units.get(text[-1])
    try:
        value = int(float(text[:-1] if scale else text) * (scale or 1))
    except ValueError:
        fail(f"--max-upload {text!r} is not a size; use bytes or e.g. 500M, 2G")
    if value < 1:
        fail("--max-upload must be positive")
    return value
