"""The REST API (``/api/v1``): FastAPI routers over the storage services, built by :func:`build_api`."""

from .app import API_PREFIX, build_api
from .deps import Caller, client_origin, require, services
from .problems import ApiProblem, not_found
from .services import ApiServices, make_services

__all__ = [
    "API_PREFIX",
    "ApiProblem",
    "ApiServices",
    "Caller",
    "build_api",
    "client_origin",
    "make_services",
    "not_found",
    "require",
    "services",
]
