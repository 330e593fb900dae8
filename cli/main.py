"""`adapters`: the typer app, assembled from one file per command group (cli/commands/)."""

from __future__ import annotations

import typer

from cli.commands import hf, modules, registry, server, transfer

app = typer.Typer(help="deltahub: a registry of adapter modules and task-transfer initializations.", no_args_is_help=True, add_completion=False)
app.add_typer(modules.app)
app.add_typer(hf.app)
app.add_typer(transfer.app)
app.add_typer(registry.app)
app.add_typer(server.app)
