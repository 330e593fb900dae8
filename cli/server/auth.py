"""Who may do what on the registry server: bearer tokens (API) or the same token in a cookie (web pages).

Scopes nest: read < write < admin. Reads may be open to all (`--public-read`). A refusal names the
scope needed and how to get it, never the token that was sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hub.serving import RegistryService, TokenRecord, allows

COOKIE = "deltahub_token"


@dataclass(frozen=True)
class ServerSettings:
    registry: str | None
    blobs: str | None
    public_read: bool = False
    max_upload: int = 2 << 30
    cors_origins: tuple[str, ...] = ()


class Denied(Exception):
    """A request without the token its action needs: 401 (no token, or an unknown or revoked one) or 403 (too small a scope)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def presented_secret(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.cookies.get(COOKIE) or None


def authorize(request: Request, scope: str) -> TokenRecord | None:
    """The request's token if it grants `scope`; None for an open read without a token; else Denied."""
    service: RegistryService = request.app.state.service
    settings: ServerSettings = request.app.state.settings
    secret = presented_secret(request)
    if scope == "read" and settings.public_read and (secret is None or request.headers.get("authorization") is None):
        # Open reads: no token needed, and a stale cookie (a revoked token's) must not lock the pages.
        return None
    if secret is None:
        raise Denied(
            401,
            f"this registry server needs a token of scope {scope}: set ADAPTERS_TOKEN (an admin creates one with `adapters token create NAME --scope {scope}`)",
        )
    token = service.authenticate(secret)
    if token is None:
        raise Denied(401, f"the token is unknown or revoked; this needs a token of scope {scope}: ask an admin for a new one")
    if not allows(token.scope, scope):
        raise Denied(403, f"token {token.name!r} has scope {token.scope}; this needs {scope}: ask an admin for a token of scope {scope}")
    return token


# Declared so that the OpenAPI schema says how to authenticate; `authorize` reads the header itself (or the cookie).
BEARER = HTTPBearer(auto_error=False, description="a token from `adapters token create NAME --scope read|write|admin`")


def require(scope: str) -> Callable[..., TokenRecord | None]:
    """A FastAPI dependency that admits requests whose token grants `scope`."""

    def dependency(request: Request, _bearer: HTTPAuthorizationCredentials | None = Depends(BEARER)) -> TokenRecord | None:
        return authorize(request, scope)

    return dependency
