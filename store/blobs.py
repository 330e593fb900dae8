"""A content-addressed blob store: files named by the sha256 of their bytes.

Writes go to a temp file that is fsynced and renamed, so a blob is whole or
absent; reads re-hash and refuse bytes that no longer match their address.

Blobs are never deleted by `rm` (another module, or a push in flight, may share
them). `collect_garbage` deletes a blob only when no row references it AND its
mtime is older than a grace period (default GC_GRACE_S, one hour). A push
refreshes the mtime of a blob that already exists, and commits its row right
after writing the blob, so a push in flight is safe as long as it finishes
within the grace period; the hour also covers clock skew between machines on
a shared (NFS) blob directory. The directory carries the id of the registry it
belongs to (file REGISTRY), so a mixed-up blob directory is refused on open.

`Blobs` is what the rest of the store asks of a blob store: the directory store here,
or the object-storage one (store.s3blobs, for s3://BUCKET/PREFIX); store.registry.open_blobs picks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from store.errors import BlobCorrupt, StoreError, UploadTooLarge
from store.files import atomic_write, fsync_dir

SUFFIX = ".safetensors"
TEMP_PREFIX = ".tmp-"
QUARANTINE_PREFIX = ".gc-"
MARKER = "REGISTRY"
GC_GRACE_S = 3600.0
_CHUNK = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")
# safetensors refuses headers past 100 MB; bytes announcing more are not a safetensors file.
_HEADER_MAX = 100 << 20


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# Blobs are readable by whoever may read the directory (mkstemp alone makes them 0600).
BLOB_MODE = 0o666 & ~_umask()


@dataclass
class GcReport:
    """What `collect_garbage` removed and kept."""

    removed: list[str] = field(default_factory=list)
    removed_bytes: int = 0
    temp_files: int = 0
    kept_young: int = 0
    referenced: int = 0


@dataclass(frozen=True)
class BlobFacts:
    """One stored blob as `verify` sees it: its address, the sha256 of its bytes, its size and its safetensors header (None: unreadable)."""

    digest: str
    actual: str
    size: int
    header: dict | None


class Blobs(Protocol):
    """A content-addressed blob store: a directory here (BlobStore) or a bucket (store.s3blobs.S3Blobs)."""

    @property
    def where(self) -> str: ...

    def exists(self, digest: str) -> bool: ...

    def put(self, data: bytes) -> str: ...

    def touch(self, digest: str) -> bool: ...

    def receive(self, digest: str, max_bytes: int) -> BlobUpload: ...

    def adopt(self, temp: Path, digest: str) -> None: ...

    def get(self, digest: str, owner: str = "") -> bytes: ...

    def read(self, digest: str) -> Iterator[bytes] | None: ...

    def digests(self) -> Iterator[str]: ...

    def scan(self) -> Iterator[BlobFacts]: ...

    def leftovers(self) -> int: ...

    def registry_id(self) -> str | None: ...

    def claim(self, registry_id: str, database: str) -> None: ...

    def collect_garbage(self, referenced: Callable[[], set[str]], grace_s: float = GC_GRACE_S, dry_run: bool = False) -> GcReport: ...


def check_digest(digest: str) -> str:
    # Every blob address comes from a digest; one that is not 64 hex digits could name something elsewhere.
    if not _HEX64.fullmatch(digest):
        raise StoreError(f"{digest[:70]!r} is not a sha256 digest (64 hex digits)")
    return digest


def relative_key(digest: str) -> str:
    """Where a blob lives under a store's root: sha256/ab/abcd….safetensors (a directory and a bucket alike)."""
    return f"sha256/{digest[:2]}/{check_digest(digest)}{SUFFIX}"


