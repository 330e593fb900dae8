"""The registry server's application: the JSON API, the web pages, and how failures become answers."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from cli.server import api, pages
from cli.server.auth import Denied, ServerSettings
from hub.serving import USER_ERRORS, BlobCorrupt, DatabaseBusy, NotFound, RegistryService, UploadTooLarge

# `adapters serve --workers N` starts N processes, each building the app from these settings.
SETTINGS_ENV = "DELTAHUB_SERVER_SETTINGS"


def create_app(settings: ServerSettings) -> FastAPI:
    """The server over one registry (opened now, so a bad --registry fails before the port opens)."""
    service = RegistryService(settings.registry, settings.blobs)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        service.close()

    # The summary does not name the registry: the schema is readable without a token.
    app = FastAPI(title="deltahub registry", summary="Modules, their blobs and their search, behind tokens", lifespan=lifespan)
    app.state.service = service
    app.state.settings = settings
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["*"], allow_headers=["*"])
    app.add_middleware(BodyLimit, limit=JSON_BODY_LIMIT)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.add_exception_handler(Denied, _denied)
    app.add_exception_handler(RequestValidationError, _invalid)
    for error in USER_ERRORS:
        app.add_exception_handler(error, _user_error)
    return app


def app_from_env() -> FastAPI:
    """The app of one worker process of `adapters serve --workers N`."""
    fields = json.loads(os.environ[SETTINGS_ENV])
    return create_app(ServerSettings(**{**fields, "cors_origins": tuple(fields["cors_origins"])}))


def settings_env(settings: ServerSettings) -> str:
    return json.dumps(asdict(settings))


# Records, queries and forms are small; only a blob upload is big, and --max-upload bounds it as it streams.
JSON_BODY_LIMIT = 64 << 20


class BodyLimit:
    """Refuses, by its declared length and before anything is read, a request body over `limit` bytes, blob uploads aside.

    FastAPI reads a JSON body before the dependencies that check the token run, so without this a
    request without a token could make the server buffer and parse any amount of data.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not (scope["method"] == "PUT" and scope["path"].startswith(f"{api.router.prefix}/blobs/")):
            declared = dict(scope["headers"]).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.limit:
                detail = f"the request body ({int(declared)} bytes) is over the server's limit of {self.limit} bytes for anything but a blob upload"
                await JSONResponse({"detail": detail, "kind": "too-large"}, status_code=413)(scope, receive, send)
                return
        await self.app(scope, receive, send)


# Each answer to a failure is {"detail": one line, "kind": what store.remote raises again}.
_STATUS: list[tuple[type[Exception], int, str]] = [
    (NotFound, 404, "not-found"),
    (UploadTooLarge, 413, "too-large"),
    (BlobCorrupt, 422, "corrupt"),
    (DatabaseBusy, 503, "busy"),
]


async def _user_error(request: Request, error: Exception) -> JSONResponse:
    for kind, status, name in _STATUS:
        if isinstance(error, kind):
            body = {"detail": str(error), "kind": name}
            if isinstance(error, NotFound):
                body["module_id"] = error.module_id
            return JSONResponse(body, status_code=404 if isinstance(error, BlobCorrupt) and request.method == "GET" else status)
    return JSONResponse({"detail": str(error), "kind": "error"}, status_code=400)


async def _denied(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Denied)
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse({"detail": error.detail, "kind": "denied"}, status_code=error.status, headers=headers)


async def _invalid(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return JSONResponse({"detail": f"invalid request: {where}: {first.get('msg', 'invalid')}", "kind": "invalid"}, status_code=422)
