"""`adapters import`: every PEFT module folder under some folders, or every adapter repo of the Hugging Face cache, pushed in one go.

Each folder is pushed as `adapters push` would push it (its model card or the one --dataset
given for all), one at a time: a folder that cannot be pushed is refused with its reason and
the others go on. Pushing is idempotent, so a folder whose weights are already registered comes
back as the module that holds them ("already there"), never as a second row.

Without a dataset, a module's task is --task, else its card's first `datasets:` entry, else (a repo
of the Hugging Face cache) the repo's name; its category is --category, else its card's. A repo the
cache scan finds corrupted is skipped, with the scan's reason.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hub.cards import read_card
from hub.datasets import Dataset, load_dataset
from hub.errors import USER_ERRORS, HubError
from hub.folders import CONFIG_FILE
from hub.hf_cache import CachedRepo

if TYPE_CHECKING:
    from hub.registration import Registration

IMPORTED = "imported"
ALREADY_THERE = "already there"
REFUSED = "refused"
SKIPPED = "skipped"
STATUSES = (IMPORTED, ALREADY_THERE, REFUSED, SKIPPED)
# Where an imported module's task name came from.
TASK_FROM_OPTION, TASK_FROM_CARD, TASK_FROM_REPO = "--task", "model card", "repo name"


@dataclass(frozen=True)
class ImportOutcome:
    """What became of one module folder: imported, already there (`module_id` holds its weights), refused or skipped (`reason`)."""

    folder: Path
    status: str
    module_id: int | None = None
    task: str | None = None
    reason: str = ""
    source: str = ""  # hf://ORG/NAME@SHA for a repo of the Hugging Face cache
    task_from: str = ""  # TASK_FROM_*: where the task name came from ("" with --dataset, or when already there)

    def to_json(self) -> dict[str, object]:
        return {
            "folder": str(self.folder),
            "source": self.source,
            "status": self.status,
            "module_id": self.module_id,
            "task": self.task,
            "task_from": self.task_from,
            "reason": self.reason,
        }


def import_folders(
    registration: Registration,
    paths: Sequence[str | os.PathLike[str]],
    *,
    dataset: Dataset | str | os.PathLike[str] | None = None,
    task: str | None = None,
    category: str | None = None,
    base_model: str | os.PathLike[str] | None = None,
    tags: Iterable[str] = (),
    progress: Callable[[int, int, Path], None] | None = None,
) -> list[ImportOutcome]:
    """Push every module folder under `paths` (`Hub.import_folders` says how)."""
    folders = [(folder, "", None) for folder in module_folders([Path(path) for path in paths])]
    return push_each(registration, folders, dataset, task, category, base_model, tags, progress)


def import_hf_cache(
    registration: Registration,
    *,
    dataset: Dataset | str | os.PathLike[str] | None = None,
    task: str | None = None,
    category: str | None = None,
    base_model: str | os.PathLike[str] | None = None,
    tags: Iterable[str] = (),
    progress: Callable[[int, int, Path], None] | None = None,
) -> list[ImportOutcome]:
    """Push every cached revision of every adapter repo of the Hugging Face cache (`Hub.import_hf_cache` says how)."""
    repos, skipped = cached_adapters()
    folders = [(repo.path, repo.source, repo.repo_id.split("/")[-1]) for repo in repos]
    return push_each(registration, folders, dataset, task, category, base_model, tags, progress) + skipped


def push_each(
    registration: Registration,
    folders: Sequence[tuple[Path, str, str | None]],
    dataset: Dataset | str | os.PathLike[str] | None,
    task: str | None,
    category: str | None,
    base_model: str | os.PathLike[str] | None,
    tags: Iterable[str],
    progress: Callable[[int, int, Path], None] | None,
) -> list[ImportOutcome]:
    """Push each (folder, source, repo name) in turn; a refusal is that folder's outcome, and the others go on."""
    if dataset is not None and (task is not None or category is not None):
        raise HubError("--task/--category describe modules imported without --dataset; the dataset's task.json already names its task and category")
    # One dataset for every folder: read (and refused if bad) once, before any push.
    data = load_dataset(dataset) if dataset is not None and not isinstance(dataset, Dataset) else dataset
    known = {record.id for record in registration.registry.catalog.list_modules()}
    tags = tuple(tags)
    outcomes = []
    for done, (folder, source, repo_name) in enumerate(folders, start=1):
        try:
            named, task_from = task, TASK_FROM_OPTION
            if data is None and named is None:
                named = read_card(folder).task
                named, task_from = (named, TASK_FROM_CARD) if named is not None else (repo_name, TASK_FROM_REPO)
            record = registration.push(folder, data, task=named, category=category, base_model=base_model, tags=tags, source=source)
        except USER_ERRORS as error:
            outcomes.append(ImportOutcome(folder, REFUSED, reason=str(error), source=source))
        else:
            # push returns the module already holding these weights: known before, it was already there.
            there = record.id in known
            said = "" if data is not None or there else task_from
            outcomes.append(ImportOutcome(folder, ALREADY_THERE if there else IMPORTED, record.id, record.task, source=source, task_from=said))
            known.add(record.id)
        if progress is not None:
            progress(done, len(folders), folder)
    return outcomes


