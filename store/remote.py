"""A registry opened through its server (`adapters serve`): the same interface as a local one, over HTTP.

Every read and write is one request to the server, which holds the database, the blobs and the
indexes; what needs a model (embeddings, scoring, training) stays on this machine. A push uploads
the module's bytes first and its record second, as a local push writes the blob before the row.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np

from store.errors import AccessDenied, BlobCorrupt, DatabaseBusy, NotFound, StoreError, UploadTooLarge
from store.module_query import ModuleQuery
from store.records import BaseModelInfo, DatasetInfo, ModuleRecord, NewModule, Provenance, TaskInfo
from store.tokens import TokenRecord
from store.wire import push_to_json, record_from_json, token_from_json, vector_from_json, vector_to_json

TOKEN_ENV = "ADAPTERS_TOKEN"
API = "/api/v1"
# Id lists go in the query string; chunks keep each URL far below servers' line limits.
_IDS_PER_REQUEST = 400
_CHUNK = 1 << 20
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]+")


def is_server_url(spec: object) -> bool:
    return isinstance(spec, str) and spec.startswith(("http://", "https://"))


@dataclass(frozen=True)
class ServerLocation:
    url: str

    @property
    def display(self) -> str:
        return self.url


class RemoteRegistry:
    """A registry server as a registry: `catalog`, `blobs`, `indexes` and `tokens` answer like the local ones."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 60.0) -> None:
        url = url.rstrip("/")
        self.location = ServerLocation(url)
        token = (token if token is not None else os.environ.get(TOKEN_ENV) or "").strip() or None
        # A character a header cannot hold would make the HTTP library quote the header, secret and all, in its error.
        if token is not None and not _TOKEN.fullmatch(token):
            raise AccessDenied(f"{TOKEN_ENV} holds characters a token never has; set it to a token's secret as it was printed when the token was made")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url + API, headers=headers, timeout=timeout_s)
        try:
            self.info: dict[str, Any] = self.request("GET", "/info").json()
            self.registry_id = str(self.info["registry_id"])
            self.max_upload = int(self.info["max_upload"])
        except KeyError:
            self.http.close()
            raise StoreError(f"{url} answered, but not as a deltahub registry server; check the URL") from None
        except BaseException:
            self.http.close()
            raise
        self.catalog = RemoteCatalog(self)
        self.blobs = RemoteBlobs(self)
        self.indexes = RemoteIndexes(self)
        self.tokens = RemoteTokens(self)

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; a failure is a one-line StoreError (the token never appears in it)."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise self._unreachable(error) from None
        _raise_for(response)
        if response.status_code >= 300 or "json" not in response.headers.get("content-type", ""):
            raise StoreError(
                f"{self.location.url} answered {response.status_code} with {response.headers.get('content-type', 'no content type')}, not as a deltahub registry server; check the URL"
            )
        return response

    @contextmanager
    def stream(self, method: str, path: str) -> Iterator[httpx.Response]:
        try:
            with self.http.stream(method, path) as response:
                if response.is_error:
                    response.read()
                    _raise_for(response)
                yield response
        except httpx.HTTPError as error:
            raise self._unreachable(error) from None

    def _unreachable(self, error: httpx.HTTPError) -> StoreError:
        # A transport error's text is the OS's reason; a protocol error's may quote the request, headers included.
        reason = (
            str(error).splitlines()[0]
            if isinstance(error, httpx.TransportError) and not isinstance(error, httpx.ProtocolError) and str(error)
            else type(error).__name__
        )
        return StoreError(f"cannot reach the registry server {self.location.url} ({reason}); check the URL and that the registry server runs there")

    def add_module(
        self, data: bytes, module: NewModule, task: TaskInfo, dataset: DatasetInfo | None, base_model: BaseModelInfo, provenance: Provenance | None = None
    ) -> tuple[ModuleRecord, bool]:
        """Upload the bytes, then the record; as a local push, the module appears whole or not at all."""
        if hashlib.sha256(data).hexdigest() != module.blob_digest:
            raise StoreError(f"module bytes do not hash to the declared {module.blob_digest[:12]}; nothing was registered")
        if len(data) > self.max_upload:
            raise UploadTooLarge(
                f"the module is {len(data)} bytes, over the server's upload limit of {self.max_upload}; ask its admin to raise the server's upload limit"
            )
        if not module.created_host:
            module = replace(module, created_host=socket.gethostname())
        self.request("PUT", f"/blobs/{module.blob_digest}", content=data, headers={"Content-Type": "application/octet-stream"})
        answer = self.request("POST", "/modules", json=push_to_json(module, task, dataset, base_model, provenance)).json()
        return record_from_json(answer["module"]), bool(answer["created"])

    def remove_module(self, module_id: int) -> ModuleRecord:
        return record_from_json(self.request("DELETE", f"/modules/{module_id}").json())


