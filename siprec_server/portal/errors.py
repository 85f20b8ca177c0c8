"""What a portal page answers besides itself: a redirect, or an error page in the reader's language.

Handlers raise :class:`Redirect` (log in first, change the one-time password first) or :class:`PageError`
(403 without the permission, 404 for a missing object or another tenant's — the same page, no hint); the
route class :class:`PortalRoute` turns them, the storage domain errors and anything unexpected into HTML
pages, so a browser never sees the API's problem documents. A refusal by a storage service that a page did
not show itself is a 409 (a hold, a statutory floor, the two-person rule, a conflict) or 422 page (another
data-protection rule, input the service found invalid) with the service's reason, as the API answers it;
never a 500. Every portal answer gets the security headers of :func:`siprec_server.portal.web.secure`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from storage.errors import (
    ConflictError,
    KeyUnavailableError,
    LifecycleError,
    NotFoundError,
    StatutoryFloorError,
    TwoPersonRuleError,
    UnderHoldError,
)
from storage.s3_errors import BlobStoreError

from .i18n import Message
from .web import page, secure

__all__ = ["PageError", "PortalRoute", "Redirect"]

log = logging.getLogger(__name__)

_PAGES = frozenset({400, 403, 404, 410, 500, 503})  # the statuses with a message of their own


class Redirect(Exception):
    """Answer ``303 See Other`` to ``location`` (a path of this site)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class PageError(Exception):
    """An error page: ``status`` and the message key that explains it (``detail``: extra text after it)."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message or f"error.{status}")
        self.status = status
        self.message = message or f"error.{status}"
        self.detail = detail
        self.headers = dict(headers or {})


def error_page(request: Request, error: PageError) -> Response:
    fields = {} if error.detail is None else {"detail": error.detail}
    response = page(request, "error.html", status=error.status, message=Message(error.message, fields))
    response.headers.update(error.headers)
    return response


def _invalid_input(request: Request, exc: RequestValidationError) -> PageError:
    """A malformed path parameter (an id that is no uuid) names nothing: 404; bad query or form input: 400."""
    in_path = any(tuple(error.get("loc", ()))[:1] == ("path",) for error in exc.errors())
    return PageError(404) if in_path else PageError(400)


class PortalRoute(APIRoute):
    """A route whose failures are pages, and whose every answer carries the portal's security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def portal_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except Redirect as redirect:
                response = RedirectResponse(redirect.location, status_code=303)
            except PageError as error:
                response = error_page(request, error)
            except RequestValidationError as exc:
                response = error_page(request, _invalid_input(request, exc))
            except HTTPException as exc:  # raised by the framework itself, e.g. a form too large
                status = exc.status_code if 400 <= exc.status_code < 600 else 500
                response = error_page(request, PageError(status if status in _PAGES else 400))
            except NotFoundError:
                response = error_page(request, PageError(404))
            except KeyUnavailableError:
                response = error_page(request, PageError(410))
            except BlobStoreError as exc:  # the object store down
                log.error("portal: %s %s: %s", request.method, request.url.path, exc)
                response = error_page(request, PageError(503))
            except (UnderHoldError, StatutoryFloorError, TwoPersonRuleError, ConflictError) as exc:
                response = error_page(request, PageError(409, "error.refused", detail=str(exc)))
            except (LifecycleError, ValueError) as exc:  # as the API maps them (api.problems.install)
                response = error_page(request, PageError(422, "error.refused", detail=str(exc)))
            except Exception:
                log.exception("portal: internal error answering %s %s", request.method, request.url.path)
                response = error_page(request, PageError(500))
            return secure(response)

        return portal_handler
