"""Where a registry lives and opening it: database URL, blob location (a directory or a bucket), index cache."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import platformdirs

from store.backend import RegistryBackend
from store.blobs import Blobs, BlobStore
from store.catalog import Catalog
from store.db import check_schema, current_revision, display_url, head_revision, make_engine, parse_url, upgrade
from store.errors import NeedsUpgrade, StoreError
from store.indexes import IndexSet
from store.records import BaseModelInfo, DatasetInfo, ModuleRecord, NewModule, Provenance, TaskInfo
from store.tokens import TokenStore

REGISTRY_ENV = "ADAPTERS_REGISTRY"
BLOBS_ENV = "ADAPTERS_BLOBS"
DATABASE_FILE = "registry.db"
# A registry is made by a push (or import) into it, or by upgrading its database; the front end names the command.
CREATE_HINT = "check the path, or create the registry by upgrading its database"
# The databases deltahub's migrations and queries are written for.
BACKENDS = ("sqlite", "postgresql")
# The first bytes of every SQLite database file (https://www.sqlite.org/fileformat.html).
SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Location:
    """A registry's database URL, the blob location its opener names (None: the recorded one, else the directory's blobs/), and local index cache directory."""

    url: str
    blobs: str | None
    indexes: Path
    directory: Path | None

    @property
    def display(self) -> str:
        return str(self.directory) if self.directory else parse_url(self.url).render_as_string(hide_password=True)


def default_directory() -> Path:
    return Path(platformdirs.user_data_dir("deltahub")) / "registry"


def resolve_location(spec: str | os.PathLike[str] | None = None, blobs: str | os.PathLike[str] | None = None) -> Location:
    """A directory (embedded SQLite), sqlite:///FILE, or a server URL; blobs in a directory or at s3://BUCKET/PREFIX."""
    spec = spec if spec is not None else os.environ.get(REGISTRY_ENV) or default_directory()
    blobs = blobs if blobs is not None else os.environ.get(BLOBS_ENV) or None
    named = str(blobs) if blobs else None
    text = str(spec)
    if text.startswith(("http://", "https://")):
        raise StoreError(f"{text} is a registry server; run this on the server's machine with its registry directory or database URL")
    if "://" not in text:
        directory = Path(text).expanduser().resolve()
        return Location(f"sqlite:///{directory / DATABASE_FILE}", named, directory / "indexes", directory)
    url = parse_url(text)
    if url.get_backend_name() not in BACKENDS:
        raise StoreError(
            f"the registry URL names a {url.get_backend_name()} database, which deltahub does not support; "
            "use a directory, sqlite:///FILE or postgresql+psycopg://USER@HOST:PORT/DB"
        )
    if url.get_backend_name() == "sqlite":
        directory = Path(url.database or ".").expanduser().resolve().parent
        return Location(text, named, directory / "indexes", directory)
    # Index caches are per machine; the password never reaches the cache path.
    key = hashlib.sha256(url.render_as_string(hide_password=True).encode()).hexdigest()[:16]
    return Location(text, named, Path(platformdirs.user_cache_dir("deltahub")) / "indexes" / key, None)


def open_registry(spec: str | os.PathLike[str] | None = None, blobs: str | os.PathLike[str] | None = None, create: bool = True) -> RegistryBackend:
    """A registry directory or database URL opened here, or a registry server's http(s) URL opened through it.

    `create`: make a registry that does not exist yet (a new directory, or an empty database); without
    it, such a registry is an error saying so, and nothing is written.
    """
    spec = spec if spec is not None else os.environ.get(REGISTRY_ENV) or None
    if isinstance(spec, str) and spec.startswith(("http://", "https://")):
        if blobs is not None:
            raise StoreError(f"a registry server keeps its own blobs; name no blob location ({BLOBS_ENV}) with a server's URL")
        from store.remote import RemoteRegistry  # httpx is imported only by commands that reach a server

        return RemoteRegistry(spec)
    return Registry.open(spec, blobs, create)


