"""Where a registry lives and opening it: database URL, blob directory, index cache."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from store.blobs import BlobStore
from store.catalog import Catalog
from store.db import check_schema, current_revision, head_revision, make_engine, upgrade
from store.errors import StoreError
from store.indexes import IndexSet

REGISTRY_ENV = "ADAPTERS_REGISTRY"
BLOBS_ENV = "ADAPTERS_BLOBS"
DATABASE_FILE = "registry.db"


@dataclass(frozen=True)
class Location:
    """A registry's database URL, blob directory and local index cache directory."""

    url: str
    blobs: Path
    indexes: Path
    directory: Path | None

    @property
    def display(self) -> str:
        return str(self.directory) if self.directory else make_url(self.url).render_as_string(hide_password=True)


def default_directory() -> Path:
    return Path(platformdirs.user_data_dir("deltahub")) / "registry"


def resolve_location(spec: str | os.PathLike[str] | None = None, blobs: str | os.PathLike[str] | None = None) -> Location:
    """A directory (embedded SQLite), sqlite:///FILE, or a server URL with a blob directory."""
    spec = spec if spec is not None else os.environ.get(REGISTRY_ENV) or default_directory()
    blobs = blobs if blobs is not None else os.environ.get(BLOBS_ENV)
    text = str(spec)
    if "://" not in text:
        directory = Path(text).expanduser().resolve()
        return Location(f"sqlite:///{directory / DATABASE_FILE}", Path(blobs) if blobs else directory / "blobs", directory / "indexes", directory)
    try:
        url = make_url(text)
    except ArgumentError:
        raise StoreError(f"registry URL {text!r} is not a database URL; use a directory, sqlite:///FILE or postgresql+psycopg://…") from None
    if url.get_backend_name() == "sqlite":
        directory = Path(url.database or ".").expanduser().resolve().parent
        return Location(text, Path(blobs) if blobs else directory / "blobs", directory / "indexes", directory)
    if not blobs:
        raise StoreError(f"a {url.get_backend_name()} registry needs a shared blob directory; pass --blobs DIR or set {BLOBS_ENV}")
    # Index caches are per machine; the password never reaches the cache path.
    key = hashlib.sha256(url.render_as_string(hide_password=True).encode()).hexdigest()[:16]
    return Location(text, Path(blobs).expanduser().resolve(), Path(platformdirs.user_cache_dir("deltahub")) / "indexes" / key, None)


class Registry:
    """An open registry: the catalog (database), the blob store and the index caches."""

    def __init__(self, location: Location, create: bool = True) -> None:
        self.location = location
        if location.directory is not None:
            _ensure_directory(location.directory, create)
        if create:
            _ensure_directory(location.blobs, create=True)
        self.engine = make_engine(location.url)
        check_schema(self.engine, create=create)
        self.catalog = Catalog(self.engine)
        self.blobs = BlobStore(location.blobs)
        self.indexes = IndexSet(location.indexes, self.catalog)

    @classmethod
    def open(cls, spec: str | os.PathLike[str] | None = None, blobs: str | os.PathLike[str] | None = None) -> Registry:
        return cls(resolve_location(spec, blobs))

    def close(self) -> None:
        self.engine.dispose()


def upgrade_registry(location: Location) -> tuple[str | None, str]:
    """Run the migrations on a registry (creating it if new); return (before, after) revisions."""
    if location.directory is not None:
        _ensure_directory(location.directory, create=True)
    engine = make_engine(location.url)
    try:
        before = current_revision(engine)
        upgrade(engine)
        return before, head_revision()
    finally:
        engine.dispose()


def _ensure_directory(directory: Path, create: bool) -> None:
    try:
        if create:
            directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except FileNotFoundError:
        raise StoreError(f"registry {directory} does not exist; run `adapters db upgrade --registry {directory}` to create it") from None
    except OSError as error:
        raise StoreError(f"registry path {directory} is not writable ({error.strerror}); choose another --registry or fix its permissions") from None