def hash_chunks(chunks: Iterable[bytes]) -> tuple[str, int, dict | None]:
    """(sha256, size, safetensors header or None) of bytes read once, in pieces."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        # Keep the prefix until the header it announces is whole (its length is the first 8 bytes).
        if len(head) < 8 or len(head) < 8 + min(struct.unpack("<Q", head[:8])[0], _HEADER_MAX):
            head += chunk
    return digest.hexdigest(), size, _header(head, size)


def _header(head: bytes, size: int) -> dict | None:
    if len(head) < 8:
        return None
    (length,) = struct.unpack("<Q", head[:8])
    # Other bytes read as a header size can be anything: never read past the blob.
    if length > size - 8 or len(head) < 8 + length:
        return None
    try:
        header = json.loads(head[8 : 8 + length])
    except ValueError:
        return None
    return header if isinstance(header, dict) else None


class BlobStore:
    """Blobs in a directory (local, or shared over NFS by the machines of a lab)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def where(self) -> str:
        return str(self.root)

    def path(self, digest: str) -> Path:
        return self.root / relative_key(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put(self, data: bytes) -> str:
        """Store bytes and return their digest; storing the same bytes again only refreshes the mtime.

        The refresh tells `collect_garbage` that a push is about to reference the blob.
        """
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        try:
            os.utime(target)
            return digest
        except FileNotFoundError:
            pass  # new bytes (or gc just took an orphan copy away): write them
        except PermissionError:
            pass  # someone else's file: replacing it with the same bytes gives a fresh mtime
        except OSError as error:
            raise StoreError(f"cannot write blobs under {self.root}: {error.strerror}; check the blob directory") from None
        if not self.root.is_dir():
            raise StoreError(f"blob directory {self.root} does not exist; create or mount it, or name the right blob location")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, lambda out: out.write(data), prefix=TEMP_PREFIX, suffix=SUFFIX, mode=BLOB_MODE)
        except OSError as error:
            raise StoreError(f"cannot write blobs under {self.root}: {error.strerror}; check the blob directory's permissions") from None
        return digest

    def touch(self, digest: str) -> bool:
        """Refresh a blob's mtime, as `put` of the same bytes would; False when the blob is absent."""
        try:
            os.utime(self.path(digest))
        except FileNotFoundError:
            return False
        except PermissionError:
            return self.exists(digest)  # someone else's file on a shared directory: it is there
        return True

    def receive(self, digest: str, max_bytes: int) -> BlobUpload:
        """Start writing a blob that arrives in pieces (an upload to the registry server)."""
        if not self.root.is_dir():
            raise StoreError(f"blob directory {self.root} does not exist; create or mount it, or name the right blob location")
        target = self.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        return BlobUpload(self, digest, max_bytes, target.parent)

    def adopt(self, temp: Path, digest: str) -> None:
        """Put a received, verified temp file (beside its place) in place, or drop it when the blob is already there."""
        if self.touch(digest):
            temp.unlink(missing_ok=True)
            return
        os.replace(temp, self.path(digest))
        fsync_dir(temp.parent)

    def get(self, digest: str, owner: str = "") -> bytes:
        """Read a blob and verify it; `owner` names what the blob belongs to in errors."""
        what = f" of {owner}" if owner else ""
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise BlobCorrupt(f"blob {digest[:12]}{what} is missing from {self.root}; the registry's verify finds every such module") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise BlobCorrupt(f"blob {digest[:12]}{what} fails its sha256 check; it is corrupt or from another registry")
        return data

    def read(self, digest: str) -> Iterator[bytes] | None:
        """A blob's bytes in pieces, unverified (the reader checks them against the digest); None when absent."""
        try:
            handle = self.path(digest).open("rb")
        except FileNotFoundError:
            return None
        return _pieces(handle)

    def digests(self) -> Iterator[str]:
        for path in self.files():
            yield path.name.removesuffix(SUFFIX)

    def files(self) -> Iterator[Path]:
        """Every blob file (not temp or quarantined files)."""
        for path in (self.root / "sha256").glob(f"*/*{SUFFIX}"):
            if not path.name.startswith("."):
                yield path

    def scan(self) -> Iterator[BlobFacts]:
        """Every blob re-hashed (a blob removed meanwhile by a concurrent gc is skipped)."""
        for path in self.files():
            try:
                handle = path.open("rb")
            except FileNotFoundError:
                continue
            yield BlobFacts(path.name.removesuffix(SUFFIX), *hash_chunks(_pieces(handle)))

    def leftovers(self) -> int:
        """Temp files of writes in flight or killed, and blobs a killed gc left set aside."""
        sha = self.root / "sha256"
        return sum(1 for _ in sha.glob(f"*/{TEMP_PREFIX}*")) + sum(1 for _ in sha.glob(f"*/{QUARANTINE_PREFIX}*"))

    # --- which registry this directory belongs to

    def registry_id(self) -> str | None:
        try:
            return (self.root / MARKER).read_text().strip() or None
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StoreError(f"cannot read {self.root / MARKER}: {error.strerror}; check the blob directory") from None

    def claim(self, registry_id: str, database: str) -> None:
        """Refuse a blob directory of another registry; mark an unmarked one as this registry's."""
        if not registry_id:
            return
        if not self.root.is_dir():
            raise StoreError(f"blob directory {self.root} does not exist; create or mount it, or name the right blob location")
        found = self.registry_id()
        if found is None:
            try:
                atomic_write(self.root / MARKER, lambda out: out.write(registry_id.encode() + b"\n"), prefix=TEMP_PREFIX, mode=BLOB_MODE)
            except OSError:
                return  # a read-only blob directory: reads work, a push will say what is wrong
            found = self.registry_id()
        if found != registry_id:
            raise StoreError(
                f"blob directory {self.root} belongs to registry {found}, but database {database} is registry {registry_id}; "
                "name the blob directory of this registry"
            )

    # --- garbage collection

    def collect_garbage(self, referenced: Callable[[], set[str]], grace_s: float = GC_GRACE_S, dry_run: bool = False) -> GcReport:
        """Delete blobs no row references that are older than `grace_s`, and stale temp files.

        `referenced` is called after the blobs are listed, so a row committed before
        the call protects its blob; a push that only wrote (or refreshed) its blob has
        a young mtime. Each doomed blob is first renamed aside and its mtime looked at
        again, so a push that refreshes it in between wins.
        """
        report = GcReport()
        now = time.time()
        sha = self.root / "sha256"
        for leftover in sha.glob(f"*/{QUARANTINE_PREFIX}*{SUFFIX}"):
            # A gc that died between rename and unlink: put the blob back and judge it again.
            target = leftover.with_name(leftover.name.removeprefix(QUARANTINE_PREFIX))
            if dry_run:
                continue
            if target.exists():
                leftover.unlink(missing_ok=True)
            else:
                os.replace(leftover, target)
        old: list[tuple[str, Path]] = []
        for path in self.files():
            try:
                young = path.stat().st_mtime > now - grace_s
            except FileNotFoundError:
                continue
            if young:
                report.kept_young += 1
            else:
                old.append((path.name.removesuffix(SUFFIX), path))
        live = referenced()
        for digest, path in old:
            if digest in live:
                report.referenced += 1
                continue
            if dry_run:
                report.removed.append(digest)
                report.removed_bytes += path.stat().st_size
                continue
            aside = path.with_name(QUARANTINE_PREFIX + path.name)
            try:
                os.replace(path, aside)
                stat = aside.stat()
            except FileNotFoundError:
                continue
            if stat.st_mtime > time.time() - grace_s:
                os.replace(aside, path)  # a push refreshed it just now
                report.kept_young += 1
                continue
            aside.unlink(missing_ok=True)
            report.removed.append(digest)
            report.removed_bytes += stat.st_size
        for temp in sha.glob(f"*/{TEMP_PREFIX}*"):
            # A push killed while writing its blob leaves a temp file; one this old is dead.
            try:
                if temp.stat().st_mtime <= now - grace_s:
                    if not dry_run:
                        temp.unlink(missing_ok=True)
                    report.temp_files += 1
            except FileNotFoundError:
                continue
        return report


