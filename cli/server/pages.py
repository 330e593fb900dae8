"""The registry's web pages (server-rendered HTML)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
