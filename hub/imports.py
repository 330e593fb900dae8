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

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hub.errors import HubError
from hub.folders import CONFIG_FILE
from hub.hf_cache import CachedRepo

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
