"""Hugging Face Hub verbs: pull an adapter repo into the registry, publish a module to the Hub."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import render
from cli.errors import opened
from cli.options import BlobsOption, JsonOption, PushBaseModelOption, RegistryOption, TagOption

app = typer.Typer()


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
    with opened(registry, blobs, create=True) as hub:
        record = hub.pull(repo, task=task, category=category, base_model=base_model, tags=tag or ())
        if as_json:
            render.print_json(record.to_json())
        else:
            render.console.print(
                f"pulled {record.source} as module [bold]{record.id}[/] ({record.method}, task {record.task}, {record.num_params:,} parameters)"
            )


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
