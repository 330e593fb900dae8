"""`adapters`: the typer app, assembled from one file per command group (cli/commands/)."""

from __future__ import annotations

import sys
from importlib.metadata import version
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from cli import render
from cli.commands import hf, modules, registry, server, transfer


class Adapters(TyperGroup):
    """The command group: every verb's bad usage is the one-line error of every other bad input, and its help shows
    placeholders a person reads (none for a flag, the element for a repeatable option, NAME for an argument) and
    paragraphs wrapped to the terminal."""

    def get_command(self, ctx: typer.Context, cmd_name: str) -> typer.core.TyperCommand | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _readable(command, ctx)
        return command

    def get_params(self, ctx: typer.Context) -> list[TyperArgument | TyperOption]:
        return _plain_placeholders(super().get_params(ctx), ctx)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.TyperException as error:
            # Typer's own test, which spares importing its private class: that error printed the help already.
            if type(error).__name__ != "NoArgsIsHelpError":
                ctx = getattr(error, "ctx", None)
                where = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
                render.console.print(f"[bold red]error:[/] {' '.join(error.format_message().split()).rstrip('.')}{where}", highlight=False, soft_wrap=True)
            sys.exit(error.exit_code)
        except typer.Abort:
            render.console.print("[yellow]aborted[/]")
            sys.exit(1)
        # Without standalone mode click hands back an exit code (typer.Exit) or the command's own return value.
        sys.exit(code if isinstance(code, int) else 0)


def _readable(command: typer.core.TyperCommand | TyperGroup, ctx: typer.Context) -> None:
    """Plain placeholders and reflowed paragraphs for a command, and for each command of a group (db, index, token, …)."""
    _plain_placeholders(command.get_params(ctx), ctx)
    if command.help:
        # A docstring's lines are broken for the source's width; the terminal's is another: one line per paragraph.
        command.help = "\n\n".join(" ".join(paragraph.split()) for paragraph in command.help.split("\n\n"))
    for sub in getattr(command, "commands", {}).values():
        _readable(sub, ctx)


def _plain_placeholders(params: list[TyperArgument | TyperOption], ctx: typer.Context) -> list[TyperArgument | TyperOption]:
    for param in params:
        if isinstance(param, TyperArgument):
            param.metavar = param.name.upper()  # typer adds "..." to one that takes several
            if param.nargs != 1:
                # Typer shows an argument's type apart from its metavar: <list[Path]> reads better as <Path>.
                label = _element(param.display_type(ctx))
                param.display_type_rich = lambda ctx, label=label: label  # noqa: ARG005 (typer passes ctx=)
        elif isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""
        elif isinstance(param, TyperOption) and param.multiple:
            param.metavar = _element(param.display_type(ctx))
    return params


def _element(label: str) -> str:
    """<list[str]> -> <str>: a repeatable option or argument shows what one value is."""
    return label.replace("<list[", "<").replace("]>", ">")


def _print_version(value: bool) -> None:
    if value:
        render.console.print(f"deltahub {version('deltahub')}", highlight=False)
        raise typer.Exit()


app = typer.Typer(cls=Adapters, no_args_is_help=True, add_completion=False)


@app.callback()
def adapters(
    show_version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print deltahub's version and exit.")] = False,
) -> None:
    """deltahub: a registry of adapter modules and task-transfer initializations."""


app.add_typer(modules.app)
app.add_typer(hf.app)
app.add_typer(transfer.app)
app.add_typer(registry.app)
app.add_typer(server.app)
