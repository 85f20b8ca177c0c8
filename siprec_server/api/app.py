"""The REST API application: every router under ``/api/v1``, problem documents for errors, OpenAPI published.

The app holds no state of its own but the :class:`~siprec_server.api.services.ApiServices` it was built
with; the server mounts it in its own event loop.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, FastAPI

from ..delivery.download_routes import build_router as delivery_download_router
from ..delivery.link_signing import LinkSigner
from . import (
    access_routes,
    audit_routes,
    auth_routes,
    consent_routes,
    holds_routes,
    problems,
    recordings,
    settings_routes,
    users_routes,
)
from .services import ApiServices

__all__ = ["API_PREFIX", "build_api"]

API_PREFIX = "/api/v1"


def _version() -> str:
    try:
        return version("hangtar")
    except PackageNotFoundError:
        return "0"


def _routers() -> list[APIRouter]:
    return [
        auth_routes.router,
        users_routes.router,
        recordings.router,
        holds_routes.router,
        access_routes.router,
        consent_routes.router,
        settings_routes.router,
        audit_routes.router,
    ]


def build_api(services: ApiServices, *, link_signer: LinkSigner | None = None) -> FastAPI:
    """``link_signer``: serve the signed download links of CRM deliveries (``/api/v1/deliveries/…/audio``)."""
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
    if link_signer is not None:
        app.include_router(delivery_download_router(link_signer), prefix=API_PREFIX)
    return app