class RemoteCatalog:
    def __init__(self, registry: RemoteRegistry) -> None:
        self.registry = registry

    def dataset_embedding(self, fingerprint: str) -> np.ndarray | None:
        values = self.registry.request("GET", f"/datasets/{fingerprint}/embedding").json()["embedding"]
        return None if values is None else vector_from_json(values)

    def get_module(self, module_id: int) -> ModuleRecord:
        return record_from_json(self.registry.request("GET", f"/modules/{module_id}").json())

    def list_modules(self, query: ModuleQuery = ModuleQuery()) -> list[ModuleRecord]:
        """Modules matching `query`, by id; a long id list is sent in several requests (a URL has a limit), their answers joined."""
        found = {}
        for part in query.split(_IDS_PER_REQUEST):
            for data in self.registry.request("GET", "/modules", params=part.to_params()).json():
                record = record_from_json(data)
                found[record.id] = record
        return [found[key] for key in sorted(found)]


class RemoteBlobs:
    def __init__(self, registry: RemoteRegistry) -> None:
        self.registry = registry

    def get(self, digest: str, owner: str = "") -> bytes:
        """Download a blob and check it against its address, as a local read re-hashes it."""
        chunks = []
        hasher = hashlib.sha256()
        with self.registry.stream("GET", f"/blobs/{digest}") as response:
            for chunk in response.iter_bytes(_CHUNK):
                hasher.update(chunk)
                chunks.append(chunk)
        if hasher.hexdigest() != digest:
            what = f" of {owner}" if owner else ""
            raise BlobCorrupt(
                f"blob {digest[:12]}{what} arrived from {self.registry.location.url} with other bytes; retry, or ask the server's admin to verify the registry"
            )
        return b"".join(chunks)


class RemoteIndexes:
    def __init__(self, registry: RemoteRegistry) -> None:
        self.registry = registry

    def search_datasets(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        return self._hits("/search/datasets", {"vector": vector_to_json(vector), "k": k})

    def search_parameters(self, schema_hash: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        return self._hits("/search/parameters", {"schema_hash": schema_hash, "vector": vector_to_json(vector), "k": k})

    def rebuild(self) -> dict[str, int]:
        return {str(name): int(size) for name, size in self.registry.request("POST", "/indexes/rebuild").json().items()}

    def _hits(self, path: str, body: dict[str, Any]) -> list[tuple[int, float]]:
        return [(int(row_id), float(score)) for row_id, score in self.registry.request("POST", path, json=body).json()]


class RemoteTokens:
    def __init__(self, registry: RemoteRegistry) -> None:
        self.registry = registry

    def create(self, name: str, scope: str) -> tuple[TokenRecord, str]:
        answer = self.registry.request("POST", "/tokens", json={"name": name, "scope": scope}).json()
        return token_from_json(answer["token"]), str(answer["secret"])

    def list(self) -> list[TokenRecord]:
        return [token_from_json(data) for data in self.registry.request("GET", "/tokens").json()]

    def revoke(self, name: str) -> TokenRecord:
        return token_from_json(self.registry.request("DELETE", f"/tokens/{quote(name, safe='')}").json())


# The server names the error's kind, so the client raises what a local registry would have raised.
_KINDS: dict[str, type[StoreError]] = {"busy": DatabaseBusy, "corrupt": BlobCorrupt, "too-large": UploadTooLarge, "denied": AccessDenied}


def _raise_for(response: httpx.Response) -> None:
    if not response.is_error:
        return
    try:
        body = response.json()
        detail, kind = str(body["detail"]), str(body.get("kind", ""))
    except (ValueError, KeyError, TypeError):
        detail, kind = f"the registry server answered {response.status_code} {response.reason_phrase}", ""
    if kind == "not-found" and isinstance(body.get("module_id"), int):
        raise NotFound(body["module_id"])
    if response.status_code in (401, 403):
        raise AccessDenied(detail)
    raise _KINDS.get(kind, StoreError)(detail)
