"""MkDocs build hooks: what the site takes from the repository at build time instead of copies kept by hand.

- the benchmarks' reports and plots (benchmarks/results/*/), served under the same paths;
- the lab server's OpenAPI schema, written from the FastAPI app itself (openapi.json);
- the command line reference, written by Typer's own docs generator from the `adapters` app (cli.md);
- the table of strategies, read from the strategy registry (strategies.md);
- the table of the HTTP API's endpoints, read from the same OpenAPI schema (lab.md).
"""

from __future__ import annotations

import functools
import json
import re
import tempfile
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CLI_MARKER = "<!-- adapters reference -->"
STRATEGY_MARKER = "<!-- strategy table -->"
HTTP_MARKER = "<!-- http api table -->"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for path in sorted(RESULTS.rglob("*")):
        if path.suffix in (".md", ".png"):
            files.append(File.generated(config, path.relative_to(ROOT).as_posix(), abs_src_path=str(path)))
    files.append(File.generated(config, "openapi.json", content=json.dumps(openapi_schema(), indent=2)))
    return files


@functools.cache
def openapi_schema() -> dict:
    """The schema `adapters serve` serves at /openapi.json, from an app over a throwaway empty registry."""
    from cli.server.app import create_app
    from cli.server.auth import ServerSettings
    from hub import Hub

    with tempfile.TemporaryDirectory() as folder:
        Hub.upgrade(Path(folder) / "registry")  # a server fronts a registry that exists
        app = create_app(ServerSettings(registry=str(Path(folder) / "registry"), blobs=None))
        try:
            return app.openapi()
        finally:
            app.state.service.close()


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if STRATEGY_MARKER in markdown:
        markdown = markdown.replace(STRATEGY_MARKER, strategy_table())
    if HTTP_MARKER in markdown:
        markdown = markdown.replace(HTTP_MARKER, endpoint_table())
    return markdown


def cli_reference() -> str:
    """What `typer cli.main utils docs --name adapters` prints, its headings one level down under the page's title."""
    import typer
    from typer.cli import get_docs_for_click

    from cli.main import app

    command = typer.main.get_command(app)
    with typer.Context(command) as context:
        text = get_docs_for_click(obj=command, ctx=context, name="adapters")
    return re.sub(r"^(#+) ", r"#\1 ", text, flags=re.MULTILINE)


def strategy_table() -> str:
    """Every registered strategy as `adapters ensemble --strategy` takes it, with what it declares about itself."""
    from ensembling.strategies import STRATEGIES
    from ensembling.strategies.base import Composition

    rows = ["| strategy | family | composes | reads | τ | what it does |", "| --- | --- | --- | --- | ---: | --- |"]
    for name, strategy in STRATEGIES.items():
        written = f"{name}:<{strategy.parameter}>" if strategy.parameter else name
        optional = [f"{need.value} (when present)" for need in sorted(strategy.optional_needs, key=lambda need: need.value)]
        reads = ", ".join(sorted(need.value for need in strategy.needs) + optional) or "nothing"
        temperature = f"{strategy.temperature:g}" if strategy.composition is Composition.SCORED else "–"
        rows.append(f"| `{written}` | {strategy.family.value} | {strategy.composition.value} | {reads} | {temperature} | {strategy.summary} |")
    return "\n".join(rows)


def endpoint_table() -> str:
    """The JSON API's endpoints (the web pages aside), each with its summary."""
    rows = ["| method | path | what it does |", "| --- | --- | --- |"]
    for path, operations in openapi_schema()["paths"].items():
        if path.startswith("/api/"):
            rows += [f"| `{method.upper()}` | `{path}` | {operation.get('summary', '')} |" for method, operation in operations.items()]
    return "\n".join(rows)
