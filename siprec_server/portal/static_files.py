"""``/static/{name}``: the portal's one stylesheet and one script, from the package, nothing else.

Pages link them with their hash in the query (:func:`siprec_server.portal.web.static_url`), so they may be
cached for a day: a new version has a new URL.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from .errors import PageError, PortalRoute
from .web import STATIC_DIR, STATIC_FILES

__all__ = ["router"]

router = APIRouter(route_class=PortalRoute)

_CONTENT = {name: (STATIC_DIR / name).read_bytes() for name in STATIC_FILES}


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in _CONTENT:
        raise PageError(404)
    return Response(
        _CONTENT[name], media_type=STATIC_FILES[name], headers={"Cache-Control": "public, max-age=86400"}
    )
