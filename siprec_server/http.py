"""HTTP surface served in the server's own event loop: ``/healthz``, ``/metrics`` and the REST API (``/api/v1``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from .metrics import Metrics

__all__ = ["HttpServer", "build_app"]

Health = Callable[[], Awaitable[dict[str, Any]]]


def build_app(metrics: Metrics, health: Health, api: ASGIApp | None = None) -> Starlette:
    """``api`` (the REST API, routes under ``/api/v1``) answers every path not served here."""

    async def healthz(request: Request) -> Response:
        report = await health()
        status = 200 if report.get("status") in ("ok", "draining") else 503
        return JSONResponse(report, status_code=status)

    async def metrics_endpoint(request: Request) -> Response:
        # Rendered on a worker thread: at 1,000 calls a scrape is tens of milliseconds of Python, a stall SIP
        # would wait out on the event loop; from a thread the loop takes the GIL back every switch interval.
        # The collectors read the calls through snapshots (CallManager.rtp_totals, the SIP counters).
        body = await asyncio.to_thread(generate_latest, metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = [Route("/healthz", healthz), Route("/metrics", metrics_endpoint)]
    if api is not None:
        routes.append(Mount("/", app=api))
    return Starlette(routes=routes)


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn inside our loop: the server process owns signal handling, not uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpServer:
    def __init__(self, app: Starlette, *, host: str, port: int) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
        self._server = _EmbeddedUvicorn(config)

    async def serve(self) -> None:
        await self._server.serve()

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    def stop(self) -> None:
        self._server.should_exit = True
