"""The CLI's one-line errors: `fail`, and `opened`, which turns the registry's user errors into one.

ADAPTERS_DEBUG=1 prints the full traceback behind a one-line error (on stderr, before it).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer

from cli import render
from hub import USER_ERRORS, Hub, NeedsUpgrade, NotFound

DEBUG_ENV = "ADAPTERS_DEBUG"


def fail(message: str) -> NoReturn:
    """Print `error: MESSAGE` as one line and exit with code 1."""
    if os.environ.get(DEBUG_ENV, "") not in ("", "0") and sys.exc_info()[1] is not None:
        traceback.print_exc(file=sys.stderr)
    render.console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


@contextmanager
def opened(registry: str | None, blobs: str | None, create: bool = False) -> Iterator[Hub]:
    """Open the registry and turn user errors into one line and exit code 1.

    Only the verbs that add modules (push, pull, import) pass `create`: any other verb on a registry that
    does not exist (a mistyped path) says so, instead of making an empty one and answering from it.
    """
    try:
        with Hub(registry, blobs, create=create) as hub:
            yield hub
    except NotFound as error:
        fail(f"{error}; `adapters list` shows the ids")
    except NeedsUpgrade as error:
        fail(f"{error}: `adapters db upgrade`")
    except USER_ERRORS as error:
        fail(str(error))
    except KeyboardInterrupt:
        render.console.print("[yellow]interrupted; the registry is unchanged by the unfinished step[/]")
        raise typer.Exit(code=130) from None
