#!/usr/bin/env python3
"""Build the offline WordNet 3.0 task suite (deltahub dataset format).

Reads the WordNet 3.0 database files (data.noun, data.verb, data.adj,
data.adv) directly, with no dependency beyond the standard library, and
writes one directory per task (task.json, train/dev/test.jsonl) plus a
README.md and the WordNet license. The output is byte-identical for the
same input and --seed.

    python suites/build_wordnet.py --wordnet-dir /usr/share/wordnet \\
        --out suites/wordnet --seed 0

On Debian/Ubuntu the database comes with `apt-get install wordnet-base`.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from suites.common import N_CHOICES, TOTAL, YES_NO, SuiteText, Task, collect, multiple_choice, pick_distinct, sha256_of, task_rng, write_suite  # noqa: E402

POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
POS_NAMES = {"n": "noun", "v": "verb", "a": "adjective", "r": "adverb"}

# The Debian package does not ship the `lexnames` file; this is its content
# (lexnames(5WN)), indexed by the lex_filenum field of the data files.
LEXNAMES = [
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
]

SUPERSENSE_LABELS = {
    "noun.animal": "animal",
    "noun.plant": "plant",
    "noun.artifact": "man-made object",
    "noun.food": "food or drink",
    "noun.body": "body part",
    "noun.substance": "substance",
    "noun.person": "person",
    "noun.group": "group of people or things",
    "noun.location": "place or location",
    "noun.communication": "communication",
    "noun.act": "act or action",
    "noun.possession": "possession or money",
    "noun.cognition": "thought or knowledge",
    "noun.feeling": "feeling or emotion",
    "noun.attribute": "attribute or quality",
    "noun.state": "state or condition",
    "noun.relation": "relation",
    "noun.event": "event",
    "noun.phenomenon": "natural phenomenon",
    "noun.process": "natural process",
    "noun.time": "time",
    "noun.quantity": "quantity or unit of measure",
    "noun.shape": "shape",
    "verb.motion": "moving",
    "verb.contact": "touching or hitting",
    "verb.body": "bodily care",
    "verb.consumption": "eating or drinking",
    "verb.perception": "perceiving",
    "verb.communication": "communicating",
    "verb.cognition": "thinking",
    "verb.emotion": "feeling",
    "verb.social": "social activity",
    "verb.possession": "owning or transferring",
    "verb.change": "changing",
    "verb.creation": "creating",
    "verb.stative": "being or having",
    "verb.competition": "competing or fighting",
}
# hypernym, instance hypernym, antonym, similar-to
USED_POINTERS = frozenset({"@", "@i", "!", "&"})


class Pointer(NamedTuple):
    """One pointer of a synset; words are 1-based, 0 for a semantic pointer."""

    symbol: str
    target: tuple[str, int]
    source_word: int
    target_word: int


class Synset(NamedTuple):
    """One line of a data.* file."""

    pos: str
    offset: int
    lexname: str
    words: tuple[str, ...]
    pointers: tuple[Pointer, ...]
    definition: str
    examples: tuple[str, ...]

    @property
    def key(self) -> tuple[str, int]:
        return (self.pos, self.offset)


def clean_word(word: str) -> str:
    """Lemma as text: drop the adjective position marker, spaces for '_'."""
    if word.endswith(")"):
        word = word[: word.rindex("(")]
    return word.replace("_", " ")


def split_gloss(gloss: str) -> tuple[str, tuple[str, ...]]:
    """Split a gloss into its definition and its quoted example sentences."""
    quote = gloss.find('"')
    if quote < 0:
        return gloss.strip().rstrip(";").strip(), ()
    definition = gloss[:quote].strip().rstrip(";").strip()
    examples = tuple(e.strip() for e in re.findall(r'"([^"]+)"', gloss[quote:]))
    return definition, tuple(e for e in examples if e)


def parse_line(line: str, pos: str) -> Synset:
    """Parse one synset line (format: wndb(5WN))."""
    head, _, gloss = line.partition(" | ")
    f = head.split()
    n_words = int(f[3], 16)
    words = tuple(clean_word(f[4 + 2 * i]) for i in range(n_words))
    i = 4 + 2 * n_words
    n_pointers = int(f[i])
    pointers = []
    for j in range(n_pointers):
        symbol, offset, ppos, st = f[i + 1 + 4 * j : i + 5 + 4 * j]
        if symbol not in USED_POINTERS:  # the rest is 3/4 of the load time
            continue
        pointers.append(Pointer(symbol, ("a" if ppos == "s" else ppos, int(offset)), int(st[:2], 16), int(st[2:], 16)))
    definition, examples = split_gloss(gloss)
    return Synset(pos, int(f[0]), LEXNAMES[int(f[1])], words, tuple(pointers), definition, examples)


def load_wordnet(wordnet_dir: Path) -> dict[tuple[str, int], Synset]:
    """All synsets, keyed by (pos, offset); adjective satellites count as 'a'."""
    synsets = {}
    for pos, suffix in POS_FILES.items():
        with open(wordnet_dir / f"data.{suffix}", encoding="utf-8") as fh:
            for line in fh:
                if not line.startswith("  "):  # license header lines
                    s = parse_line(line.rstrip("\n"), pos)
                    synsets[s.key] = s
    return synsets


def read_license(wordnet_dir: Path) -> str:
    """The license text that heads every data file, without its line numbers."""
    lines = []
    with open(wordnet_dir / "data.noun", encoding="utf-8") as fh:
        for line in fh:
            if not line.startswith("  "):
                break
            lines.append(re.sub(r"^  \d+ ?", "", line.rstrip("\n")).rstrip())
    return "\n".join(lines).strip() + "\n"


class WordNet:
    """Synsets plus the few indexes the task builders share."""

    def __init__(self, synsets: dict[tuple[str, int], Synset]) -> None:
        self.synsets = synsets
        self.by_pos: dict[str, list[Synset]] = {p: [] for p in POS_FILES}
        self.by_lexname: dict[str, list[Synset]] = {}
        self.senses: dict[tuple[str, str], set[tuple[str, int]]] = {}
        self.hyponyms: dict[tuple[str, int], list[Synset]] = {}
        self.parents = {k: [synsets[p.target] for p in s.pointers if p.symbol in ("@", "@i")] for k, s in synsets.items()}
        for key in sorted(synsets):
            s = synsets[key]
            self.by_pos[s.pos].append(s)
            self.by_lexname.setdefault(s.lexname, []).append(s)
            for w in s.words:
                self.senses.setdefault((s.pos, w.lower()), set()).add(key)
            for h in self.hypernyms(s):
                self.hyponyms.setdefault(h.key, []).append(s)

    def hypernyms(self, s: Synset) -> list[Synset]:
        return self.parents[s.key]

    def ancestors(self, s: Synset, max_depth: int) -> dict[tuple[str, int], int]:
        """Hypernym closure up to max_depth, mapping each ancestor to its depth."""
        depth: dict[tuple[str, int], int] = {}
        frontier = [s]
        for d in range(1, max_depth + 1):
            frontier = [h for f in frontier for h in self.hypernyms(f) if h.key not in depth]
            for h in frontier:
                depth.setdefault(h.key, d)
        return depth

    def share(self, pos: str, a: str, b: str) -> bool:
        """Whether two words of a part of speech share a synset."""
        return bool(self.senses.get((pos, a.lower()), set()) & self.senses.get((pos, b.lower()), set()))


# ---------------------------------------------------------------- helpers


def good_text(text: str, min_words: int = 3, max_chars: int = 200) -> bool:
    return len(text.split()) >= min_words and len(text) <= max_chars


def blank(sentence: str, word: str) -> str | None:
    """The sentence with each whole-word occurrence of word as ___, or None."""
    low, target = sentence.lower(), word.lower()
    parts, start, pos = [], 0, low.find(target)
    while pos >= 0:
        end = pos + len(target)
        before = low[pos - 1] if pos else " "
        after = low[end] if end < len(low) else " "
        # "rock" must not match inside "rocks" or "rock-hard"
        if not (before.isalnum() or before in "'-" or after.isalnum() or after in "'-"):
            parts.append(sentence[start:pos])
            start = end
        pos = low.find(target, end)
    if not parts:
        return None
    return "___".join(parts + [sentence[start:]])


# The shipped suite was built deduplicating on the text alone (a pair's first word, a question without its choices);
# common.input_key would keep more examples and so change the suite.
def text_key(example: dict) -> str:
    return example["text"]


# ---------------------------------------------------------------- builders


def supersense(wn: WordNet, rng: random.Random, name: str, lexnames: list[str]) -> Task:
    """Gloss -> lexicographer file, with equal quotas per label."""
    labels = {ln: SUPERSENSE_LABELS[ln] for ln in lexnames}
    quota = -(-TOTAL // len(lexnames))
    seen: set[str] = set()
    per_label = []
    for ln in lexnames:
        pool = [s for s in wn.by_lexname[ln] if good_text(s.definition)]
        # a definition shared by two synsets must not land in two splits
        exs = collect(rng, pool, lambda s, i: None if s.definition in seen else {"text": s.definition, "label": s.lexname}, quota, key=text_key)
        seen.update(e["text"] for e in exs)
        per_label.append(exs)
    # round-robin over labels keeps every split (a contiguous slice) balanced
    examples = []
    for r in range(max(map(len, per_label))):
        block = [exs[r] for exs in per_label if r < len(exs)]
        rng.shuffle(block)
        examples += block
    pos = lexnames[0].split(".")[0]
    return Task(
        name,
        "supersense",
        "classification",
        f"Classify a WordNet {pos} gloss into its lexicographer file ({', '.join(labels.values())}).",
        labels,
        examples[:TOTAL],
    )


def definition(wn: WordNet, rng: random.Random, pos: str) -> Task:
    """Word -> its definition among same-lexname distractor definitions."""
    pos_name = POS_NAMES[pos]
    definitions = {ln: [s.definition for s in pool] for ln, pool in wn.by_lexname.items()}

    def make(s: Synset, i: int) -> dict | None:
        word = s.words[0]
        # another sense of the same word would also be a right answer
        own = {wn.synsets[k].definition for k in wn.senses[(pos, word.lower())]}
        picks = pick_distinct(rng, definitions[s.lexname], N_CHOICES - 1, lambda d: d not in own and good_text(d))
        if picks is None or not good_text(s.definition):
            return None
        return multiple_choice(rng, f'Which is the meaning of the {pos_name} "{word}"?', s.definition, picks, i)

    return Task(
        f"wn-definition-{POS_FILES[pos]}",
        "definition",
        "multiple_choice",
        f"Choose the WordNet definition of a {pos_name} among four glosses.",
        {},
        collect(rng, wn.by_pos[pos], make, TOTAL, key=text_key),
    )


def term(wn: WordNet, rng: random.Random, pos: str) -> Task:
    """Definition -> its word among words of the same lexicographer file."""
    pos_name = POS_NAMES[pos]
    heads = {ln: [s.words[0] for s in pool] for ln, pool in wn.by_lexname.items()}

    def make(s: Synset, i: int) -> dict | None:
        word = s.words[0]
        if not good_text(s.definition) or word.lower() in s.definition.lower():
            return None
        picks = pick_distinct(rng, heads[s.lexname], N_CHOICES - 1, lambda w: w.lower() != word.lower() and not any(wn.share(pos, w, x) for x in s.words))
        if picks is None:
            return None
        return multiple_choice(rng, f"Which {pos_name} means: {s.definition}?", word, picks, i)

    return Task(
        f"wn-term-{POS_FILES[pos]}",
        "definition",
        "multiple_choice",
        f"Choose the {pos_name} that a WordNet definition defines.",
        {},
        collect(rng, wn.by_pos[pos], make, TOTAL, key=text_key),
    )


def cloze(wn: WordNet, rng: random.Random, pos: str) -> Task:
    """Example sentence with the synset's word blanked -> the word."""
    pos_name = POS_NAMES[pos]
    found: list[tuple[Synset, str, str]] = []
    for s in wn.by_pos[pos]:
        for sentence in s.examples:
            for word in s.words:
                blanked = blank(sentence, word)
                if blanked is not None and good_text(blanked, 4, 160):
                    found.append((s, word, blanked))
                    break
            else:
                continue
            break
    vocab = sorted({w for _, w, _ in found})

    def make(item: tuple[Synset, str, str], i: int) -> dict | None:
        s, word, blanked = item
        picks = pick_distinct(rng, vocab, N_CHOICES - 1, lambda w: w.lower() != word.lower() and not wn.share(pos, w, word))
        if picks is None:
            return None
        return multiple_choice(rng, blanked, word, picks, i)

    return Task(
        f"wn-cloze-{POS_FILES[pos]}",
        "cloze",
        "multiple_choice",
        f"Fill the blank in a WordNet example sentence with the right {pos_name}.",
        {},
        collect(rng, found, make, TOTAL, key=text_key),
    )


