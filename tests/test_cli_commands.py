"""The CLI's assembly: every command group is reachable, `ensemble` and `train` take one set of transfer
options, and ADAPTERS_DEBUG=1 shows the traceback behind a one-line error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from helpers import adapters, one_line_error, runner

from cli.main import app

COMMAND = typer.main.get_command(app)
# What each takes that the other does not: the init's name is --strategy for one and --init (which also takes
# a module id or the default init) for the other; --plot draws the weights; the rest of train's configure the training.
ONLY_ENSEMBLE = {"dataset", "strategy", "plot"}


def options(name: str) -> dict[str, Any]:
    return {param.name: param for param in COMMAND.commands[name].params}


def test_every_verb_is_assembled_into_the_app() -> None:
    verbs = {name for name, command in COMMAND.commands.items() if not hasattr(command, "commands")}
    groups = {name: set(command.commands) for name, command in COMMAND.commands.items() if hasattr(command, "commands")}
    assert verbs == {"push", "import", "pull", "search", "list", "show", "rm", "export", "publish", "strategies", "ensemble", "train", "gc", "verify", "serve"}
    assert groups == {"index": {"rebuild"}, "db": {"upgrade"}, "blobs": {"copy"}, "token": {"create", "list", "revoke"}}


def test_train_takes_every_transfer_option_of_ensemble_with_the_same_default_and_help() -> None:
    ensemble, train = options("ensemble"), options("train")
    shared = set(ensemble) - ONLY_ENSEMBLE
    assert shared - set(train) == set(), "train lacks options ensemble has"
    for name in sorted(shared):
        left, right = ensemble[name], train[name]
        assert (left.opts, left.default, getattr(left, "help", None)) == (right.opts, right.default, getattr(right, "help", None)), name


def test_adapters_debug_shows_the_traceback_behind_the_one_line_error(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    assert adapters(registry, "db", "upgrade").exit_code == 0
    quiet = one_line_error(adapters(registry, "show", "999"))
    assert "Traceback" not in quiet
    loud = runner.invoke(app, ["show", "999", "--registry", str(registry)], env={"ADAPTERS_DEBUG": "1"})
    assert loud.exit_code == 1
    assert "Traceback (most recent call last)" in loud.stderr
    assert "NotFound" in loud.stderr
    assert loud.stdout.strip() == quiet
