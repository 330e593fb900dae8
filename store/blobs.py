"""A content-addressed blob store: files named by the sha256 of their bytes.

Writes go to a temp file that is fsynced and renamed, so a blob is whole or
absent; reads re-hash and refuse bytes that no longer match their address.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from store.errors import BlobCorrupt, StoreError

SUFFIX = ".safetensors"


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        return self.root / "sha256" / digest[:2] / f"{digest}{SUFFIX}"

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put(self, data: bytes) -> str:
        """Store bytes and return their digest; storing the same bytes again is a no-op."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.is_file():
            return digest
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=SUFFIX)
        except OSError as error:
            raise StoreError(f"cannot write blobs under {self.root}: {error.strerror}; check the registry's permissions") from None
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
        return digest

    def get(self, digest: str, owner: str = "") -> bytes:
        """Read a blob and verify it; `owner` names what the blob belongs to in errors."""
        what = f" of {owner}" if owner else ""
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise BlobCorrupt(f"blob {digest[:12]}{what} is missing from {self.root}; run `adapters verify`") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise BlobCorrupt(f"blob {digest[:12]}{what} fails its sha256 check; it is corrupt or from another registry")
        return data

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def digests(self) -> Iterator[str]:
        for path in (self.root / "sha256").glob(f"*/*{SUFFIX}"):
            yield path.name.removesuffix(SUFFIX)


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