def taxonomy(wn: WordNet, rng: random.Random, name: str, lexnames: list[str], what: str) -> Task:
    """'word: gloss' + candidate hypernym -> yes/no (half of each)."""
    region = [s for ln in lexnames for s in wn.by_lexname[ln]]
    with_parents = [s for s in region if wn.hypernyms(s) and good_text(s.definition)]

    def make(s: Synset, i: int) -> dict | None:
        ancestors = wn.ancestors(s, 20)
        near = sorted(k for k, d in ancestors.items() if d <= 3)
        taken = {w.lower() for k in ancestors for w in wn.synsets[k].words}
        taken |= {w.lower() for w in s.words}
        if i % 2 == 0:
            candidate = wn.synsets[near[rng.randrange(len(near))]].words[0]
            if candidate.lower() in {w.lower() for w in s.words}:
                return None
            label = "yes"
        else:
            other = with_parents[rng.randrange(len(with_parents))]
            parent = wn.hypernyms(other)[0]
            candidate = parent.words[0]
            if parent.key in ancestors or candidate.lower() in taken:
                return None
            label = "no"
        return {"text": f"{s.words[0]}: {s.definition}", "text_pair": candidate, "label": label}

    return Task(
        name,
        "taxonomy",
        "pair",
        f"Is the second word a hypernym (a more general term) of the first, for WordNet {what}?",
        YES_NO,
        collect(rng, with_parents, make, TOTAL, key=text_key),
    )


