"""Every code example of the documentation runs: the ```python and ```bash blocks of README.md and docs/*.md.

Each page is one session, its blocks run in order (tests/docs_session.py) in a scratch folder that holds
the shipped suites cut down to a few examples per label (at the same paths, `suites/NAME/TASK`) and a small
registry of three briefly trained MiniLM LoRA modules (ids 1-3), named by ADAPTERS_REGISTRY. Blocks with any
other info string (```console for a command shown with its output, ```text, ```yaml, ```json) are
illustrations and are not run; the docs use them for what cannot run here (a server left running, the
network, a PostgreSQL URL, hour-long jobs).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUN = ("python", "bash")
SHOWN = ("console", "text", "yaml", "json")
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.MULTILINE | re.DOTALL)
# Examples per label kept from each split: enough for a 4-shot sample (4 train + 4 dev drawn from train).
PER_LABEL = {"train": 8, "dev": 2, "test": 2}
SOURCES = ("wn-supersense-noun-a", "wn-antonym-noun", "wn-isa-animal")


def code_blocks(page: Path) -> list[dict[str, str]]:
    """The blocks of a page that run, in order, with where each starts (page:line)."""
    return blocks_in(page.read_text(encoding="utf-8"), str(page.relative_to(ROOT)))


def blocks_in(text: str, name: str) -> list[dict[str, str]]:
    blocks = []
    for match in FENCE.finditer(text):
        lang = match["info"].strip().split(" ")[0]
        if lang in RUN:
            indent = len(match["indent"])
            code = "\n".join(line[indent:] for line in match["code"].splitlines())
            line = text.count("\n", 0, match.start()) + 1
            blocks.append({"lang": lang, "code": code, "where": f"{name}:{line}"})
    return blocks


def slice_suites(out: Path) -> None:
    """Every shipped task, each split cut to its first few examples per label."""
    for card in sorted(ROOT.glob("suites/*/*/task.json")):
        task = out / card.parent.relative_to(ROOT)
        task.mkdir(parents=True)
        shutil.copy(card, task / "task.json")
        for split, keep in PER_LABEL.items():
            source = card.parent / f"{split}.jsonl"
            if not source.exists():
                continue
            seen: dict[str, int] = {}
            lines = []
            for line in source.read_text(encoding="utf-8").splitlines():
                label = json.dumps(json.loads(line)["label"])
                if seen.get(label, 0) < keep:
                    seen[label] = seen.get(label, 0) + 1
                    lines.append(line)
            (task / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def environment(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        ADAPTERS_REGISTRY=str(work / "registry"),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        COLUMNS="100",
    )
    return env


@pytest.fixture(scope="session")
def docs_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scratch folder every page starts from: the cut-down suites and the small registry."""
    base = tmp_path_factory.mktemp("docs-base")
    slice_suites(base)
    build = f"""
from hub import Hub
from hub.training import TrainConfig
with Hub() as hub:
    for seed, task in enumerate({SOURCES!r}):
        module = hub.new_module("minilm", "lora", {{"r": 4}}, seed=seed)
        hub.train(module, "suites/wordnet/" + task, TrainConfig(epochs=1, max_steps=2, batch_size=4, seed=seed, progress=False), push=True)
"""
    subprocess.run([sys.executable, "-c", build], cwd=base, env=environment(base), check=True, timeout=600)
    return base


def test_every_block_says_what_it_is():
    """A fence without an info string, or with one the docs do not use, would be silently left unrun."""
    unlabeled = [
        f"{page.relative_to(ROOT)}:{page.read_text(encoding='utf-8').count(chr(10), 0, match.start()) + 1}"
        for page in PAGES
        for match in FENCE.finditer(page.read_text(encoding="utf-8"))
        if match["info"].strip().split(" ")[0] not in RUN + SHOWN
    ]
    assert not unlabeled, f"code blocks without a known info string ({', '.join(RUN + SHOWN)}): {unlabeled}"


def test_blocks_are_collected_in_order_inside_admonitions_too():
    text = "```console\n$ make demo\n```\n\n!!! note\n    ```bash\n    adapters list\n    adapters show 1\n    ```\n\n```python\nprint(1)\n```\n"
    assert blocks_in(text, "page.md") == [
        {"lang": "bash", "code": "adapters list\nadapters show 1", "where": "page.md:6"},
        {"lang": "python", "code": "print(1)", "where": "page.md:11"},
    ]


@pytest.mark.parametrize("page", [page for page in PAGES if code_blocks(page)], ids=lambda page: str(page.relative_to(ROOT)))
def test_page_examples_run(page: Path, docs_base: Path, tmp_path: Path):
    work = tmp_path / "work"
    shutil.copytree(docs_base, work)
    blocks = tmp_path / "blocks.json"
    blocks.write_text(json.dumps(code_blocks(page)), encoding="utf-8")
    session = [sys.executable, str(ROOT / "tests" / "docs_session.py"), str(blocks)]
    done = subprocess.run(session, cwd=work, env=environment(work), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-6000:]


def test_nothing_points_to_design_notes_outside_the_repository():
    """The design is docs/concepts.md; a pointer to a file outside the repository leaves a reader nowhere."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True).stdout.split()
    pointers = [
        name
        for name in tracked
        if name.endswith((".py", ".md", ".toml", ".yml", ".cfg", ".txt")) and name != "tests/test_docs.py"
        for text in [(ROOT / name).read_text(encoding="utf-8", errors="replace")]
        if "DESIGN.md" in text or "../shared/" in text
    ]
    assert not pointers, f"files pointing to design notes outside the repository: {pointers}"


def test_every_public_hub_method_names_its_arguments_and_what_it_writes():
    """The Python API's reference is its docstrings: each public method names every argument (or the method whose
    arguments it shares) and says what it writes, "Writes nothing" included."""
    from hub.api import Hub

    for name, member in vars(Hub).items():
        if name.startswith("_"):
            continue
        function = member.__func__ if isinstance(member, staticmethod) else getattr(member, "fget", getattr(member, "func", member))
        doc = inspect.getdoc(function) or ""
        assert doc, f"Hub.{name} has no docstring"
        if not isinstance(member, (property, functools.cached_property)):
            shared = re.search(r"[Aa]rguments as `", doc) is not None
            unnamed = [arg for arg in inspect.signature(function).parameters if arg != "self" and not re.search(rf"\b{arg}\b", doc)]
            assert shared or not unnamed, f"Hub.{name}'s docstring does not name {unnamed}"
            assert re.search(r"\bwrit|\bWrites\b", doc), f"Hub.{name}'s docstring does not say what it writes"
