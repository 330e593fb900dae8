"""Module verbs: push, import, list, show, rm, export (the registry's modules, one or many)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from cli import render
from cli.errors import fail, opened
from cli.options import (
    BaseModelFilter,
    BlobsOption,
    CategoryFilter,
    DatasetOption,
    JsonOption,
    MethodFilter,
    PushBaseModelOption,
    RegistryOption,
    TagOption,
)

app = typer.Typer()


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
    with opened(registry, blobs, create=True) as hub:
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
    task: Annotated[
        str | None, typer.Option("--task", help="Without --dataset: the task of every module (default: each card's, else a cache repo's name).")
    ] = None,
    category: Annotated[str | None, typer.Option("--category", help="Without --dataset: the category of every module (default: each card's).")] = None,
    base_model: PushBaseModelOption = None,
    tag: TagOption = None,
    registry: RegistryOption = None,
    blobs: BlobsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Push every module folder under PATHS (or every adapter repo of the Hugging Face cache): each described by its model card, or all by one --dataset.

    A cache repo records its repo id and commit sha as the module's source. A folder whose weights are registered already is reported as already there; one that cannot be pushed is
    refused with its reason and the others go on; a cache repo the cache scan finds corrupted is skipped, with the scan's reason. Exit code 1 when any folder was refused.
    """
    if bool(paths) == hf_cache:
        fail("pass the folders to import or --hf-cache, not both or neither")
    options = {"dataset": dataset, "task": task, "category": category, "base_model": base_model, "tags": tag or ()}
    with opened(registry, blobs, create=True) as hub, render.counted_progress("importing", disable=as_json) as progress:
        outcomes = hub.import_hf_cache(progress=progress, **options) if hf_cache else hub.import_folders(paths, progress=progress, **options)
    if as_json:
        render.print_json(render.import_json(outcomes))
    else:
        render.console.print(render.import_table(outcomes))
        for line in render.import_refusals(outcomes):
            render.console.print(line, highlight=False, soft_wrap=True)
    if any(outcome.status == "refused" for outcome in outcomes):
        raise typer.Exit(code=1)


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
