"""Errors of the REST API as RFC 9457 problem documents (``application/problem+json``).

A handler raises :class:`ApiProblem`, or lets a storage domain error through; :func:`install` maps each to
its status with a message meant for the caller. A request for another tenant's object is answered exactly
like one for a missing object (404, no hint). Bad input is 422 with one entry per field in ``errors``
(never echoing the value sent: it may be a password). Anything unexpected is 500 with a generic detail; the
traceback goes to the log, the exception text never to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storage.errors import (
    ConflictError,
    KeyUnavailableError,
    LifecycleError,
    NotFoundError,
    StatutoryFloorError,
    TwoPersonRuleError,
    UnderHoldError,
)
from storage.login_limit import LoginThrottledError
from storage.s3_errors import BlobStoreError

__all__ = [
    "PROBLEM_JSON",
    "ApiProblem",
    "FieldError",
    "install",
    "not_found",
    "problem_response",
    "throttled",
]

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_BLANK = "about:blank"  # RFC 9457 §4.2.1: the title is then the status phrase
_PHRASES = {
    413: "Content Too Large",
    422: "Unprocessable Content",
}  # RFC 9110 §15.5 (Python 3.11 has older ones)


def _phrase(status: int) -> str:
    try:
        return _PHRASES.get(status) or HTTPStatus(status).phrase
    except ValueError:  # a status Python does not name
        return "Error"


class ApiProblem(Exception):
    """An error answer: ``status``, a short ``title`` and a ``detail`` for this occurrence. ``type`` is a URI
    naming the kind of problem when clients act on it (e.g. a password change required)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        type: str = _BLANK,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[FieldError] = (),
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title or _phrase(status)
        self.detail = detail
        self.type = type
        self.headers = dict(headers or {})
        self.errors = tuple(errors)


FieldError = dict[str, str]  # {"field": "body.email", "message": "...", "type": "..."}


def not_found(kind: str) -> ApiProblem:
    """404 for an object of ``kind`` that does not exist, or is another tenant's (the same answer)."""
    return ApiProblem(404, f"no such {kind}")


def problem_response(problem: ApiProblem, request: Request | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem.type,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if request is not None:
        body["instance"] = request.url.path
    if problem.errors:
        body["errors"] = list(problem.errors)
    return JSONResponse(body, status_code=problem.status, headers=problem.headers, media_type=PROBLEM_JSON)


def _field_errors(errors: Sequence[Any]) -> list[FieldError]:
    out: list[FieldError] = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ()))
        out.append(
            {
                "field": location or "body",
                "message": str(error.get("msg", "invalid value")),
                "type": str(error.get("type", "value_error")),
            }
        )
    return out


_Handler = Callable[[Request, Any], Awaitable[Response]]


def _simple(status: int, *, title: str | None = None) -> _Handler:
    async def handler(request: Request, exc: Any) -> Response:
        return problem_response(ApiProblem(status, str(exc), title=title), request)

    return handler


async def _api_problem(request: Request, exc: Any) -> Response:
    return problem_response(exc, request)


async def _validation(request: Request, exc: Any) -> Response:
    errors = _field_errors(exc.errors())
    return problem_response(ApiProblem(422, "the request is not valid: see errors", errors=errors), request)


async def _http(request: Request, exc: Any) -> Response:
    status = int(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) else _phrase(status)
    if status == 404 and detail == "Not Found":
        detail = "no such resource"
    problem = ApiProblem(status, detail, headers=getattr(exc, "headers", None))
    if status in (204, 304) or status < 200:
        return Response(status_code=status, headers=problem.headers)
    return problem_response(problem, request)


async def _throttled(request: Request, exc: Any) -> Response:
    return problem_response(throttled(exc), request)


def throttled(exc: LoginThrottledError) -> ApiProblem:
    seconds = exc.retry_after_seconds
    return ApiProblem(
        429,
        f"too many failed logins; try again in {seconds} seconds",
        type="urn:hangtar:problem:login-throttled",
        headers={"Retry-After": str(seconds)},
    )


async def _store_unreachable(request: Request, exc: Any) -> Response:
    log.error("answering %s with 503: %s", request.url.path, exc)
    return problem_response(
        ApiProblem(503, "the recording's storage cannot be reached now; try again later"), request
    )


async def _key_gone(request: Request, exc: Any) -> Response:
    return problem_response(ApiProblem(410, "the recording's key was destroyed"), request)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app`` and the last-resort 500 as its outermost own middleware."""
    handlers: list[tuple[type[Exception], _Handler]] = [
        (ApiProblem, _api_problem),
        (RequestValidationError, _validation),
        (pydantic.ValidationError, _validation),
        (StarletteHTTPException, _http),
        (NotFoundError, _simple(404)),
        (ConflictError, _simple(409)),
        (UnderHoldError, _simple(409)),
        (StatutoryFloorError, _simple(409)),
        (TwoPersonRuleError, _simple(409)),
        (LifecycleError, _simple(422)),  # PolicyRuleError too
        (ValueError, _simple(422)),
        (KeyUnavailableError, _key_gone),
        (BlobStoreError, _store_unreachable),  # the object store down: the audio is there, not reachable now
        (LoginThrottledError, _throttled),
    ]
    for kind, handler in handlers:
        app.add_exception_handler(kind, handler)
    app.add_middleware(InternalErrorMiddleware)


class InternalErrorMiddleware:
    """Pure ASGI: an exception no handler took becomes a generic 500 problem; the traceback is logged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("internal error answering %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            problem = ApiProblem(500, "the server failed to answer this request; it has been logged")
            response = problem_response(problem, Request(scope))
            response.headers["Cache-Control"] = "no-store"
            await response(scope, receive, send)