def antonym_pairs(wn: WordNet, pos: str) -> list[tuple[str, str]]:
    """Sorted unordered word pairs linked by a lexical antonym pointer."""
    pairs = set()
    for s in wn.by_pos[pos]:
        for p in s.pointers:
            if p.symbol == "!" and p.source_word and p.target_word:
                a = s.words[p.source_word - 1]
                b = wn.synsets[p.target].words[p.target_word - 1]
                if a.lower() != b.lower():
                    pairs.add(tuple(sorted((a, b))))
    return sorted(pairs)


def antonym(wn: WordNet, rng: random.Random, pos: str) -> Task:
    """Word -> its antonym among words that have antonyms themselves."""
    pos_name = POS_NAMES[pos]
    pairs = antonym_pairs(wn, pos)
    opposites: dict[str, set[str]] = {}
    for a, b in pairs:
        opposites.setdefault(a.lower(), set()).add(b.lower())
        opposites.setdefault(b.lower(), set()).add(a.lower())
    vocab = sorted({w for pair in pairs for w in pair})

    def make(pair: tuple[str, str], i: int) -> dict | None:
        a, b = pair if rng.random() < 0.5 else pair[::-1]
        picks = pick_distinct(
            rng,
            vocab,
            N_CHOICES - 1,
            lambda w: w.lower() not in opposites[a.lower()] and w.lower() != a.lower() and not wn.share(pos, w, a) and not wn.share(pos, w, b),
        )
        if picks is None:
            return None
        return multiple_choice(rng, f'Which {pos_name} is the opposite of "{a}"?', b, picks, i)

    return Task(
        f"wn-antonym-{POS_FILES[pos]}",
        "antonymy",
        "multiple_choice",
        f"Choose the antonym of a {pos_name} among four {pos_name}s.",
        {},
        collect(rng, pairs, make, TOTAL, key=text_key),
    )


