#!/usr/bin/env python3
"""Build the manual-pages task suite from the Linux man-pages that Debian's manpages and manpages-dev ship.

Reads the NAME line ("open, openat, creat \\- open and possibly create a file") and the
SYNOPSIS's `#include`s of every page the two packages installed (their dpkg file lists),
and asks which section a page belongs to, which function a description describes and the
other way round, which header declares a function, and whether two names share a page.

    apt-get install manpages=6.03-2 manpages-dev=6.03-2
    python suites/build_manpages.py --out suites/manpages --seed 0
"""

from __future__ import annotations

import argparse
import gzip
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from suites.common import N_CHOICES, YES_NO, SuiteText, Task, balanced, collect, multiple_choice, pick_distinct, sha256_of, task_rng, write_suite  # noqa: E402

PACKAGES = ("manpages", "manpages-dev")
KINDS = {"2": "system call", "3": "library function", "4": "device or file format", "5": "device or file format", "7": "overview or convention"}
HEADERS = ("unistd.h", "math.h", "stdlib.h", "wchar.h", "stdio.h", "pthread.h", "sys/socket.h", "string.h")
MAX_DESCRIPTION = 160  # characters; a longer NAME line is not a one-line description
PAGE_PATH = re.compile(r"/man(\d)/[^/]+\.\d\.gz$")


class Page(NamedTuple):
    section: str
    names: tuple[str, ...]
    description: str
    headers: tuple[str, ...]  # the SYNOPSIS's #include <...>, in order


def roff_text(text: str) -> str:
    """Plain text of a roff line: escapes (\\- \\fB \\(aq …) resolved or dropped, spaces collapsed."""
    text = text.replace("\\-", "-").replace("\\(aq", "'").replace("\\(dq", '"').replace("\\e", "\\")
    text = re.sub(r"\\f[BIRP]|\\f\(..|\\&|\\%|\\:", "", text)
    text = re.sub(r"\\\(..|\\.", "", text)
    return " ".join(text.split())


def parse_page(section: str, text: str) -> Page | None:
    """The page's NAME line and SYNOPSIS includes; None for a link page (.so) or one without a NAME."""
    if text.startswith(".so "):
        return None
    match = re.search(r"^\.SH NAME\n(.*?)\n\.SH", text, re.S | re.M)
    if match is None:
        return None
    # NAME is plain text; requests and comments (a licence, a generator's note) can sit inside it
    lines = [line for line in match.group(1).splitlines() if not line.startswith((".", "'"))]
    names, sep, description = roff_text(" ".join(lines)).partition(" - ")
    if not sep or len(description) > MAX_DESCRIPTION:
        return None
    synopsis = text[match.end() :].split("\n.SH DESCRIPTION")[0]
    headers = tuple(dict.fromkeys(re.findall(r"#include <([^>]+)>", synopsis)))
    return Page(section, tuple(n.strip() for n in names.split(",") if n.strip()), description.strip(), headers)


def section_task(rng: random.Random, pages: list[Page]) -> Task:
    by_label = {kind: [p.description for p in pages if p.section == section] for section, kind in (("2", "system call"), ("3", "library function"))}
    return Task(
        "man-section", "software documentation", "classification", "Is a Linux manual page's one-line description that of a system call or of a library function?",
        {kind: kind for kind in by_label}, balanced(rng, by_label),
    )  # fmt: skip


def kind_task(rng: random.Random, pages: list[Page]) -> Task:
    labels = ("system call", "device or file format", "overview or convention")
    by_label = {kind: [p.description for p in pages if KINDS.get(p.section) == kind] for kind in labels}
    return Task(
        "man-kind", "software documentation", "classification", "What does a Linux manual page document: a system call, a device or file format, or an overview?",
        {kind: kind for kind in labels}, balanced(rng, by_label),
    )  # fmt: skip


def header_task(rng: random.Random, pages: list[Page]) -> Task:
    """Function and description -> the one header among HEADERS that its synopsis includes."""
    by_label: dict[str, list[str]] = {header: [] for header in HEADERS}
    for p in pages:
        mine = [h for h in p.headers if h in HEADERS]
        if len(mine) == 1:
            by_label[mine[0]].append(f"{p.names[0]}: {p.description}")
    return Task(
        "man-header", "software documentation", "classification", "Which C header declares a function (Linux man-pages SYNOPSIS)?",
        {header: f"<{header}>" for header in HEADERS}, balanced(rng, by_label),
    )  # fmt: skip


def name_task(rng: random.Random, pages: list[Page]) -> Task:
    """Description -> the page's first name among names of other pages of the same section."""
    names = {section: sorted({p.names[0] for p in pages if p.section == section}) for section in {p.section for p in pages}}

    def make(page: Page, index: int) -> dict | None:
        picks = pick_distinct(rng, names[page.section], N_CHOICES - 1, lambda n: n not in page.names)
        if picks is None:
            return None
        return multiple_choice(rng, f"Which one does this: {page.description}?", page.names[0], picks, index)

    return Task(
        "man-name",
        "software documentation",
        "multiple_choice",
        "Choose the function, file or topic that a manual page's description names.",
        {},
        collect(rng, pages, make),
    )


