"""The tree's structure, checked from its source: imports run `cli -> hub -> {ensembling, store}`, no module
import cycles, and no strategy is named outside `ensembling/strategies` (the strategies describe themselves)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ensembling.strategies import SHUFFLED, STRATEGIES

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cli", "hub", "ensembling", "store")
# What each layer may import from the others (its own package is always allowed).
ALLOWED = {"cli": {"hub"}, "hub": {"ensembling", "store"}, "ensembling": set(), "store": {"migrations"}}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules imported anywhere in the file (functions and TYPE_CHECKING blocks included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import sub` imports the submodule when there is one, else a name of pkg.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known and "." in target:
                target = target.rpartition(".")[0]
            if target.split(".")[0] in PACKAGES + ("migrations",):
                found.add(target)
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, name, set(modules)) for name, path in modules.items()}


def test_imports_run_one_way():
    wrong = [
        f"{source} imports {target}"
        for source, targets in import_graph().items()
        for target in targets
        if target.split(".")[0] != source.split(".")[0] and target.split(".")[0] not in ALLOWED[source.split(".")[0]]
    ]
    assert wrong == [], "imports against cli -> hub -> {ensembling, store}: " + "; ".join(sorted(wrong))


def test_no_import_cycles_between_modules():
    graph = import_graph()
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            # A package's __init__ that imports its own submodules is how Python packages work, not a cycle of design.
            if target.startswith(node + "."):
                continue
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target) :] + [target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == [], "import cycles: " + "; ".join(cycles)


# Words that are also strategies' names, used for something else: the training loss in a history row,
# the device choice (defined once, in hub/devices.py), matplotlib's aspect, the lab pool's junk kind (labels shuffled).
NOT_A_STRATEGY = {
    ("hub/training.py", "loss"),
    ("hub/devices.py", "auto"),
    ("benchmarks/transferbench/report.py", "auto"),
    ("benchmarks/lab_pool.py", "shuffled"),
    ("benchmarks/transferbench/pool.py", "shuffled"),
}


@pytest.mark.parametrize("folder", ["cli", "hub", "store", "benchmarks", "examples"])
def test_no_strategy_is_named_outside_its_package(folder):
    names = set(STRATEGIES)
    spelled = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        relative = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                value = node.value
                if (value in names or value.startswith(f"{SHUFFLED}:")) and (relative, value) not in NOT_A_STRATEGY:
                    spelled.append(f"{relative}:{node.lineno} {value!r}")
    assert spelled == [], "strategy names spelled outside ensembling/strategies (read them from the registry): " + ", ".join(spelled)


def test_the_cli_and_the_verbs_that_touch_no_model_import_no_model_library(tmp_path):
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from cli.main import app\n"
        f"registry = {str(tmp_path / 'registry')!r}\n"
        "for verb in (['--help'], ['list'], ['show', '1'], ['rm', '1'], ['verify'], ['gc', '--dry-run'], ['db', 'upgrade'], ['index', 'rebuild']):\n"
        "    CliRunner().invoke(app, verb if verb == ['--help'] else verb + ['--registry', registry])\n"
        # boto3 too: it is for blobs in a bucket only, and costs ~0.7 s to import and set up.
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'sentence_transformers', 'accelerate', 'boto3') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip().splitlines()[-1]
    assert out == "[]"
