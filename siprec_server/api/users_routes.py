"""A tenant's users and API keys (permission ``users``): list, create, change role, disable, revoke.

A new user's one-time password and a new key's secret are in the creation response only; they are stored
hashed and never shown again. Every object is the caller's tenant's: another tenant's user or key is 404,
exactly like a missing one. Lists are cursor-paginated (``cursor``, ``limit`` 1-200).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from storage.api_keys import ApiKey
from storage.audit import AuditEntry
from storage.errors import NotFoundError
from storage.principal import Permission, Principal, Role
from storage.users import User

from .deps import client_origin, require, services
from .fields import TEXT
from .problems import PROBLEM_JSON, ApiProblem, not_found
from .services import ApiServices

__all__ = ["router"]

router = APIRouter(tags=["users"])

Admin = Annotated[Principal, Depends(require(Permission.USERS))]
Cursor = Annotated[str | None, Query(max_length=500, description="from the previous page's next_cursor")]
Limit = Annotated[int, Query(ge=1, le=200)]

_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}, "description": "a problem document (RFC 9457)"}
_ERRORS: dict[int | str, dict[str, Any]] = dict.fromkeys((401, 403, 404, 409, 422), _PROBLEM)
_NO_STORE = {"Cache-Control": "no-store"}


class UserOut(BaseModel):
    id: UUID
    email: str
    role: Role
    must_change_password: bool
    active: bool
    disabled_at: datetime | None
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            role=user.role,
            must_change_password=user.must_change_password,
            active=user.active,
            disabled_at=user.disabled_at,
            created_at=user.created_at,
            last_login_at=user.last_login_at,
        )


class UserPage(BaseModel):
    items: list[UserOut]
    next_cursor: str | None


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=254, pattern=TEXT)
    role: Role


class CreatedUser(BaseModel):
    user: UserOut
    one_time_password: str = Field(description="shown once; the user must change it at first login")


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role


class ApiKeyOut(BaseModel):
    id: UUID
    name: str
    role: Role
    prefix: str = Field(description="the key begins htk_<prefix>_")
    active: bool
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyOut:
        return cls(
            id=key.id,
            name=key.name,
            role=key.role,
            prefix=key.prefix,
            active=key.active,
            created_by=key.created_by,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
        )


class ApiKeyPage(BaseModel):
    items: list[ApiKeyOut]
    next_cursor: str | None


class NewApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=TEXT)
    role: Role


class CreatedApiKey(BaseModel):
    api_key: ApiKeyOut
    secret: str = Field(description="htk_<prefix>_<secret>: shown once, send it as 'Authorization: Bearer …'")


# -- cursors: opaque to clients, base64url of a small JSON object ------------------------------------------------
def _encode(values: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(cursor: str, keys: tuple[str, ...]) -> dict[str, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        data = None
    if (
        not isinstance(data, dict)
        or set(data) != set(keys)
        or not all(isinstance(v, str) and "\x00" not in v for v in data.values())
    ):
        raise ApiProblem(
            422,
            "the cursor is not valid: pass next_cursor from the previous page unchanged",
            errors=[{"field": "query.cursor", "message": "not a cursor of this list", "type": "value_error"}],
        )
    return data


def _key_cursor(cursor: str) -> tuple[datetime, UUID]:
    data = _decode(cursor, ("t", "i"))
    try:
        return datetime.fromisoformat(data["t"]), UUID(data["i"])
    except ValueError:
        raise ApiProblem(
            422,
            "the cursor is not valid: pass next_cursor from the previous page unchanged",
            errors=[{"field": "query.cursor", "message": "not a cursor of this list", "type": "value_error"}],
        ) from None


async def _denied(
    api: ApiServices, request: Request, principal: Principal, kind: str, object_id: UUID
) -> ApiProblem:
    """Audit a request for a user or key that is not the caller's tenant's (or does not exist): the answer is
    the same 404 either way."""
    await api.audit.record(
        api.pool,
        AuditEntry(
            actor=principal.actor(client_origin(request)),
            action=f"{kind}.access_denied",
            tenant_id=principal.tenant_id,
            object_kind=kind,
            object_id=str(object_id),
            details={"method": request.method},
        ),
    )
    return not_found("user" if kind == "user" else "API key")


# -- users ---------------------------------------------------------------------------------------------------------
@router.get("/users", response_model=UserPage, summary="The tenant's users, by e-mail", responses=_ERRORS)
async def list_users(
    request: Request, principal: Admin, cursor: Cursor = None, limit: Limit = 50
) -> UserPage:
    after = None if cursor is None else _decode(cursor, ("e",))["e"]
    found = await services(request).users.list(principal.tenant_id, after=after, limit=limit + 1)
    page = found[:limit]
    more = len(found) > limit
    return UserPage(
        items=[UserOut.of(user) for user in page],
        next_cursor=_encode({"e": page[-1].email}) if more else None,
    )


@router.post(
    "/users",
    status_code=201,
    response_model=CreatedUser,
    summary="Create a user; the response carries the one-time password, once",
    responses=_ERRORS,
)
async def create_user(body: NewUser, request: Request, response: Response, principal: Admin) -> CreatedUser:
    user, password = await services(request).users.create(
        principal.tenant_id, body.email, body.role, principal.actor(client_origin(request))
    )
    response.headers.update(_NO_STORE)
    return CreatedUser(user=UserOut.of(user), one_time_password=password)


@router.get("/users/{user_id}", response_model=UserOut, summary="One user", responses=_ERRORS)
async def get_user(user_id: UUID, request: Request, principal: Admin) -> UserOut:
    api = services(request)
    try:
        return UserOut.of(await api.users.get(principal.tenant_id, user_id))
    except NotFoundError:
        raise await _denied(api, request, principal, "user", user_id) from None


@router.patch("/users/{user_id}", response_model=UserOut, summary="Change a user's role", responses=_ERRORS)
async def change_user(user_id: UUID, body: UserChange, request: Request, principal: Admin) -> UserOut:
    api = services(request)
    try:
        user = await api.users.set_role(
            principal.tenant_id, user_id, body.role, principal.actor(client_origin(request))
        )
    except NotFoundError:
        raise await _denied(api, request, principal, "user", user_id) from None
    return UserOut.of(user)


@router.post(
    "/users/{user_id}/disable",
    response_model=UserOut,
    summary="Disable a user; their sessions end at once",
    responses=_ERRORS,
)
async def disable_user(user_id: UUID, request: Request, principal: Admin) -> UserOut:
    api = services(request)
    try:
        user = await api.users.disable(principal.tenant_id, user_id, principal.actor(client_origin(request)))
    except NotFoundError:
        raise await _denied(api, request, principal, "user", user_id) from None
    return UserOut.of(user)


# -- API keys ------------------------------------------------------------------------------------------------------
@router.get(
    "/api-keys", response_model=ApiKeyPage, summary="The tenant's API keys, newest first", responses=_ERRORS
)
async def list_keys(
    request: Request, principal: Admin, cursor: Cursor = None, limit: Limit = 50
) -> ApiKeyPage:
    after = None if cursor is None else _key_cursor(cursor)
    found = await services(request).api_keys.list(principal.tenant_id, after=after, limit=limit + 1)
    page = found[:limit]
    more = len(found) > limit
    last = page[-1] if page else None
    return ApiKeyPage(
        items=[ApiKeyOut.of(key) for key in page],
        next_cursor=_encode({"t": last.created_at.isoformat(), "i": str(last.id)}) if more and last else None,
    )


@router.post(
    "/api-keys",
    status_code=201,
    response_model=CreatedApiKey,
    summary="Create an API key; the response carries its secret, once",
    responses=_ERRORS,
)
async def create_key(
    body: NewApiKey, request: Request, response: Response, principal: Admin
) -> CreatedApiKey:
    key, secret = await services(request).api_keys.create(
        principal.tenant_id, body.name, body.role, principal.actor(client_origin(request))
    )
    response.headers.update(_NO_STORE)
    return CreatedApiKey(api_key=ApiKeyOut.of(key), secret=secret)


@router.get("/api-keys/{key_id}", response_model=ApiKeyOut, summary="One API key", responses=_ERRORS)
async def get_key(key_id: UUID, request: Request, principal: Admin) -> ApiKeyOut:
    api = services(request)
    try:
        return ApiKeyOut.of(await api.api_keys.get(principal.tenant_id, key_id))
    except NotFoundError:
        raise await _denied(api, request, principal, "api_key", key_id) from None


@router.delete(
    "/api-keys/{key_id}",
    response_model=ApiKeyOut,
    summary="Revoke an API key; it stops working at once",
    responses=_ERRORS,
)
async def revoke_key(key_id: UUID, request: Request, principal: Admin) -> ApiKeyOut:
    api = services(request)
    try:
        key = await api.api_keys.revoke(principal.tenant_id, key_id, principal.actor(client_origin(request)))
    except NotFoundError:
        raise await _denied(api, request, principal, "api_key", key_id) from None
    return ApiKeyOut.of(key)
