"""A tenant's settings: recording policies, retention classes and options, numbers.

Reading is permission ``view`` (nothing here is personal data); every change is ``settings``. The storage
services validate and audit each change in its own transaction (``policy.change``, ``retention_class.create``,
``retention.set_options``, ``number.add``, ``number.remove``) and announce it to every server.

- Policies are versioned, never edited: ``POST /policies`` makes the next version of the tenant's policy (or
  of one of its numbers) for a direction, ``GET /policies`` lists the current ones, ``/policies/history``
  every version. Setting what is already current changes nothing and answers 200 with it (else 201).
- Retention classes: the presets and the tenant's own; a tenant adds its own (never statutory).
- Retention options: the default and up to four more periods a user may pick for a call (read with
  ``GET /retention-options``).
- Numbers: DIDs in any written form, ranges (``+36 1 234 56xx``) and extensions that attribute calls to the
  tenant; a DID another tenant holds is a 409 problem that does not name that tenant.

Another tenant's policy or number is 404, like a missing one, and the attempt is audited
(``recording_policy.access_denied``, ``tenant_number.access_denied``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from storage.consent_terms import ConsentTerms
from storage.errors import NotFoundError
from storage.policies import PolicyScope
from storage.policy_rules import Policy, PolicyDirection, PolicySpec, ScopeKind
from storage.principal import Permission, Principal
from storage.retention import MAX_EXTRA_OPTIONS, MAX_TENANT_CLASS_DAYS
from storage.retention_class import Basis, RetentionClass
from storage.tenant_models import NumberKind, TenantNumber

from .deps import client_origin, require, services
from .fields import TEXT, Code, text_field
from .paging import Cursor, Limit, Position, page_of
from .problems import ApiProblem
from .refusals import ERRORS, denied
from .services import ApiServices

__all__ = ["router"]

router = APIRouter(tags=["settings"])

Api = Annotated[ApiServices, Depends(services)]
Viewer = Annotated[Principal, Depends(require(Permission.VIEW))]
Admin = Annotated[Principal, Depends(require(Permission.SETTINGS))]
_ROW_ID = {"ge": 1, "le": 2**63 - 1}  # a bigint identity column
NumberId = Annotated[int, Path(**_ROW_ID)]
PolicyId = Annotated[int, Path(**_ROW_ID)]
_KEY = r"^[0-9*#A-Da-d]$"  # one DTMF key (RFC 4733 §3.2 events 0-15)


# -- retention classes and options -----------------------------------------------------------------------------
class RetentionClassInfo(BaseModel):
    code: str
    name: str
    days: int = Field(description="0: not kept after the call")
    max_days: int | None = Field(description="how far a statutory period may be extended on request")
    statutory: bool = Field(description="a legal floor: never shortened, erasure refused (Art. 17(3)(b))")
    basis: Basis
    source: str = Field(description="the statute, or the reasoning behind the period")
    own: bool = Field(description="the tenant's own class (else a preset every tenant may use)")

    @classmethod
    def of(cls, c: RetentionClass) -> RetentionClassInfo:
        return cls(
            code=c.code,
            name=c.name,
            days=c.days,
            max_days=c.max_days,
            statutory=c.statutory,
            basis=c.basis,
            source=c.source,
            own=not c.preset,
        )


class RetentionClassPage(BaseModel):
    items: list[RetentionClassInfo]
    next_cursor: str | None


class RetentionClassIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[A-Za-z0-9_]{1,40}$", description="stored in lower case; not a preset's")
    name: str = text_field(200)
    days: int = Field(ge=0, le=MAX_TENANT_CLASS_DAYS, description="0: not kept after the call")
    basis: Literal[Basis.LEGITIMATE_INTEREST, Basis.CONSENT] = Field(
        default=Basis.LEGITIMATE_INTEREST, description="a legal obligation's period is a statutory preset"
    )
    source: str = text_field(500, "the reasoning behind the period", default="tenant-defined period")


class RetentionOptionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default: Code
    others: list[Code] = Field(default_factory=list, max_length=MAX_EXTRA_OPTIONS)


class RetentionOptionsSet(BaseModel):
    default: RetentionClassInfo
    others: list[RetentionClassInfo]


def _class_order(c: RetentionClass) -> Position:
    return (0 if c.preset else 1, c.days, c.code)


@router.get(
    "/retention-classes",
    response_model=RetentionClassPage,
    summary="The preset retention classes, then the tenant's own",
    responses=ERRORS,
)
async def list_classes(
    api: Api, principal: Viewer, cursor: Cursor = None, limit: Limit = 50
) -> RetentionClassPage:
    classes = await api.retention.classes(principal.tenant_id)
    page, next_cursor = page_of(classes, _class_order, kind="retention-classes", cursor=cursor, limit=limit)
    return RetentionClassPage(items=[RetentionClassInfo.of(c) for c in page], next_cursor=next_cursor)


@router.post(
    "/retention-classes",
    status_code=201,
    response_model=RetentionClassInfo,
    summary="Add the tenant's own retention class (never statutory)",
    responses=ERRORS,
)
async def create_class(
    api: Api, principal: Admin, request: Request, body: RetentionClassIn
) -> RetentionClassInfo:
    created = await api.retention.create_class(
        principal.tenant_id,
        code=body.code,
        name=body.name,
        days=body.days,
        basis=Basis(body.basis),
        source=body.source,
        actor=principal.actor(client_origin(request)),
    )
    return RetentionClassInfo.of(created)


@router.put(
    "/retention-options",
    response_model=RetentionOptionsSet,
    summary=f"Set the default period and up to {MAX_EXTRA_OPTIONS} more a user may pick for a call",
    responses=ERRORS,
)
async def set_options(
    api: Api, principal: Admin, request: Request, body: RetentionOptionsIn
) -> RetentionOptionsSet:
    try:
        options = await api.retention.set_options(
            principal.tenant_id, body.default, body.others, principal.actor(client_origin(request))
        )
    except NotFoundError as exc:  # a code that is neither a preset nor the tenant's own
        raise ApiProblem(422, str(exc)) from None
    assert options.default is not None  # set_options always sets one
    return RetentionOptionsSet(
        default=RetentionClassInfo.of(options.default),
        others=[RetentionClassInfo.of(c) for c in options.others],
    )


# -- recording policies ----------------------------------------------------------------------------------------
class ConsentTermsIn(BaseModel):
    """How consent is asked at call start (GDPR Art. 7): the keys, the answer window, the prompt version."""

    model_config = ConfigDict(extra="forbid")
    window_seconds: float = Field(default=10, ge=1, le=120)
    yes_digit: str = Field(default="1", pattern=_KEY)
    no_digit: str = Field(default="2", pattern=_KEY)
    stop_digit: str = Field(default="9", pattern=_KEY)
    prompt_version: str = text_field(40, "the version of the prompt the PBX plays", default="v1")


class ConsentTermsOut(BaseModel):
    window_seconds: float
    yes_digit: str
    no_digit: str
    stop_digit: str
    prompt_version: str


class PolicyIn(BaseModel):
    """A policy for the tenant (``number_id`` null) or one of its numbers, for one direction of calls."""

    model_config = ConfigDict(extra="forbid")
    number_id: int | None = Field(default=None, ge=1, le=2**63 - 1, description="null: the whole tenant")
    direction: PolicyDirection = PolicyDirection.BOTH
    record: bool = True
    basis: Basis | None = Field(default=None, description="the legal basis (GDPR Art. 6(1))")
    statute: str | None = text_field(500, "the statute, for a legal obligation", default=None)
    purpose: str | None = text_field(500, "e.g. quality assurance", default=None)
    retention: Code | None = None
    format: Literal["flac", "wav", "opus", "mp3"] = "flac"  # storage.policy_rules.FORMATS
    consent: ConsentTermsIn | None = Field(default=None, description="for a consent basis")


class PolicyOut(BaseModel):
    id: int
    version: int
    scope: ScopeKind
    number_id: int | None
    direction: PolicyDirection
    record: bool
    basis: Basis | None
    statute: str | None
    purpose: str | None
    retention: str | None = Field(description="the retention class code")
    format: str
    consent: ConsentTermsOut | None
    created_at: datetime | None
    created_by: str
    superseded_at: datetime | None = Field(description="null: the current version")

    @classmethod
    def of(cls, p: Policy) -> PolicyOut:
        consent = None if p.consent is None else ConsentTermsOut(**p.consent.to_json())
        return cls(
            id=p.id,
            version=p.version,
            scope=p.scope,
            number_id=p.number_id,
            direction=p.direction,
            record=p.record,
            basis=p.basis,
            statute=p.statute,
            purpose=p.purpose,
            retention=p.retention_code,
            format=p.format,
            consent=consent,
            created_at=p.created_at,
            created_by=p.created_by,
            superseded_at=p.superseded_at,
        )


class PolicyPage(BaseModel):
    items: list[PolicyOut]
    next_cursor: str | None


def _policy_order(p: Policy) -> Position:
    return (p.number_id or 0, p.direction.value, p.version, p.id)


async def _scope(
    api: ApiServices, request: Request, principal: Principal, number_id: int | None
) -> PolicyScope:
    """The tenant's scope, or one of its numbers' (another tenant's number: an audited 404)."""
    if number_id is None:
        return PolicyScope.for_tenant(principal.tenant_id)
    scope = PolicyScope.for_number(principal.tenant_id, number_id)
    try:
        await api.policies.current(scope)
    except NotFoundError:
        raise await _number_refused(api, request, principal, number_id) from None
    return scope


@router.get(
    "/policies",
    response_model=PolicyPage,
    summary="The tenant's current policies: tenant-wide, then per number",
    responses=ERRORS,
)
async def list_policies(api: Api, principal: Viewer, cursor: Cursor = None, limit: Limit = 50) -> PolicyPage:
    policies = await api.policies.list_current(principal.tenant_id)
    page, next_cursor = page_of(policies, _policy_order, kind="policies", cursor=cursor, limit=limit)
    return PolicyPage(items=[PolicyOut.of(p) for p in page], next_cursor=next_cursor)


@router.get(
    "/policies/history",
    response_model=PolicyPage,
    summary="Every version of the tenant's (or one number's) policies, oldest first per direction",
    responses=ERRORS,
)
async def policy_history(
    api: Api,
    principal: Viewer,
    request: Request,
    number_id: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="a number's; else the tenant's")
    ] = None,
    direction: PolicyDirection | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> PolicyPage:
    scope = await _scope(api, request, principal, number_id)
    versions = await api.policies.history(scope, direction)
    kind = f"policy-history:{number_id}:{direction}"
    page, next_cursor = page_of(versions, _policy_order, kind=kind, cursor=cursor, limit=limit)
    return PolicyPage(items=[PolicyOut.of(p) for p in page], next_cursor=next_cursor)


