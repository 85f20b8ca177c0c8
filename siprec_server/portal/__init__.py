"""The subscriber portal: server-rendered pages in Hungarian and English over the API's storage services.

:func:`build_portal` makes its routes (none in the OpenAPI document); :func:`mount_portal` adds them to the
API app once, beside ``/api/v1``, which is how the server serves both on one port::

    services = make_services(...)
    api = mount_portal(build_api(services), services)
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request

from ..api.services import ApiServices
from . import (
    access_pages,
    audit_page,
    consent_page,
    holds_page,
    login_pages,
    recording_page,
    recordings_page,
    settings_forms,
    settings_page,
    static_files,
)
from .guard import PortalState
from .peaks import PeaksCache

__all__ = ["build_portal", "mount_portal"]


def build_portal(services: ApiServices) -> APIRouter:
    """The portal's routes over ``services`` (the same :class:`ApiServices` the API is built with)."""
    state = PortalState(services=services, peaks=PeaksCache())

    def bind(request: Request) -> None:
        request.state.portal = state

    portal = APIRouter(include_in_schema=False)
    for module in (
        static_files,
        login_pages,
        recordings_page,
        recording_page,
        access_pages,
        holds_page,
        consent_page,
        settings_page,
        settings_forms,
        audit_page,
    ):
        portal.include_router(module.router, dependencies=[Depends(bind)])
    return portal


def mount_portal(api: FastAPI, services: ApiServices) -> FastAPI:
    """Serve the portal from ``api`` (made by :func:`siprec_server.api.build_api`); a second call changes
    nothing."""
    if not getattr(api.state, "portal_mounted", False):
        api.include_router(build_portal(services))
        api.state.portal_mounted = True
    return api