def describe_task(rng: random.Random, pages: list[Page]) -> Task:
    descriptions = sorted({p.description for p in pages})

    def make(page: Page, index: int) -> dict | None:
        picks = pick_distinct(rng, descriptions, N_CHOICES - 1, lambda d: d != page.description)
        if picks is None:
            return None
        return multiple_choice(rng, f'What does "{page.names[0]}" (section {page.section}) do?', page.description, picks, index)

    return Task(
        "man-describe",
        "software documentation",
        "multiple_choice",
        "Choose the one-line description of a function, file or topic of the Linux manual.",
        {},
        collect(rng, pages, make),
    )


def same_page_task(rng: random.Random, pages: list[Page]) -> Task:
    """Yes: two names of one page (strcpy, strncpy); no: names of two pages of the same section."""
    page_of = {name: i for i, p in enumerate(pages) for name in p.names}
    multi = [p for p in pages if len(p.names) >= 2]
    pool = sorted(page_of)

    def make(page: Page, index: int) -> dict | None:
        a, b = rng.sample(page.names, 2)
        if index % 2 == 0:
            return {"text": a, "text_pair": b, "label": "yes"}
        picks = pick_distinct(rng, pool, 1, lambda n: pages[page_of[n]].section == page.section and page_of[n] != page_of[a])
        return None if picks is None else {"text": a, "text_pair": picks[0], "label": "no"}

    return Task(
        "man-same-page",
        "software documentation",
        "pair",
        "Are two C functions or files documented on the same Linux manual page?",
        YES_NO,
        collect(rng, multi, make),
    )


def build_tasks(pages: list[Page], seed: int) -> list[Task]:
    builders = {
        "man-section": section_task,
        "man-kind": kind_task,
        "man-header": header_task,
        "man-name": name_task,
        "man-describe": describe_task,
        "man-same-page": same_page_task,
    }
    return [make(task_rng(seed, name), pages) for name, make in builders.items()]


def installed_pages(root: Path) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """(path, gzip bytes) of every page file the packages installed (dpkg's file lists, links skipped), and their versions."""
    files, versions = [], {}
    for package in PACKAGES:
        listing = root / "var/lib/dpkg/info" / f"{package}.list"
        if not listing.is_file():
            raise SystemExit(f"error: Debian package {package} is not installed; apt-get install {' '.join(PACKAGES)}")
        query = ["dpkg-query", "--admindir", str(root / "var/lib/dpkg"), "-W", "-f", "${Version}", package]
        versions[package] = subprocess.run(query, check=True, capture_output=True, text=True).stdout.strip()
        for line in listing.read_text(encoding="utf-8").splitlines():
            path = root / line.lstrip("/")
            if PAGE_PATH.search(line) and path.is_file() and not path.is_symlink():
                files.append((line, path.read_bytes()))
    return sorted(files), versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Linux man-pages task suite in the deltahub dataset format.")
    parser.add_argument("--out", type=Path, default=Path("suites/manpages"), help="output directory (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives byte-identical output (default: %(default)s)")
    parser.add_argument("--root", type=Path, default=Path("/"), help="the file system the packages are installed in (default: %(default)s)")
    args = parser.parse_args(argv)
    files, versions = installed_pages(args.root)
    pages = [page for path, data in files if (page := parse_page(PAGE_PATH.search(path).group(1), gzip.decompress(data).decode("utf-8", "replace")))]
    digest = sha256_of("".join(f"{path}\t{sha256_of(data)}\n" for path, data in files).encode())
    copyright_file = args.root / "usr/share/doc/manpages/copyright"
    packages = ", ".join(f"{name} {version}" for name, version in versions.items())
    text = SuiteText(
        title="Linux man-pages task suite",
        intro="built from the NAME lines and SYNOPSIS includes of the Linux man-pages (sections 2, 3, 4, 5 and 7)",
        source=f"The {len(files)} page files (links skipped) that the Debian packages {packages} install; sha256 over the "
        f"sorted lines `path<TAB>sha256(file)`: `{digest}`.",
        regenerate=f"apt-get install {' '.join(f'{n}={v}' for n, v in versions.items())}\npython suites/build_manpages.py --out suites/manpages --seed {args.seed}",
        license="The Linux man-pages are Copyright their authors (Michael Kerrisk, Alejandro Colomar and many others) and "
        "distributed under the licences the Debian copyright file lists page by page (mostly GPL-2+ and the Linux man-pages "
        "Verbatim licence); see `COPYRIGHT-manpages`, a copy of /usr/share/doc/manpages/copyright.",
    )
    write_suite(build_tasks(pages, args.seed), args.out, text, {"COPYRIGHT-manpages": copyright_file.read_text(encoding="utf-8")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