@router.get("/policies/{policy_id}", response_model=PolicyOut, summary="One policy version", responses=ERRORS)
async def get_policy(api: Api, principal: Viewer, request: Request, policy_id: PolicyId) -> PolicyOut:
    try:
        return PolicyOut.of(await api.policies.get(policy_id, tenant_id=principal.tenant_id))
    except NotFoundError:
        raise await denied(
            api,
            request,
            principal,
            kind="recording_policy",
            object_id=str(policy_id),
            noun="recording policy",
        ) from None


@router.post(
    "/policies",
    status_code=201,
    response_model=PolicyOut,
    summary="Make a new policy version current (201); the same as the current one changes nothing (200)",
    responses={**ERRORS, 200: {"description": "nothing changed: the current version, as it was"}},
)
async def set_policy(
    api: Api, principal: Admin, request: Request, response: Response, body: PolicyIn
) -> PolicyOut:
    scope = await _scope(api, request, principal, body.number_id)
    before = {p.id for p in await api.policies.current(scope)}
    spec = PolicySpec(
        direction=body.direction,
        record=body.record,
        basis=body.basis,
        statute=body.statute,
        purpose=body.purpose,
        retention=body.retention,
        format=body.format,
        consent=None if body.consent is None else ConsentTerms(**body.consent.model_dump()),
    )
    try:
        policy = await api.policies.set(scope, spec, actor=principal.actor(client_origin(request)))
    except NotFoundError as exc:  # the number was checked above: it is the retention class
        raise ApiProblem(422, str(exc)) from None
    if policy.id in before:
        response.status_code = 200
    return PolicyOut.of(policy)


