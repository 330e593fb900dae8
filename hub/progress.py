"""Progress of long work: a rich bar on a terminal, plain log lines elsewhere, nothing when switched off.

Every step that can run longer than a few seconds (training, scoring candidates, importing
folders) reports through `progress`, so that a user at a terminal sees a bar, a log file or
CI sees a line now and then, and `--json` output stays clean.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

LOG_EVERY_S = 10.0  # at most one plain line this often (the first and the last are always written)


class Reporter:
    """`update(done, status)` as work goes on; `done` counts up to `total`."""

    def update(self, done: int, status: str = "") -> None:
        raise NotImplementedError


class _Silent(Reporter):
    def update(self, done: int, status: str = "") -> None:
        pass


class _Bar(Reporter):
    def __init__(self, progress: Progress, task: int) -> None:
        self._progress, self._task = progress, task

    def update(self, done: int, status: str = "") -> None:
        self._progress.update(self._task, completed=done, status=status)


class _Lines(Reporter):
    def __init__(self, description: str, total: int, stream: TextIO) -> None:
        self._description, self._total, self._stream = description, total, stream
        self._started = time.monotonic()
        self._last = -LOG_EVERY_S

    def update(self, done: int, status: str = "") -> None:
        now = time.monotonic()
        if done < self._total and now - self._last < LOG_EVERY_S:
            return
        self._last = now
        detail = f" {status}" if status else ""
        print(f"{self._description}: {done}/{self._total}{detail} ({now - self._started:.0f} s)", file=self._stream, flush=True)


@contextmanager
def progress(description: str, total: int, enabled: bool = True, stream: TextIO | None = None) -> Iterator[Reporter]:
    """Report `total` units of work named `description`: a transient bar on a terminal, a line every ~10 s otherwise."""
    stream = stream or sys.stderr
    if not enabled:
        yield _Silent()
    elif stream.isatty():
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=Console(file=stream),
            transient=True,
        )
        with bar:
            yield _Bar(bar, bar.add_task(description, total=total, status=""))
    else:
        yield _Lines(description, total, stream)