def _pieces(handle) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


class BlobUpload:
    """A blob arriving in pieces: hashed as it is written to a temp file, handed to its store only whole and matching its digest.

    The temp file lies in `directory` (beside the blob's place for a directory store). A writer killed
    midway leaves it there, and `collect_garbage` removes it after the grace period; `abort` (a client
    that went away) removes it at once.
    """

    def __init__(self, store: Blobs, digest: str, max_bytes: int, directory: Path | None) -> None:
        self.store = store
        self.digest = check_digest(digest)
        self.max_bytes = max_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        handle, temp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX, suffix=SUFFIX)
        os.fchmod(handle, BLOB_MODE)
        self._temp = Path(temp)
        self._out = os.fdopen(handle, "wb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            self.abort()
            raise UploadTooLarge(f"the upload is over the server's limit of {self.max_bytes} bytes; nothing was stored")
        self._hash.update(chunk)
        self._out.write(chunk)

    def commit(self) -> None:
        """Verify the bytes against the declared digest and move them into place (or refresh the copy already there)."""
        if self._hash.hexdigest() != self.digest:
            self.abort()
            raise BlobCorrupt(f"the uploaded bytes hash to {self._hash.hexdigest()[:12]}, not the declared {self.digest[:12]}; nothing was stored")
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()
        try:
            self.store.adopt(self._temp, self.digest)
        finally:
            self._temp.unlink(missing_ok=True)

    def abort(self) -> None:
        self._out.close()
        self._temp.unlink(missing_ok=True)
