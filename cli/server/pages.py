"""The registry's web pages (server-rendered HTML): the module list, a module's page with its lineage, and the login form.

No JavaScript and nothing fetched from elsewhere: the pages work offline. Reads need a read token (kept in the
HttpOnly cookie `auth.COOKIE` by the login form) unless the server runs with `--public-read`.
"""

from __future__ import annotations

import json
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from cli.server.api import export_response
from cli.server.auth import COOKIE, Denied, authorize, presented_secret
from hub.serving import ModuleQuery, NotFound, RegistryService

router = APIRouter(include_in_schema=False)

HERE = FilePath(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
STYLE = HERE / "static" / "style.css"
ICON = HERE / "static" / "favicon.svg"

# Any id a database column holds; one that names no module gets the "not found" page.
ModuleId = Annotated[int, Path(ge=-(2**63), le=2**63 - 1, description="a module id, as `adapters list` shows it")]
Filter = Annotated[str | None, Query(max_length=512)]
Next = Annotated[str | None, Query(alias="next", max_length=2048)]
# The fields the list's select boxes filter on (exact), and those the search box matches (substring, any case).
FILTERS = ("base_model", "method", "category", "task")
SEARCHED = ("task", "category", "method", "base_model", "source")
MAX_LOGIN_BODY = 8192

# The weights chart: one row per source, bars scaled to the largest |weight|. Its labels are set in a monospace
# font (style.css: .chart .label) whose glyphs are 0.6 em wide, so the label column fits the longest label exactly.
CHART_BARS, CHART_LABEL, CHART_ROW, CHART_VALUE = 400, 170, 26, 70
CHART_FONT_PX, CHART_GLYPH_EM = 12, 0.6


def _service(request: Request) -> RegistryService:
    return request.app.state.service


def _page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    base = {"signed_in": presented_secret(request) is not None, "public_read": request.app.state.settings.public_read}
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code, headers={"Cache-Control": "no-store"})


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _reader(request: Request) -> Response | None:
    """None when the request may read; else the redirect to the login form."""
    try:
        authorize(request, "read")
    except Denied:
        return _login_redirect(request)
    return None


def _not_found(request: Request, line: str) -> HTMLResponse:
    return _page(request, "not_found.html", {"title": "Not found", "line": line}, status_code=404)