def antonym_or_synonym(wn: WordNet, rng: random.Random) -> Task:
    """Adjective pair -> yes if antonyms, no if synonyms or similar."""
    pairs = antonym_pairs(wn, "a")

    def make(pair: tuple[str, str], i: int) -> dict | None:
        a, b = pair if rng.random() < 0.5 else pair[::-1]
        if i % 2 == 0:
            return {"text": a, "text_pair": b, "label": "yes"}
        # a near-synonym: another lemma of a's synset or of a similar (&) one
        near = []
        for key in sorted(wn.senses[("a", a.lower())]):
            s = wn.synsets[key]
            near += [w for w in s.words if w.lower() != a.lower()]
            near += [w for p in s.pointers if p.symbol == "&" for w in wn.synsets[p.target].words]
        near = sorted(w for w in set(near) if w.lower() not in (a.lower(), b.lower()))
        if not near:
            return None
        return {"text": a, "text_pair": near[rng.randrange(len(near))], "label": "no"}

    return Task(
        "wn-antonym-pair-adj",
        "antonymy",
        "pair",
        "Are two adjectives antonyms (yes) or near-synonyms (no)?",
        YES_NO,
        collect(rng, pairs, make, TOTAL, key=text_key),
    )


def synonym(wn: WordNet, rng: random.Random, pos: str) -> Task:
    """Word pair -> yes if they share a synset; negatives are close relatives."""
    pos_name = POS_NAMES[pos]
    multi = [s for s in wn.by_pos[pos] if len(s.words) >= 2]

    def make(s: Synset, i: int) -> dict | None:
        a, b = rng.sample(s.words, 2)
        if a.lower() == b.lower():
            return None
        if i % 2 == 0:
            return {"text": a, "text_pair": b, "label": "yes"}
        # sister synsets (same hypernym) make hard negatives; else same lexname
        sisters = [h for p in wn.hypernyms(s) for h in wn.hyponyms.get(p.key, []) if h is not s]
        pool = sisters or wn.by_lexname[s.lexname]
        other = pool[rng.randrange(len(pool))]
        c = other.words[rng.randrange(len(other.words))]
        if c.lower() == a.lower() or wn.share(pos, a, c):
            return None
        return {"text": a, "text_pair": c, "label": "no"}

    return Task(
        f"wn-synonym-{POS_FILES[pos]}",
        "synonymy",
        "pair",
        f"Do two {pos_name}s share a WordNet synset (are they synonyms)?",
        YES_NO,
        collect(rng, multi, make, TOTAL, key=text_key),
    )


