"""Delivery targets and recordings for the delivery tests (storage and transport alike)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg

from storage.audit import Actor
from storage.delivery_filter import DeliveryFilter
from storage.delivery_schedule import Schedule
from storage.delivery_targets import DeliveryTarget, TargetStore
from tests.unit.storage.retention_samples import T0

OPERATOR = Actor(name="anna@example.hu", origin="192.0.2.7")
# A customer's file server's host key, as `ssh-keyscan -t ed25519 files.example.hu` prints it.
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFcAO3akUvbTCYxYDyLUkGzlY7bIbgvCRUudRfu7yP2M"
PASSWORD = "Tavasz-2026!kulcs"
CREATED = T0 - timedelta(days=1)  # targets exist before the sample calls (T0) end


def sftp_settings(**overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "host": "files.example.hu",
        "port": 22,
        "username": "hangtar",
        "remote_dir": "/srv/recordings/incoming",
        "host_key": HOST_KEY,
        "auth": "password",
    }
    settings.update(overrides)
    return settings


async def add_target(
    store: TargetStore,
    tenant_id: UUID,
    *,
    name: str = "archive",
    settings: Mapping[str, Any] | None = None,
    secret: str = PASSWORD,
    schedule: Schedule | None = None,
    filter: DeliveryFilter | None = None,
    delete_after_delivery: bool = False,
    max_attempts: int = 12,
) -> DeliveryTarget:
    return await store.create(
        tenant_id,
        kind="sftp",
        name=name,
        settings=sftp_settings() if settings is None else settings,
        secret=secret,
        schedule=schedule or Schedule.every(900),
        filter=filter,
        delete_after_delivery=delete_after_delivery,
        max_attempts=max_attempts,
        actor=OPERATOR,
    )


async def set_direction(pool: asyncpg.Pool, recording_id: UUID, direction: str) -> None:
    """The call facts the metadata normaliser stores for a call's direction."""
    await pool.execute(
        "UPDATE recordings SET call_facts = $2 WHERE id = $1",
        recording_id,
        {"direction": {"value": direction, "raw": direction, "source": "broadworks:direction"}},
    )


async def set_status(pool: asyncpg.Pool, recording_id: UUID, status: str) -> None:
    await pool.execute("UPDATE recordings SET status = $2 WHERE id = $1", recording_id, status)
