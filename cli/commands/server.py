"""The lab server: serve the registry over HTTP, and its API tokens (token create/list/revoke)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import render
from cli.errors import fail, opened
from cli.options import BlobsOption, JsonOption, RegistryOption, at_least
from hub import USER_ERRORS

app = typer.Typer()
token_app = typer.Typer(help="API tokens of the registry server (read, write or admin).", no_args_is_help=True)
app.add_typer(token_app, name="token")


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
