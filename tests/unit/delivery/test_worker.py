"""The delivery worker's handling of what transports do wrong, with a stand-in transport over a real catalogue."""

from __future__ import annotations

from datetime import timedelta

import pytest

from siprec_server.delivery.transport import Notice, Payload, Receipt, TransportError
from storage.delivery_items import DeliveryItem, DeliveryStatus
from storage.delivery_schedule import Schedule
from storage.delivery_targets import DeliveryTarget
from tests.unit.delivery.samples import OPERATOR, sftp_settings
from tests.unit.storage.retention_samples import T0

from .conftest import Env


class Failing:
    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.payloads: list[Payload] = []

    async def send(
        self, target: DeliveryTarget, secret: str, item: DeliveryItem, payload: Payload
    ) -> Receipt:
        self.payloads.append(payload)
        raise self.error

    async def notify(
        self, target: DeliveryTarget, secret: str, item: DeliveryItem, notice: Notice
    ) -> Receipt:
        raise self.error


async def add(env: Env) -> None:
    await env.targets.create(
        env.tenant_id,
        kind="sftp",
        name="archive",
        settings=sftp_settings(host="127.0.0.1", port=9),
        secret="Tavasz-2026!kulcs",
        schedule=Schedule.every(300),
        actor=OPERATOR,
    )


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (
            RuntimeError("the transport tripped over itself"),
            DeliveryStatus.PENDING,
            "RuntimeError: the transport",
        ),
        (TransportError("a 5xx from the receiver", retryable=True), DeliveryStatus.PENDING, "a 5xx"),
        (TransportError("a 403 from the receiver", retryable=False), DeliveryStatus.DEAD, "a 403"),
    ],
)
async def test_failures_are_retried_later_or_dead_at_once(
    env: Env, error: BaseException, status: DeliveryStatus, message: str
) -> None:
    await add(env)
    env.clock.now = T0
    call = await env.add_recording()
    env.clock.advance(minutes=5)
    transport = Failing(error)
    report = await env.worker(transport=transport).run_once()
    assert (report.retried, report.dead) == ((1, 0) if status is DeliveryStatus.PENDING else (0, 1))
    [item] = await env.outbox.items(recording_id=call.id)
    assert item.status is status and message in (item.last_error or "")
    if status is DeliveryStatus.PENDING:  # equal jitter at 0.5: 22.5 s after the first failure
        assert item.next_attempt_at == env.clock.now + timedelta(seconds=22.5)
    # The transport was handed the decrypted audio, with the catalogue's size and hash.
    [payload] = transport.payloads
    with payload.open() as audio:
        assert audio.read() == env.plaintext[call.id]
    assert payload.size == len(env.plaintext[call.id]) and payload.sha256 == call.sha256


async def test_a_recording_erased_before_its_delivery_is_dead_with_the_reason(env: Env) -> None:
    await add(env)
    env.clock.now = T0
    call = await env.add_recording()
    env.clock.advance(minutes=5)
    await env.outbox.enqueue_due(env.clock.now)
    await env.erasure.erase(env.tenant_id, call.id, OPERATOR, "erasure request")
    transport = Failing(AssertionError("never called"))
    report = await env.worker(transport=transport).run_once()
    assert report.dead == 1 and transport.payloads == []
    [item] = await env.outbox.items(recording_id=call.id)
    assert "was erased before it could be delivered; nothing was sent" in (item.last_error or "")
