"""The local Hugging Face cache and the Hub, through huggingface_hub.

A repo is named `ORG/NAME[@REVISION]` (a branch or tag recorded under refs/, or a commit sha);
its files are the cache's snapshot folder of that commit, which is what the catalog pins.
Base models and imported repos are only ever read from the cache; the network is used only by
`pull` of a repo that is not cached (and not offline) and by `publish`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hub.errors import HubError

# ORG/NAME with an optional @REVISION: the Hub's repo id grammar, which no local path of ours needs.
HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w./-]+))?$")


@dataclass(frozen=True)
class CachedRepo:
    """A repo's snapshot in the local cache: `path` holds its files at commit `sha`."""

    repo_id: str
    sha: str
    path: Path

    @property
    def source(self) -> str:
        """How the catalog records where a module came from."""
        return f"hf://{self.repo_id}@{self.sha}"


def parse_hub_id(spec: str) -> tuple[str, str | None] | None:
    """(repo id, revision or None) when `spec` is written as a Hub id, else None."""
    match = HUB_ID.match(spec)
    return (match["repo"], match["revision"]) if match else None


def cached_snapshot(repo_id: str, revision: str | None, what: str = "repo") -> CachedRepo:
    """The cached snapshot of `repo_id` at `revision` (default: main); a one-line error saying how to fetch it when it is not cached."""
    folder = _local_snapshot(repo_id, revision)
    if folder is None:
        raise HubError(f"{what} {_named(repo_id, revision)} is not in the local Hugging Face cache; {_how_to_fetch(repo_id, revision)} (nothing is downloaded)")
    return CachedRepo(repo_id, folder.name, folder)


def fetch_snapshot(repo_id: str, revision: str | None, what: str = "repo") -> CachedRepo:
    """The snapshot from the cache when it is there (no network at all); else downloaded into the cache, unless HF_HUB_OFFLINE is set."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    folder = _local_snapshot(repo_id, revision)
    if folder is None and constants.is_offline_mode():
        raise HubError(
            f"{what} {_named(repo_id, revision)} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; {_how_to_fetch(repo_id, revision)}"
        )
    if folder is None:
        try:
            folder = Path(snapshot_download(repo_id, revision=revision))
        except (HfHubHTTPError, LocalEntryNotFoundError) as error:
            raise HubError(f"cannot download {what} {_named(repo_id, revision)}: {str(error).splitlines()[0]}; check the id and your network") from None
    return CachedRepo(repo_id, folder.name, folder)


def upload(folder: Path, repo_id: str, private: bool) -> str:
    """Create the model repo (if new) and upload the folder as one commit; the commit's URL. Offline, huggingface_hub refuses the first request."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=f"Upload {folder.name} from deltahub")
    except OfflineModeIsEnabled as error:
        # Chained, so that a caller can tell huggingface_hub's own refusal from ours.
        raise HubError(
            f"cannot publish to {repo_id}: HF_HUB_OFFLINE is set, so nothing was uploaded; publish from a machine with network and a token (`hf auth login`)"
        ) from error
    except HfHubHTTPError as error:
        raise HubError(f"cannot publish to {repo_id}: {str(error).splitlines()[0]}; check the repo id and your token (`hf auth login`)") from error
    return commit.commit_url


def _local_snapshot(repo_id: str, revision: str | None) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        # local_files_only: resolve refs/ and snapshots/ on disk only, whatever HF_HUB_OFFLINE says.
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        return None


def _named(repo_id: str, revision: str | None) -> str:
    return f"{repo_id}@{revision}" if revision else repo_id


def _how_to_fetch(repo_id: str, revision: str | None) -> str:
    fetch = f"hf download {repo_id}" + (f" --revision {revision}" if revision else "")
    return f"run `{fetch}` on a machine with network, or copy its cache folder here"