def _local(target: str | None) -> str:
    """Where to go after logging in: a path on this server, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/static/style.css")
def style() -> FileResponse:
    return FileResponse(STYLE, media_type="text/css", headers={"Cache-Control": "max-age=300"})


# Browsers ask for /favicon.ico whatever the page links; both answer with the one SVG icon.
@router.get("/static/favicon.svg")
@router.get("/favicon.ico")
def icon() -> FileResponse:
    return FileResponse(ICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


@router.get("/", response_class=HTMLResponse)
def module_list(
    request: Request,
    base_model: Filter = None,
    method: Filter = None,
    category: Filter = None,
    task: Filter = None,
    q: Filter = None,
) -> Response:
    denied = _reader(request)
    if denied is not None:
        return denied
    modules = _service(request).list_modules()
    chosen = {"base_model": base_model or "", "method": method or "", "category": category or "", "task": task or ""}
    options = {name: sorted({str(module[name]) for module in modules}) for name in FILTERS}
    text = (q or "").strip()
    shown = [module for module in modules if _matches(module, chosen, text.lower())]
    rows = [_row(module) for module in reversed(shown)]  # newest first
    return _page(
        request,
        "list.html",
        {
            "title": "Modules",
            "rows": rows,
            "total": len(modules),
            "options": options,
            "chosen": chosen,
            "q": text,
            "filtered": any(chosen.values()) or bool(text),
        },
    )


@router.get("/modules/{module_id}", response_class=HTMLResponse)
def module_page(request: Request, module_id: ModuleId) -> Response:
    denied = _reader(request)
    if denied is not None:
        return denied
    service = _service(request)
    try:
        module = service.get_module(module_id)
    except NotFound:
        return _not_found(request, f"No module {module_id} in this registry.")
    lineage = None
    if module.get("provenance") is not None:
        lineage = _lineage(service, module["provenance"])
    return _page(
        request,
        "module.html",
        {
            "title": f"Module {module_id}",
            "m": _row(module),
            "module": module,
            **_config(module.get("config") or {}),
            "lineage": lineage,
        },
    )


@router.get("/modules/{module_id}/download")
def download(request: Request, module_id: ModuleId) -> Response:
    """The Hub-ready export (PEFT files and model card), zipped: the API's /api/v1/modules/{id}/export."""
    denied = _reader(request)
    if denied is not None:
        return denied
    try:
        return export_response(_service(request), module_id)
    except NotFound:
        return _not_found(request, f"No module {module_id} in this registry.")


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, target: Next = None) -> HTMLResponse:
    return _page(request, "login.html", {"title": "Log in", "error": None, "next": _local(target)})


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOGIN_BODY:
            return _page(request, "login.html", {"title": "Log in", "error": "The form is too large.", "next": "/"}, status_code=413)
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=8)
    except ValueError:
        return _page(request, "login.html", {"title": "Log in", "error": "The form has too many fields.", "next": "/"}, status_code=400)
    secret = (fields.get("token") or [""])[0].strip()
    target = _local((fields.get("next") or ["/"])[0])
    token = await run_in_threadpool(_service(request).authenticate, secret) if secret else None
    if token is None:
        # One line, and never the token that was typed.
        error = "That token is unknown or revoked: ask an admin for one (`adapters token create NAME --scope read`)."
        return _page(request, "login.html", {"title": "Log in", "error": error, "next": target}, status_code=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, secret, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/")
    return response


@router.get("/logout")
def logout() -> RedirectResponse:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


def _matches(module: dict[str, Any], chosen: dict[str, str], text: str) -> bool:
    if any(value and str(module[name]) != value for name, value in chosen.items()):
        return False
    if not text:
        return True
    haystack = [str(module.get(name) or "") for name in SEARCHED] + [str(tag) for tag in module.get("tags") or ()]
    return any(text in value.lower() for value in haystack)


def _row(module: dict[str, Any]) -> dict[str, Any]:
    """A module's fields as the pages show them."""
    created = str(module.get("created_at") or "")
    return {
        **module,
        "params": f"{int(module.get('num_params') or 0):,}",
        "created": created[:16].replace("T", " "),
        "metric_items": [(name, _number(value)) for name, value in sorted((module.get("metrics") or {}).items())],
        "label_items": sorted((module.get("task_labels") or {}).items()),
    }


def _config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as the page shows it: its set fields, and every field behind a toggle (a PEFT config is mostly nulls)."""
    shown = {key: value for key, value in config.items() if value is not None}
    return {
        "config": json.dumps(shown, indent=2, sort_keys=True),
        "config_all": json.dumps(config, indent=2, sort_keys=True),
        "config_hidden": len(config) - len(shown),
        "config_total": len(config),
    }


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _lineage(service: RegistryService, provenance: dict[str, Any]) -> dict[str, Any]:
    """The provenance of a composed init, with its sources named and the weights chart laid out."""
    sources = provenance.get("sources") or []
    known = [source["module_id"] for source in sources if source["module_id"] > 0]
    tasks = {module["id"]: module["task"] for module in service.list_modules(ModuleQuery(ids=known))} if known else {}
    rows = []
    for source in sources:
        module_id = int(source["module_id"])
        digest = str(source.get("digest") or "")
        label = f"#{module_id} {tasks.get(module_id, '')}".strip() if module_id > 0 else digest[:12]
        rows.append(
            {
                "module_id": module_id,
                "linked": module_id > 0 and module_id in tasks,
                "task": tasks.get(module_id, ""),
                "digest": digest[:12],
                "label": label,
                "score": "—" if source.get("score") is None else f"{source['score']:.6g}",
                "weight": float(source["weight"]),
            }
        )
    return {
        "strategy": provenance.get("strategy"),
        "chosen": provenance.get("chosen"),
        "rationale": provenance.get("rationale") or "",
        "layers": provenance.get("layers") or "all",
        "combine": provenance.get("combine") or "linear",
        "temperature": _number(provenance.get("temperature")),
        "top_k": provenance.get("top_k"),
        "target_fingerprint": provenance.get("target_fingerprint") or "",
        "sources": rows,
        "chart": _chart(rows),
    }


def _chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Bars for the weights: to the right of the axis for positive weights, to the left (another colour) for negative ones."""
    largest = max((abs(row["weight"]) for row in rows), default=0.0) or 1.0
    signed = any(row["weight"] < 0 for row in rows)
    label = max([CHART_LABEL, *(round(len(row["label"]) * CHART_FONT_PX * CHART_GLYPH_EM) + 16 for row in rows)])
    width = label + CHART_BARS + CHART_VALUE
    area = CHART_BARS
    axis = label + (area / 2 if signed else 0)
    span = area / 2 if signed else area
    bars = []
    for index, row in enumerate(rows):
        length = abs(row["weight"]) / largest * span
        negative = row["weight"] < 0
        y = 8 + index * CHART_ROW
        bars.append(
            {
                "label": row["label"],
                "weight": f"{row['weight']:.4f}",
                "x": round(axis - length if negative else axis, 2),
                "y": y,
                "width": round(max(length, 0.5), 2),
                "height": CHART_ROW - 8,
                "negative": negative,
                "text_y": y + (CHART_ROW - 8) / 2 + 4,
                "value_x": round(width - CHART_VALUE + 6, 2),
            }
        )
    height = 16 + len(rows) * CHART_ROW
    return {"width": width, "height": height, "axis": round(axis, 2), "label_x": label - 8, "bars": bars, "axis_bottom": height - 4}
