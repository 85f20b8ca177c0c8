"""The REST API application: every router under ``/api/v1``, problem documents for errors, OpenAPI published.

The app holds no state of its own but the :class:`~siprec_server.api.services.ApiServices` it was built
with; the server mounts it in its own event loop.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, FastAPI

from . import auth_routes, problems, users_routes
from .services import ApiServices

__all__ = ["API_PREFIX", "build_api"]

API_PREFIX = "/api/v1"
_OPTIONAL_ROUTERS = ("siprec_server.api.recordings",)  # mounted when present


def _version() -> str:
    try:
        return version("hangtar")
    except PackageNotFoundError:
        return "0"


def _routers() -> list[APIRouter]:
    routers = [auth_routes.router, users_routes.router]
    for name in _OPTIONAL_ROUTERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        routers.append(module.router)
    return routers


def build_api(services: ApiServices) -> FastAPI:
    app = FastAPI(
        title="Hangtár API",
        version=_version(),
        description="Recordings, their retention and access, users and API keys of one tenant. Errors are "
        "RFC 9457 problem documents.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.services = services
    problems.install(app)
    for router in _routers():
        app.include_router(router, prefix=API_PREFIX)
    return app
