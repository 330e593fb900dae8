"""The registry server's JSON API, under /api/v1: what store.remote calls for every CLI verb and `Hub`."""

from __future__ import annotations

import shutil
from dataclasses import fields
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from cli.server.auth import ServerSettings, require
from hub.serving import SCOPES, BlobCorrupt, ModuleQuery, RegistryService, UploadTooLarge

router = APIRouter(prefix="/api/v1")

SHA256 = r"^[0-9a-f]{64}$"
Digest = Annotated[str, Path(pattern=SHA256, description="sha256 hex of the blob's bytes")]
# Any id a database column holds; one that names no module is NotFound, as it is locally.
ModuleId = Annotated[int, Path(ge=-(2**63), le=2**63 - 1, description="a module id, as `adapters list` shows it")]
TokenName = Annotated[str, Path(min_length=1, max_length=512, description="a token's name, as `adapters token list` shows it")]
Read = Depends(require("read"))
Write = Depends(require("write"))
Admin = Depends(require("admin"))


def service_of(request: Request) -> RegistryService:
    return request.app.state.service


Service = Annotated[RegistryService, Depends(service_of)]


class DatasetQuery(BaseModel):
    vector: list[float] = Field(min_length=1)
    k: int = Field(ge=1)


class ParameterQuery(DatasetQuery):
    schema_hash: str = Field(pattern=r"^[0-9a-f]{16,64}$")


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=512)  # the token store says what a good name is, as locally
    scope: str = Field(pattern="^(" + "|".join(SCOPES) + ")$")


@router.get("/info", summary="The registry behind this server (no token needed)")
def info(request: Request, service: Service) -> dict[str, Any]:
    settings: ServerSettings = request.app.state.settings
    return {"registry_id": service.registry_id, "public_read": settings.public_read, "max_upload": settings.max_upload}


def module_query(request: Request) -> ModuleQuery:
    """GET /modules' filters, read as `ModuleQuery.to_params` writes them; a malformed id list is a 422."""
    try:
        return ModuleQuery.from_params(request.query_params)
    except ValueError as error:
        raise RequestValidationError([{"loc": ("query",), "msg": str(error), "type": "value_error"}]) from None


# The schema names ModuleQuery's filters, read from its fields, since the handler reads them from the request.
MODULE_FILTERS = [
    {"name": item.name, "in": "query", "required": False, "schema": {"type": "string"}, "description": item.metadata["doc"]} for item in fields(ModuleQuery)
]


@router.get("/modules", dependencies=[Read], summary="Modules matching every filter given, by id", openapi_extra={"parameters": MODULE_FILTERS})
def list_modules(service: Service, query: Annotated[ModuleQuery, Depends(module_query)]) -> list[dict[str, Any]]:
    return service.list_modules(query)


@router.get("/modules/{module_id}", dependencies=[Read], summary="One module, its provenance included")
def get_module(module_id: ModuleId, service: Service) -> dict[str, Any]:
    return service.get_module(module_id)


@router.delete("/modules/{module_id}", dependencies=[Admin], summary="Remove a module's rows (its blob stays until `adapters gc`)")
def remove_module(module_id: ModuleId, service: Service) -> dict[str, Any]:
    return service.remove_module(module_id)


@router.post("/modules", dependencies=[Write], summary="Register a module whose blob was uploaded first")
def add_module(payload: dict[str, Any], service: Service) -> dict[str, Any]:
    return service.add_module(payload)


@router.get(
    "/modules/{module_id}/export",
    dependencies=[Read],
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}}},
    summary="The module as a Hub-ready folder (PEFT files and model card), zipped",
)
def export_module(module_id: ModuleId, service: Service) -> FileResponse:
    return export_response(service, module_id)


def export_response(service: RegistryService, module_id: int) -> FileResponse:
    """The export's zip, streamed from its scratch file, which goes once it is sent."""
    name, path = service.export_zip(module_id)
    return FileResponse(path, media_type="application/zip", filename=name, background=BackgroundTask(shutil.rmtree, path.parent, ignore_errors=True))


@router.get("/datasets/{fingerprint}/embedding", dependencies=[Read], summary="A known dataset's embedding (null when unknown)")
def dataset_embedding(fingerprint: Digest, service: Service) -> dict[str, list[float] | None]:
    return {"embedding": service.dataset_embedding(fingerprint)}


@router.post("/search/datasets", dependencies=[Read], summary="Dataset ids nearest to an embedding, with their scores")
def search_datasets(query: DatasetQuery, service: Service) -> list[tuple[int, float]]:
    return service.search_datasets(query.vector, query.k)


@router.post("/search/parameters", dependencies=[Read], summary="Module ids nearest to a parameter sketch, within one tensor schema")
def search_parameters(query: ParameterQuery, service: Service) -> list[tuple[int, float]]:
    return service.search_parameters(query.schema_hash, query.vector, query.k)


@router.post("/indexes/rebuild", dependencies=[Admin], summary="Rebuild the faiss indexes from the database")
def rebuild_indexes(service: Service) -> dict[str, int]:
    return service.rebuild_indexes()


@router.get(
    "/blobs/{digest}",
    dependencies=[Read],
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
    summary="A blob's bytes; the client checks them against the digest",
)
def get_blob(digest: Digest, service: Service) -> StreamingResponse:
    pieces = service.read_blob(digest)
    if pieces is None:
        raise BlobCorrupt(f"blob {digest[:12]} is not on the registry server; its admin can run `adapters verify`")
    return StreamingResponse(pieces, media_type="application/octet-stream", headers={"X-Content-SHA256": digest})


@router.put(
    "/blobs/{digest}",
    dependencies=[Write],
    status_code=201,
    openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
    summary="Upload a blob (the raw bytes, streamed); refused unless they hash to the digest and fit --max-upload",
)
async def put_blob(digest: Digest, request: Request, service: Service) -> dict[str, Any]:
    settings: ServerSettings = request.app.state.settings
    declared = request.headers.get("content-length")
    # Refused before a byte is read: the declared length alone is over the limit.
    if declared is not None and declared.isdigit() and int(declared) > settings.max_upload:
        raise UploadTooLarge(f"the upload ({declared} bytes) is over the server's limit of {settings.max_upload} bytes; nothing was stored")
    upload = await run_in_threadpool(service.receive_blob, digest, settings.max_upload)
    try:
        async for chunk in request.stream():
            upload.write(chunk)
        await run_in_threadpool(upload.commit)
    except BaseException:  # the client went away (ClientDisconnect), the limit, a full disk: no temp file stays behind
        upload.abort()
        raise
    return {"digest": digest, "size": upload.size}


@router.get("/tokens", dependencies=[Admin], summary="Every token (never its secret)")
def list_tokens(service: Service) -> list[dict[str, Any]]:
    return [token.to_json() for token in service.list_tokens()]


@router.post("/tokens", dependencies=[Admin], status_code=201, summary="Create a token; its secret is in this answer only")
def create_token(new: NewToken, service: Service) -> dict[str, Any]:
    token, secret = service.create_token(new.name, new.scope)
    return {"token": token.to_json(), "secret": secret}


@router.delete("/tokens/{name}", dependencies=[Admin], summary="Revoke a token")
def revoke_token(name: TokenName, service: Service) -> dict[str, Any]:
    return service.revoke_token(name).to_json()
