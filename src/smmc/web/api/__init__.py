"""The REST API's routers, gathered so the app mounts them in one place."""

from __future__ import annotations

from fastapi import APIRouter

from smmc.web.api import assets, maps

api_router = APIRouter()
api_router.include_router(assets.router)
api_router.include_router(maps.router)

__all__ = ["api_router"]
