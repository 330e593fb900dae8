#!/usr/bin/env python3
"""Build the sentiment task suite from the VADER lexicon that the PyPI package vaderSentiment ships.

Each lexicon line is a token, its mean valence (-4 extremely negative .. +4 extremely
positive, the mean of ten human ratings), their standard deviation and the ratings. The
tasks ask for a word's polarity and intensity, compare two words, pick the most positive
or negative of four, and read emoticons.

    pip install vaderSentiment==3.3.2
    python suites/build_sentiment.py --out suites/sentiment --seed 0
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from suites.common import N_CHOICES, YES_NO, SuiteText, Task, balanced, collect, installed, multiple_choice, pick_distinct, sha256_of, task_rng, write_suite  # noqa: E402

PACKAGE, LEXICON = "vaderSentiment", "vaderSentiment/vader_lexicon.txt"
INTENSITY = {"strongly negative": (-4.0, -2.0), "mildly negative": (-2.0, -0.5), "mildly positive": (0.5, 2.0), "strongly positive": (2.0, 4.01)}


class Entry(NamedTuple):
    token: str
    valence: float
    spread: float  # standard deviation of the ten ratings


def parse_lexicon(text: str) -> list[Entry]:
    """One entry a line: token, mean valence, standard deviation, ratings (tab-separated)."""
    entries = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 3:
            entries.append(Entry(fields[0], float(fields[1]), float(fields[2])))
    return entries


def is_word(token: str) -> bool:
    return token.isalpha() and token.islower() and len(token) >= 3


def polarity(rng: random.Random, words: list[Entry]) -> Task:
    by_label = {
        "negative": [e.token for e in words if e.valence <= -1.0],
        "positive": [e.token for e in words if e.valence >= 1.0],
    }
    return Task(
        "senti-polarity", "sentiment", "classification", "Is a word's sentiment positive or negative (VADER valence at least 1 away from neutral)?",
        {"negative": "negative", "positive": "positive"}, balanced(rng, by_label),
    )  # fmt: skip


def intensity(rng: random.Random, words: list[Entry]) -> Task:
    by_label = {label: [e.token for e in words if low <= e.valence < high] for label, (low, high) in INTENSITY.items()}
    return Task(
        "senti-intensity", "sentiment", "classification", "How strongly positive or negative is a word (four VADER valence bands)?",
        {label: label for label in INTENSITY}, balanced(rng, by_label),
    )  # fmt: skip


def compare(rng: random.Random, words: list[Entry]) -> Task:
    """Pair: is the first word more positive than the second? Pairs differ by at least 2 points of valence."""

    def make(entry: Entry, index: int) -> dict | None:
        want_yes = index % 2 == 0
        picks = pick_distinct(rng, words, 1, lambda other: abs(other.valence - entry.valence) >= 2.0)
        if picks is None:
            return None
        other = picks[0]
        first, second = (entry, other) if (entry.valence > other.valence) == want_yes else (other, entry)
        return {"text": first.token, "text_pair": second.token, "label": "yes" if want_yes else "no"}

    return Task(
        "senti-compare", "sentiment", "pair", "Is the first word more positive than the second (VADER valences at least 2 apart)?",
        YES_NO, collect(rng, words, make),
    )  # fmt: skip


def extreme(rng: random.Random, words: list[Entry], sign: int) -> Task:
    """Which of four words is the most positive (sign +1) or negative (-1): the answer beats every distractor by 1.5."""
    which = "positive" if sign > 0 else "negative"
    strong = [e for e in words if sign * e.valence >= 2.0]

    def make(entry: Entry, index: int) -> dict | None:
        picks = pick_distinct(rng, words, N_CHOICES - 1, lambda other: sign * (entry.valence - other.valence) >= 1.5)
        if picks is None:
            return None
        return multiple_choice(rng, f"Which word is the most {which}?", entry.token, [p.token for p in picks], index)

    return Task(
        f"senti-most-{which}", "sentiment", "multiple_choice", f"Choose the most {which} of four words (VADER valence).",
        {}, collect(rng, strong, make),
    )  # fmt: skip


def emoticon(rng: random.Random, entries: list[Entry]) -> Task:
    """Emoticons and other non-word tokens (":-)", "</3", "xd") by polarity."""
    marks = [e for e in entries if not e.token.isalpha() or (e.token.isalpha() and not e.token.islower())]
    by_label = {
        "negative": [e.token for e in marks if e.valence <= -0.5],
        "positive": [e.token for e in marks if e.valence >= 0.5],
    }
    return Task(
        "senti-emoticon", "sentiment", "classification", "Does an emoticon express a positive or a negative feeling (VADER valence)?",
        {"negative": "negative", "positive": "positive"}, balanced(rng, by_label),
    )  # fmt: skip


def agreement(rng: random.Random, words: list[Entry]) -> Task:
    """Yes/no: did the ten raters agree on the word's valence (spread at most 0.6) or disagree (at least 1.3)?"""
    by_label = {"yes": [e.token for e in words if e.spread <= 0.6], "no": [e.token for e in words if e.spread >= 1.3]}
    return Task(
        "senti-agreement", "sentiment", "classification", "Did human raters agree on how positive or negative a word is (VADER rating spread)?",
        YES_NO, balanced(rng, by_label),
    )  # fmt: skip


def build_tasks(entries: list[Entry], seed: int) -> list[Task]:
    words = [e for e in entries if is_word(e.token)]
    polar = [e for e in words if abs(e.valence) >= 0.5]
    builders = {
        "senti-polarity": lambda r: polarity(r, words),
        "senti-intensity": lambda r: intensity(r, words),
        "senti-compare": lambda r: compare(r, polar),
        "senti-most-positive": lambda r: extreme(r, words, +1),
        "senti-most-negative": lambda r: extreme(r, words, -1),
        "senti-emoticon": lambda r: emoticon(r, entries),
        "senti-agreement": lambda r: agreement(r, words),
    }
    return [make(task_rng(seed, name)) for name, make in builders.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the VADER sentiment task suite in the deltahub dataset format.")
    parser.add_argument("--out", type=Path, default=Path("suites/sentiment"), help="output directory (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives byte-identical output (default: %(default)s)")
    args = parser.parse_args(argv)
    dist = installed(PACKAGE, "pip install vaderSentiment==3.3.2")
    data = Path(dist.locate_file(LEXICON)).read_bytes()
    text = SuiteText(
        title="VADER sentiment task suite",
        intro="built from the VADER sentiment lexicon (words, emoticons and slang rated by ten people from -4 to +4)",
        source=f"`{LEXICON}` of the PyPI package {PACKAGE} {dist.version} (sha256 of the file: `{sha256_of(data)}`).",
        regenerate=f"pip install {PACKAGE}=={dist.version}\npython suites/build_sentiment.py --out suites/sentiment --seed {args.seed}",
        license="The VADER lexicon is Copyright (c) 2016 C.J. Hutto and distributed under the MIT License; see `LICENSE-vaderSentiment` (the package's own licence file).",
    )
    tasks = build_tasks(parse_lexicon(data.decode("utf-8")), args.seed)
    write_suite(tasks, args.out, text, {"LICENSE-vaderSentiment": dist.read_text("LICENSE.txt") or ""})
    return 0


if __name__ == "__main__":
    sys.exit(main())