# -- numbers ---------------------------------------------------------------------------------------------------
class NumberOut(BaseModel):
    id: int
    kind: NumberKind
    value: str = Field(description="E.164, the E.164 prefix of a range, or an extension's digits")
    label: str | None
    created_at: datetime | None

    @classmethod
    def of(cls, n: TenantNumber) -> NumberOut:
        return cls(id=n.id, kind=n.kind, value=n.value, label=n.label, created_at=n.created_at)


class NumberPage(BaseModel):
    items: list[NumberOut]
    next_cursor: str | None


class NumberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: NumberKind = NumberKind.NUMBER
    value: str = Field(
        min_length=1,
        max_length=64,
        pattern=TEXT,
        description="a DID in any written form (+36 1 234 5678), a range (+36 1 234 56xx, or "
        "+3612345600-+3612345699) or an extension (201)",
    )
    label: str | None = Field(default=None, max_length=200, pattern=r"^[^\x00]*$")


async def _number_refused(
    api: ApiServices, request: Request, principal: Principal, number_id: int
) -> ApiProblem:
    return await denied(
        api, request, principal, kind="tenant_number", object_id=str(number_id), noun="number"
    )


def _number_order(n: TenantNumber) -> Position:
    return (n.kind.value, n.value, n.id)


@router.get("/numbers", response_model=NumberPage, summary="The tenant's numbers", responses=ERRORS)
async def list_numbers(api: Api, principal: Viewer, cursor: Cursor = None, limit: Limit = 50) -> NumberPage:
    numbers = await api.tenants.numbers(principal.tenant_id)
    page, next_cursor = page_of(numbers, _number_order, kind="numbers", cursor=cursor, limit=limit)
    return NumberPage(items=[NumberOut.of(n) for n in page], next_cursor=next_cursor)


@router.post(
    "/numbers",
    status_code=201,
    response_model=NumberOut,
    summary="Add a DID, a range or an extension; one another tenant holds is 409",
    responses=ERRORS,
)
async def add_number(api: Api, principal: Admin, request: Request, body: NumberIn) -> NumberOut:
    number = await api.tenants.add_number(
        principal.tenant_id,
        body.value,
        actor=principal.actor(client_origin(request)),
        kind=body.kind,
        label=body.label,
    )
    return NumberOut.of(number)


@router.delete(
    "/numbers/{number_id}",
    response_model=NumberOut,
    summary="Remove a number with its own policies (refused while a recording was decided by them)",
    responses=ERRORS,
)
async def remove_number(api: Api, principal: Admin, request: Request, number_id: NumberId) -> NumberOut:
    try:
        number = await api.tenants.remove_number(
            principal.tenant_id, number_id, actor=principal.actor(client_origin(request))
        )
    except NotFoundError:
        raise await _number_refused(api, request, principal, number_id) from None
    return NumberOut.of(number)