class Registry:
    """An open registry: the catalog (database), the blob store and the index caches."""

    def __init__(self, location: Location, create: bool = True) -> None:
        self.location = location
        # Blobs named for a registry this open creates are reached first: a missing bucket leaves nothing behind.
        # Otherwise a bucket is reached when first used: boto3's import and client cost ~0.7 s, which
        # the verbs that read only the catalog (list, show, search) need not pay.
        new = _new_sqlite_registry(location)
        named = reach_blobs(location.blobs, create and new) if location.blobs and (new or not is_bucket(location.blobs)) else None
        if location.directory is not None:
            _ensure_directory(location.directory, create)
            # Before its blob directory: a missing or foreign database file is what is wrong, whatever else is missing.
            _check_database_file(location, create)
            # A new directory registry makes its own blob directory; an existing one must have it.
            if named is None and new and not location.blobs:
                named = reach_blobs(str(location.directory / "blobs"), create)
        self.engine = make_engine(location.url)
        try:
            if named is None and location.blobs and create and current_revision(self.engine) is None:
                named = reach_blobs(location.blobs, create=True)  # a database registry made by this open
            check_schema(self.engine, create=create)
            self.catalog = Catalog(self.engine)
            self.tokens = TokenStore(self.engine)
            self.registry_id = self.catalog.registry_id()
            self._blobs: Blobs | None = None
            if named is not None or not is_bucket(location.blobs or self.catalog.blob_location()):
                self._blobs = self._claimed_blobs(named)
        except BaseException:
            self.engine.dispose()
            raise
        self.indexes = IndexSet(location.indexes, self.catalog, self.registry_id)

    @property
    def blobs(self) -> Blobs:
        """The blob store (a bucket is reached on first use; see __init__)."""
        if self._blobs is None:
            self._blobs = self._claimed_blobs(None)
        return self._blobs

    def _claimed_blobs(self, named: Blobs | None) -> Blobs:
        blobs = _chosen_blobs(self.location, named, self.catalog.blob_location())
        blobs.claim(self.registry_id, display_url(self.engine))
        return blobs

    @classmethod
    def open(cls, spec: str | os.PathLike[str] | None = None, blobs: str | os.PathLike[str] | None = None, create: bool = True) -> Registry:
        return cls(resolve_location(spec, blobs), create)

    def close(self) -> None:
        self.engine.dispose()

    def add_module(
        self, data: bytes, module: NewModule, task: TaskInfo, dataset: DatasetInfo | None, base_model: BaseModelInfo, provenance: Provenance | None = None
    ) -> tuple[ModuleRecord, bool]:
        """Push a module's canonical bytes and rows; return the module and whether it is new.

        The blob is written (atomically) before the row is committed, so a visible row
        always has its blob; a push killed at any point leaves the whole module or
        nothing (an orphan blob at worst, which `gc` removes after its grace period).
        `dataset` None: a module described only by its task, with no dataset embedding.
        """
        _check_embeddings(module, dataset)
        digest = self.blobs.put(data)
        if digest != module.blob_digest:
            raise StoreError(f"module bytes hash to {digest[:12]}, not the declared {module.blob_digest[:12]}; nothing was registered")
        return self._add_rows(module, task, dataset, base_model, provenance)

    def add_stored_module(
        self, module: NewModule, task: TaskInfo, dataset: DatasetInfo | None, base_model: BaseModelInfo, provenance: Provenance | None = None
    ) -> tuple[ModuleRecord, bool]:
        """Register a module whose blob is already in the store (uploaded to the registry server first); as `add_module`."""
        _check_embeddings(module, dataset)
        # A remote client's embeddings were made elsewhere: they must fit the indexes they join.
        self.indexes.check_dimensions(module.schema_hash, module.param_embedding, dataset.embedding if dataset is not None else None)
        if not self.blobs.touch(module.blob_digest):
            raise StoreError(f"blob {module.blob_digest[:12]} is not in the registry; upload the module's bytes before its record")
        return self._add_rows(module, task, dataset, base_model, provenance)

    def _add_rows(
        self, module: NewModule, task: TaskInfo, dataset: DatasetInfo | None, base_model: BaseModelInfo, provenance: Provenance | None
    ) -> tuple[ModuleRecord, bool]:
        if not module.created_host:
            module = dataclasses.replace(module, created_host=socket.gethostname())
        record, generation = self.catalog.add_module(module, task, dataset, base_model, provenance, blobs_at=self.blobs.where)
        if generation is not None:
            dataset_vector = (record.dataset_id, dataset.embedding) if record.dataset_id is not None and dataset is not None else None
            self.indexes.module_added(generation, record.id, record.schema_hash, module.param_embedding, dataset_vector)
        return record, generation is not None

    def remove_module(self, module_id: int) -> ModuleRecord:
        """Delete a module's rows; its blob stays until `gc` (a concurrent push may share it)."""
        record, generation = self.catalog.remove_module(module_id)
        self.indexes.module_removed(generation, record.id, record.schema_hash)
        return record


def upgrade_registry(location: Location) -> tuple[str | None, str]:
    """Run the migrations on a registry (creating it if new); return (before, after) revisions."""
    if location.directory is not None:
        _ensure_directory(location.directory, create=True)
        _check_database_file(location, create=True)
    engine = make_engine(location.url)
    try:
        before = current_revision(engine)
        # A new registry gets its blob directory; an existing one must find its own. A database
        # registry upgraded without a blob location claims its blobs when it is first opened with them.
        spec = location.blobs or (str(location.directory / "blobs") if location.directory is not None and before is None else None)
        named = reach_blobs(spec, create=before is None) if spec else None
        upgrade(engine)
        catalog = Catalog(engine)
        recorded = catalog.blob_location()
        if named is not None or recorded or location.directory is not None:
            _chosen_blobs(location, named, recorded).claim(catalog.registry_id(), display_url(engine))
        return before, head_revision()
    finally:
        engine.dispose()


