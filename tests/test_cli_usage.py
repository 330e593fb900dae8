"""The CLI as a person meets it: --version, help that reads at 80 columns, and bad usage as one line like any bad input."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
from helpers import adapters, cli, one_line_error, snapshot
from typer.main import get_command

from cli.main import app
from ensembling.strategies import DEFAULT

COMMANDS = sorted(
    [name] if not hasattr(command, "commands") else [name, sub]
    for name, command in get_command(app).commands.items()
    for sub in (getattr(command, "commands", None) or [None])
)


def test_version():
    result = cli("--version")
    assert result.exit_code == 0 and result.output.strip() == f"deltahub {version('deltahub')}"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_reads_at_80_columns(command: list[str]):
    result = _help(command)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "<bool>" not in result.output and "<list[" not in result.output


def _help(command: list[str]):
    from helpers import runner

    return runner.invoke(app, [*command, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})


def test_ensemble_help_lists_no_strategy_but_points_to_them():
    text = _help(["ensemble"]).output
    assert "`adapters strategies`" in text and "weight-cos" not in text
    assert len(text.splitlines()) <= 62  # 181 lines with every strategy's summary in --strategy's help
    assert DEFAULT in text and "[default:" not in text  # each default said once, in its option's help
    strategies = _help(["strategies"])
    assert strategies.exit_code == 0
    listed = cli("strategies")
    assert listed.exit_code == 0 and "weight-cos" in listed.output and "guarded" in listed.output
    assert "dare_ties_svd" in " ".join(listed.output.split())  # the operators --combine points to


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "abc"), "Invalid value for 'MODULE_ID': Input should be a valid integer, unable to parse string as an integer; see `"),
        (("rm", "1.5"), "Invalid value for 'MODULE_ID'"),
        (("export", "1"), "Missing argument 'OUT'; see `"),
        (("list", "--bogus"), "No such option: --bogus"),
        (("train", "{suite}/wn-isa-plant", "--epochs", "ten"), "Invalid value for '--epochs'"),
        (("index", "rebuild", "--nope"), "No such option: --nope"),
    ],
)
def test_bad_usage_is_one_line_exit_2_and_changes_nothing(tmp_path: Path, suite: Path, args: tuple[str, ...], message: str):
    registry = tmp_path / "registry"
    assert adapters(registry, "db", "upgrade").exit_code == 0
    before = snapshot(registry)
    result = adapters(registry, *(arg.format(suite=suite) for arg in args))
    assert message in one_line_error(result)
    assert result.exit_code == 2 and snapshot(registry) == before