def module_folders(paths: Sequence[Path]) -> list[Path]:
    """Every folder holding an adapter_config.json under `paths` (each path itself included), in path order, each once.

    A path that does not exist is an error before anything is pushed; so is finding no module folder at all.
    """
    for path in paths:
        if not path.exists():
            raise HubError(f"{path} does not exist; pass folders that hold PEFT module folders (with {CONFIG_FILE})")
    found = dict.fromkeys(config.parent for path in paths for config in sorted(path.rglob(CONFIG_FILE)) if config.is_file())
    if not found:
        raise HubError(f"no PEFT module folder (one with {CONFIG_FILE}) under {', '.join(str(path) for path in paths)}; pass the folders save_pretrained wrote")
    return list(found)


def cached_adapters() -> tuple[list[CachedRepo], list[ImportOutcome]]:
    """Every cached revision of a model repo whose snapshot holds a PEFT adapter (adapter_config.json), by repo id and commit;
    and each repo folder the cache scan found corrupted, skipped with the scan's reason."""
    from huggingface_hub import constants, scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        cache = scan_cache_dir()
    except CacheNotFound as error:
        raise HubError(f"there is no Hugging Face cache at {error.cache_dir}; point HF_HUB_CACHE (or HF_HOME) at the cache `hf download` filled") from None
    skipped = [_corrupted(Path(constants.HF_HUB_CACHE), str(warning)) for warning in cache.warnings]
    found = [
        CachedRepo(repo.repo_id, revision.commit_hash, revision.snapshot_path)
        for repo in sorted(cache.repos, key=lambda repo: repo.repo_id)
        if repo.repo_type == "model"
        for revision in sorted(repo.revisions, key=lambda revision: revision.commit_hash)
        if (revision.snapshot_path / CONFIG_FILE).is_file()
    ]
    if not found and not skipped:
        raise HubError(f"no PEFT adapter repo (one with {CONFIG_FILE}) in the Hugging Face cache; run `hf download ORG/NAME` for the adapters first")
    return found, skipped


def _corrupted(cache: Path, warning: str) -> ImportOutcome:
    """A repo folder the cache scan could not read: named by the folder its warning mentions (the whole cache if none)."""
    cache = cache.expanduser().resolve()  # as the scan names it
    named = [entry for entry in sorted(cache.iterdir()) if re.search(rf"{re.escape(str(entry))}(?=/|\)|$)", warning)] if cache.is_dir() else []
    folder = named[0] if named else cache
    kind, _, name = folder.name.partition("--")
    source = f"hf://{name.replace('--', '/')}" if kind == "models" and name else ""
    return ImportOutcome(
        folder, SKIPPED, reason=f"the Hugging Face cache scan finds it corrupted ({warning}); repair or delete it, then `hf download` it again", source=source
    )