# ---------------------------------------------------------------- the suite

SUPERSENSE_TASKS = {
    "wn-supersense-noun-a": ["noun.animal", "noun.plant", "noun.artifact", "noun.food", "noun.body", "noun.substance"],
    "wn-supersense-noun-b": ["noun.person", "noun.group", "noun.location", "noun.communication", "noun.act", "noun.possession"],
    "wn-supersense-noun-c": ["noun.cognition", "noun.feeling", "noun.attribute", "noun.state", "noun.relation"],
    "wn-supersense-noun-d": ["noun.event", "noun.phenomenon", "noun.process", "noun.time", "noun.quantity", "noun.shape"],
    "wn-supersense-verb-a": ["verb.motion", "verb.contact", "verb.body", "verb.consumption", "verb.perception"],
    "wn-supersense-verb-b": ["verb.communication", "verb.cognition", "verb.emotion", "verb.social", "verb.possession"],
    "wn-supersense-verb-c": ["verb.change", "verb.creation", "verb.stative", "verb.competition"],
}
TAXONOMY_TASKS = {
    "wn-isa-animal": (["noun.animal"], "animals"),
    "wn-isa-plant": (["noun.plant"], "plants"),
    "wn-isa-artifact": (["noun.artifact"], "artifacts"),
    "wn-isa-person": (["noun.person"], "people"),
    "wn-isa-abstract": (["noun.cognition", "noun.communication"], "cognition and communication nouns"),
    "wn-isa-verb": ([ln for ln in LEXNAMES if ln.startswith("verb.")], "verbs"),
}