def open_blobs(spec: str | os.PathLike[str]) -> Blobs:
    """The blob store at a directory or at s3://BUCKET/PREFIX."""
    text = str(spec)
    if is_bucket(text):
        from store.s3blobs import S3Blobs  # boto3 costs ~0.4 s to import: only registries on a bucket pay it

        return S3Blobs.from_url(text)
    if "://" in text:
        raise StoreError(f"blob location {text} is neither a directory nor s3://BUCKET/PREFIX")
    return BlobStore(Path(text).expanduser().resolve())


def reach_blobs(spec: str, create: bool) -> Blobs:
    """The blob store at `spec`, checked: a directory exists and is writable (made when `create`), a bucket answers."""
    blobs = open_blobs(spec)
    if isinstance(blobs, BlobStore):
        _ensure_directory(blobs.root, create=create, what="blob directory")
    else:
        blobs.registry_id()  # a missing bucket or refused credentials fail here, before anything is written
    return blobs


def is_bucket(spec: str) -> bool:
    return spec.startswith("s3://")


def _chosen_blobs(location: Location, named: Blobs | None, recorded: str) -> Blobs:
    """The named blob location, else the recorded one, else a directory registry's blobs/; a named one must be the recorded one."""
    if named is None and location.blobs:
        named = reach_blobs(location.blobs, create=False)
    if named is not None and recorded and named.where != recorded:
        raise StoreError(f"this registry's blobs were moved to {recorded}, not {named.where}; name that location, or none")
    if named is not None:
        return named
    if recorded:
        return reach_blobs(recorded, create=False)
    if location.directory is not None:
        return reach_blobs(str(location.directory / "blobs"), create=False)
    raise StoreError(f"a {parse_url(location.url).get_backend_name()} registry needs a shared blob location (a directory or s3://BUCKET/PREFIX) in {BLOBS_ENV}")


def _check_embeddings(module: NewModule, dataset: DatasetInfo | None) -> None:
    vectors = [("parameter", module.param_embedding)] + ([("dataset", dataset.embedding)] if dataset is not None else [])
    for what, vector in vectors:
        # A zero or non-finite vector cannot be normalized: every index rebuild would fail on its row.
        if not (np.all(np.isfinite(vector)) and np.any(vector)):
            raise StoreError(f"the module's {what} embedding is zero or not finite; nothing was registered")


def _check_database_file(location: Location, create: bool) -> None:
    """A SQLite registry's database file is there (unless it may be created) and is a SQLite database."""
    url = parse_url(location.url)
    if url.get_backend_name() != "sqlite" or not url.database:
        return
    path = Path(url.database).expanduser()
    if not path.exists():
        if not create:
            where = location.directory if location.directory is not None and path.name == DATABASE_FILE else path
            raise NeedsUpgrade(f"{where} holds no registry (no {path.name}); {CREATE_HINT}")
        return
    if path.is_dir():
        raise StoreError(f"the registry database {path} is a directory, not a SQLite file; name the registry's directory or sqlite:///FILE")
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except OSError as error:
        raise StoreError(f"cannot read the registry database {path} ({error.strerror}); check its permissions") from None
    # SQLite makes a new database as an empty file (several processes creating one registry at once).
    if head and head != SQLITE_MAGIC:
        raise StoreError(f"{path} is not a SQLite database file; name a registry directory, or restore its {DATABASE_FILE} from a backup")


def _new_sqlite_registry(location: Location) -> bool:
    url = parse_url(location.url)
    return location.directory is not None and url.get_backend_name() == "sqlite" and not Path(url.database or "").exists()


def _ensure_directory(directory: Path, create: bool, what: str = "registry") -> None:
    if directory.exists() and not directory.is_dir():
        hint = "name the registry's directory or a database URL (sqlite:///FILE)" if what == "registry" else f"name a directory ({BLOBS_ENV})"
        raise StoreError(f"{what} {directory} is a file, not a directory; {hint}")
    try:
        if create:
            directory.mkdir(parents=True, exist_ok=True)
        if not directory.is_dir():
            raise FileNotFoundError
        probe = directory / f".write-probe-{socket.gethostname()}-{os.getpid()}-{os.urandom(4).hex()}"
        probe.touch()
        probe.unlink()
    except FileNotFoundError:
        if what == "registry":
            raise NeedsUpgrade(f"registry {directory} does not exist; {CREATE_HINT}") from None
        raise StoreError(f"{what} {directory} does not exist; create or mount it, or name the right one ({BLOBS_ENV})") from None
    except NotADirectoryError:
        above = next(parent for parent in directory.parents if parent.exists())
        raise StoreError(f"{what} {directory} cannot be made: {above} is a file, not a directory; choose another path") from None
    except OSError as error:
        raise StoreError(f"{what} {directory} is not writable ({error.strerror}); fix its permissions or choose another one") from None
