"""schemathesis against the published OpenAPI document of the real app: every operation, with data that fits
the schema and data that does not, authenticated as the fixture tenant's admin API key. No answer may be a
server error, and every answer must match the schema the document gives for its status.

schemathesis 4 calls an ASGI app on an event loop of its own, in a thread it keeps for the process. The app
is therefore built on that loop: :class:`FuzzedApp` answers the ASGI lifespan by opening its pool there,
migrating and seeding a fresh catalogue (two tenants, an admin key, a sealed recording, a hold, an access
request, a number, a policy, a class of the tenant's own), and closes the pool at shutdown.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import hypothesis
import schemathesis
from fastapi import FastAPI
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import response_schema_conformance
from starlette.types import Message, Receive, Scope, Send

from siprec_server.api import API_PREFIX, ApiServices, build_api, make_services
from siprec_server.sealing import RecordingCrypto
from storage import FileBlobStore, migrate, open_pool
from storage.keyfile import KeyFileProvider
from storage.policies import PolicyScope
from storage.policy_rules import PolicySpec
from storage.principal import Role
from storage.retention_class import Basis
from tests.pg import PgCluster, reset_catalogue

from .conftest import LOGIN_LIMITS, OPERATOR, SESSION_LIMITS, Clock, cheap_passwords
from .test_recordings_api import T0, record_call

EXAMPLES_PER_OPERATION = 8  # per operation and mode: the whole file runs in well under a minute
# The operations of the holds, access-request, erasure, settings and audit routers (the others' too are fuzzed).
OWN_OPERATIONS = [
    f"{method} {API_PREFIX}{path}"
    for method, path in (
        ("GET", "/holds"),
        ("POST", "/holds"),
        ("GET", "/holds/{hold_id}"),
        ("POST", "/holds/{hold_id}/release-request"),
        ("POST", "/holds/{hold_id}/release-approval"),
        ("POST", "/access-requests"),
        ("GET", "/access-requests"),
        ("GET", "/access-requests/{case_id}"),
        ("POST", "/access-requests/{case_id}/export"),
        ("POST", "/access-requests/{case_id}/delivered"),
        ("POST", "/access-requests/{case_id}/close"),
        ("POST", "/consent-withdrawals"),
        ("DELETE", "/recordings/{id_or_reference}"),
        ("GET", "/retention-classes"),
        ("POST", "/retention-classes"),
        ("PUT", "/retention-options"),
        ("GET", "/policies"),
        ("GET", "/policies/history"),
        ("GET", "/policies/{policy_id}"),
        ("POST", "/policies"),
        ("GET", "/numbers"),
        ("POST", "/numbers"),
        ("DELETE", "/numbers/{number_id}"),
        ("GET", "/audit"),
        ("GET", "/audit/verify"),
    )
]


class FuzzedApp:
    """The API as the server builds it, on the event loop that calls it (see the module docstring)."""

    def __init__(self, dsn: str, directory: Path) -> None:
        self._dsn = dsn
        self._directory = directory
        self._app: FastAPI | None = None
        self._services: ApiServices | None = None
        self.api_key = ""
        self.statuses: Counter[int] = Counter()  # what it answered, to show the fuzzing reached the handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        assert self._app is not None, "the lifespan starts before any request"

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.statuses[message["status"]] += 1
            await send(message)

        await self._app(scope, receive, counting)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._services is not None:
                    await self._services.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self) -> None:
        pool = await open_pool(self._dsn, max_size=6)
        await migrate(pool)
        await reset_catalogue(pool)
        await pool.execute("TRUNCATE login_failures")
        api = make_services(
            pool,
            blobs=FileBlobStore(self._directory / "recordings"),
            bundle_dir=self._directory / "access_requests",
            crypto=RecordingCrypto(pool, KeyFileProvider(self._directory / "keys.json")),
            clock=Clock(),
            passwords=cheap_passwords(),
            login_limits=LOGIN_LIMITS,
            session_limits=SESSION_LIMITS,
        )
        self._services = api
        tenant = await api.tenants.create(slug="acme", name="Acme Kft.", actor=OPERATOR)
        await api.tenants.create(slug="globex", name="Globex Zrt.", actor=OPERATOR)
        _key, self.api_key = await api.api_keys.create(tenant.id, "fuzzer", Role.ADMIN, OPERATOR)
        await api.users.create(tenant.id, "dpo@acme.example", Role.DPO, OPERATOR)
        call = await record_call(api, tenant, seconds=1)
        await record_call(
            api, tenant, seconds=1, started_at=T0 + timedelta(hours=1), basis="consent", class_code="consent"
        )
        await api.holds.place_on_number(tenant.id, "+3612345678", reason="complaint 2026/118", actor=OPERATOR)
        await api.holds.place_on_recording(tenant.id, call.recording.id, reason="court order", actor=OPERATOR)
        await api.access.open(tenant.id, requester="Kovács Éva", number="06 1 234 5678", actor=OPERATOR)
        number = await api.tenants.add_number(tenant.id, "+36 1 234 5678", actor=OPERATOR)
        await api.policies.set(
            PolicyScope.for_number(tenant.id, number.id), PolicySpec(record=False), actor=OPERATOR
        )
        await api.retention.create_class(
            tenant.id, code="sales_90d", name="Sales, 90 days", days=90, basis=Basis.CONSENT, actor=OPERATOR
        )
        self._app = build_api(api)


def test_no_operation_fails_or_strays_from_its_schema(pg: PgCluster, tmp_path: Path) -> None:
    app = FuzzedApp(pg.dsn, tmp_path)
    try:
        schema = schemathesis.openapi.from_asgi(f"{API_PREFIX}/openapi.json", app)
        failures: list[str] = []
        labels: list[str] = []
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result.err()
            operation = result.ok()
            labels.append(operation.label)
            for mode in GenerationMode:
                failure = _fuzz(operation.as_strategy(generation_mode=mode), app.api_key)
                if failure is not None:
                    failures.append(f"{operation.label} ({mode.value}): {failure}")
    finally:
        asgi.shutdown_lifespans()  # closes the app's pool on schemathesis's loop
    assert not failures, "\n\n".join(failures)
    assert len(labels) == len(set(labels)) >= len(OWN_OPERATIONS)
    assert set(OWN_OPERATIONS) <= set(labels)
    answered = {status // 100: 0 for status in app.statuses}
    for status, count in app.statuses.items():
        answered[status // 100] += count
    # Valid input got past validation to the services, invalid input was refused.
    assert answered[2] > 100 and app.statuses[422] > 100 and app.statuses[404] > 10, app.statuses


def _fuzz(cases: Any, api_key: str) -> str | None:
    """Run one operation's cases; what failed, or None."""

    @hypothesis.given(case=cases)
    @hypothesis.settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases every run: a failure here is reproducible, the time bounded
        suppress_health_check=list(hypothesis.HealthCheck),
        print_blob=False,
    )
    def run(case: Any) -> None:
        case.call_and_validate(
            headers={"Authorization": f"Bearer {api_key}"},
            checks=[not_a_server_error, response_schema_conformance],
        )

    try:
        run()
    except hypothesis.errors.Unsatisfiable:  # nothing to make invalid: an operation without parameters
        return None
    except (Exception, FailureGroup) as exc:  # schemathesis's report, after hypothesis shrank the case
        return str(exc)
    return None