def build_tasks(wn: WordNet, seed: int) -> list[Task]:
    """Every task of the suite; each has its own RNG so tasks are independent."""
    jobs: list[tuple[str, Callable[[random.Random], Task]]] = []
    for name, lexnames in SUPERSENSE_TASKS.items():
        jobs.append((name, lambda r, n=name, names=lexnames: supersense(wn, r, n, names)))
    for pos in "nvar":
        jobs.append((f"definition-{pos}", lambda r, p=pos: definition(wn, r, p)))
    for pos in "nva":
        jobs.append((f"term-{pos}", lambda r, p=pos: term(wn, r, p)))
    for pos in "nvar":
        jobs.append((f"cloze-{pos}", lambda r, p=pos: cloze(wn, r, p)))
    for name, (lexnames, what) in TAXONOMY_TASKS.items():
        jobs.append((name, lambda r, n=name, names=lexnames, w=what: taxonomy(wn, r, n, names, w)))
    for pos in "nvar":
        jobs.append((f"antonym-{pos}", lambda r, p=pos: antonym(wn, r, p)))
    jobs.append(("antonym-pair", lambda r: antonym_or_synonym(wn, r)))
    for pos in "nvar":
        jobs.append((f"synonym-{pos}", lambda r, p=pos: synonym(wn, r, p)))
    return [make(task_rng(seed, job)) for job, make in jobs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build the WordNet 3.0 task suite (supersense, definition, cloze, taxonomy, antonymy, synonymy tasks) in the deltahub dataset format."
    )
    parser.add_argument(
        "--wordnet-dir",
        type=Path,
        default=Path("/usr/share/wordnet"),
        help="directory with WordNet 3.0 data.noun, data.verb, data.adj, data.adv (Debian: apt-get install wordnet-base; default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=Path("suites/wordnet"), help="output directory, one sub-directory per task (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives byte-identical output (default: %(default)s)")
    args = parser.parse_args(argv)
    inputs = [args.wordnet_dir / f"data.{name}" for name in POS_FILES.values()]
    missing = [path.name for path in inputs if not path.is_file()]
    if missing:
        print(
            f"error: {args.wordnet_dir} lacks {', '.join(missing)}; pass --wordnet-dir or install WordNet 3.0 (apt-get install wordnet-base)", file=sys.stderr
        )
        return 2
    wn = WordNet(load_wordnet(args.wordnet_dir))
    tasks = build_tasks(wn, args.seed)
    digest = sha256_of("".join(f"{path.name}\t{sha256_of(path.read_bytes())}\n" for path in inputs).encode())
    text = SuiteText(
        title="WordNet 3.0 task suite",
        intro="built from the WordNet 3.0 database for task-transfer experiments",
        source=f"The WordNet 3.0 database files {', '.join(path.name for path in inputs)} (Debian: wordnet-base, in /usr/share/wordnet); "
        f"sha256 over the lines `name<TAB>sha256(file)`: `{digest}`.",
        regenerate=f"apt-get install wordnet-base\npython suites/build_wordnet.py --wordnet-dir /usr/share/wordnet --out suites/wordnet --seed {args.seed}",
        license="The texts (glosses, example sentences, words) come from WordNet 3.0, Copyright 2006 by Princeton University, and are "
        "distributed under the WordNet 3.0 license; see `LICENSE-WordNet` in this directory.",
    )
    write_suite(tasks, args.out, text, {"LICENSE-WordNet": read_license(args.wordnet_dir)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
