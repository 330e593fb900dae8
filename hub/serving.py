"""What the registry server (cli/server) asks of the registry it fronts, in JSON terms.

The server only moves records, vectors and bytes: it never loads a model. Clients compute
embeddings and scores on their own machines and send the results (see store.remote).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hub.api import Hub
from hub.errors import USER_ERRORS, HubError
from store.blobs import BlobUpload
from store.errors import BlobCorrupt, DatabaseBusy, NotFound, UploadTooLarge
from store.module_query import ModuleQuery
from store.registry import REGISTRY_ENV, Registry
from store.remote import is_server_url
from store.tokens import SCOPES, TokenRecord, allows
from store.wire import push_from_json, record_to_json, vector_from_json, vector_to_json

# The server's error mapping and its module listing name these; it imports nothing below hub.
__all__ = ["SCOPES", "USER_ERRORS", "BlobCorrupt", "DatabaseBusy", "ModuleQuery", "NotFound", "RegistryService", "TokenRecord", "UploadTooLarge", "allows"]


class RegistryService:
    """A local registry opened for serving: reads and writes by JSON, blob files by path, tokens."""

    def __init__(self, registry: str | os.PathLike[str] | None, blobs: str | os.PathLike[str] | None) -> None:
        spec = registry if registry is not None else os.environ.get(REGISTRY_ENV)
        if is_server_url(spec):
            raise HubError("`adapters serve` fronts a registry directory or database URL, not another server's URL")
        # A server fronts a registry that exists: a mistyped path is an error, not a new empty registry.
        self.hub = Hub(registry, blobs, create=False)
        assert isinstance(self.hub.registry, Registry)
        self.registry: Registry = self.hub.registry
        self.registry.blobs  # noqa: B018 (reached now: a missing bucket or refused credentials fail before the port opens)

    def close(self) -> None:
        self.hub.close()

    @property
    def registry_id(self) -> str:
        return self.registry.registry_id

    @property
    def display(self) -> str:
        return self.registry.location.display

    def list_modules(self, query: ModuleQuery = ModuleQuery()) -> list[dict[str, Any]]:
        return [record_to_json(record) for record in self.registry.catalog.list_modules(query)]

    def get_module(self, module_id: int) -> dict[str, Any]:
        return record_to_json(self.registry.catalog.get_module(module_id))

    def remove_module(self, module_id: int) -> dict[str, Any]:
        return record_to_json(self.hub.remove(module_id))

    def add_module(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Register a pushed record whose blob was uploaded first; a malformed record is a HubError."""
        try:
            parts = push_from_json(payload)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise HubError(f"malformed module record ({type(error).__name__}: {error}); push with this deltahub's client") from None
        record, created = self.registry.add_stored_module(*parts)
        return {"module": record_to_json(record), "created": created}

    def dataset_embedding(self, fingerprint: str) -> list[float] | None:
        vector = self.registry.catalog.dataset_embedding(fingerprint)
        return None if vector is None else vector_to_json(vector)

    def search_datasets(self, vector: list[float], k: int) -> list[tuple[int, float]]:
        return self.registry.indexes.search_datasets(vector_from_json(vector), k)

    def search_parameters(self, schema_hash: str, vector: list[float], k: int) -> list[tuple[int, float]]:
        return self.registry.indexes.search_parameters(schema_hash, vector_from_json(vector), k)

    def rebuild_indexes(self) -> dict[str, int]:
        return self.hub.rebuild_indexes()

    def read_blob(self, digest: str) -> Iterator[bytes] | None:
        """A blob's bytes in pieces (the client re-hashes them), from a directory or a bucket; None when absent."""
        return self.registry.blobs.read(digest)

    def receive_blob(self, digest: str, max_bytes: int) -> BlobUpload:
        return self.registry.blobs.receive(digest, max_bytes)

    def export_zip(self, module_id: int) -> tuple[str, Path]:
        """The module as `adapters export` writes it (PEFT files and model card), zipped into a file in a scratch
        directory of its own, so the answer streams from disk however big the module; (file name, path).

        The caller removes the scratch directory (`path.parent`) once the file is sent.
        """
        name = f"module-{module_id}"
        scratch = Path(tempfile.mkdtemp(prefix="deltahub-export-"))
        try:
            folder = self.hub.export(module_id, scratch / name)
            archive_path = scratch / f"{name}.zip"
            with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(folder.rglob("*")):
                    if path.is_file():
                        archive.write(path, f"{name}/{path.relative_to(folder)}")
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return archive_path.name, archive_path

    def authenticate(self, secret: str) -> TokenRecord | None:
        return self.registry.tokens.authenticate(secret)

    def create_token(self, name: str, scope: str) -> tuple[TokenRecord, str]:
        return self.registry.tokens.create(name, scope)

    def list_tokens(self) -> list[TokenRecord]:
        return self.registry.tokens.list()

    def revoke_token(self, name: str) -> TokenRecord:
        return self.registry.tokens.revoke(name)
