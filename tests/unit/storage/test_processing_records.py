"""Records of processing (Art. 30) are built from the tenant's live policies, classes, numbers and recordings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import pytest

from storage import FileBlobStore, ParticipantRole
from storage.audit import Actor, AuditLog
from storage.errors import NotFoundError
from storage.processing_records import ProcessingRecords
from storage.processing_records_markdown import to_markdown

from .subject_samples import add_recording, make_tenant, party

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DPO = Actor(name="dpo@aram.hu", origin="192.0.2.40")
PROCESSOR = "Hangtár Üzemeltető Kft., 1117 Budapest, Infopark sétány 1.; adatvedelem@uzemelteto.hu"


async def _number(pool: asyncpg.Pool, tenant: UUID, kind: str, value: str) -> int:
    return int(
        await pool.fetchval(
            "INSERT INTO tenant_numbers (tenant_id, kind, value) VALUES ($1, $2, $3) RETURNING id",
            tenant,
            kind,
            value,
        )
    )


async def _class_id(pool: asyncpg.Pool, code: str, tenant: UUID | None = None) -> int:
    return int(
        await pool.fetchval(
            "SELECT id FROM retention_classes WHERE code = $1 AND tenant_id IS NOT DISTINCT FROM $2",
            code,
            tenant,
        )
    )


async def _policy(
    pool: asyncpg.Pool,
    tenant: UUID,
    *,
    number_id: int | None = None,
    version: int = 1,
    direction: str = "both",
    basis: str,
    purpose: str,
    retention: int,
    statute: str | None = None,
    consent: dict[str, object] | None = None,
    superseded: bool = False,
) -> None:
    await pool.execute(
        """
        INSERT INTO recording_policies (tenant_id, number_id, version, direction, record, basis, statute, purpose,
                                        retention_class_id, consent, created_by, superseded_at)
        VALUES ($1, $2, $3, $4, true, $5, $6, $7, $8, $9, 'anna@aram.hu', $10)
        """,
        tenant,
        number_id,
        version,
        direction,
        basis,
        statute,
        purpose,
        retention,
        consent,
        NOW if superseded else None,
    )


def records(pool: asyncpg.Pool, recipients: Sequence[str] | None = None) -> ProcessingRecords:
    async def lookup(tenant_id: UUID) -> Sequence[str]:
        return recipients or ()

    return ProcessingRecords(
        pool, audit=AuditLog(), clock=lambda: NOW, recipients=None if recipients is None else lookup
    )


async def _utility(pool: asyncpg.Pool, tmp_path: Path) -> UUID:
    """A gas utility: customer-service DIDs under a statutory class, a consent line, its own complaints class."""
    aram = await make_tenant(pool, "aram-zrt", "Áram Zrt.")
    service_line = await _number(pool, aram, "number", "+3618889000")
    sales_line = await _number(pool, aram, "number", "+3618889001")
    await _number(pool, aram, "range", "+36188891")
    await _number(pool, aram, "extension", "201")
    own = int(
        await pool.fetchval(
            """INSERT INTO retention_classes (tenant_id, code, name, days, basis, source)
               VALUES ($1, 'panasz_3ev', 'Panaszok, 3 év', 1095, 'legitimate_interest', 'belső szabályzat | 2026')
               RETURNING id""",
            aram,
        )
    )
    quality = await _class_id(pool, "quality_60d")
    await pool.execute(
        "INSERT INTO tenant_retention_options (tenant_id, position, retention_class_id)"
        " VALUES ($1, 0, $2), ($1, 1, $3)",
        aram,
        quality,
        own,
    )
    await _policy(
        pool, aram, basis="legitimate_interest", purpose="training", retention=quality, superseded=True
    )
    await _policy(
        pool,
        aram,
        version=2,
        basis="legitimate_interest",
        purpose="quality assurance | coaching",
        retention=quality,
    )
    await _policy(
        pool,
        aram,
        number_id=service_line,
        direction="inbound",
        basis="legal_obligation",
        statute="Fgytv. 17/B §",
        purpose="customer service calls",
        retention=await _class_id(pool, "utility_customer_service"),
    )
    await _policy(
        pool,
        aram,
        number_id=sales_line,
        basis="consent",
        purpose="telephone sales contracts",
        retention=await _class_id(pool, "consent"),
        consent={
            "window_seconds": 10,
            "yes_digit": "1",
            "no_digit": "2",
            "stop_digit": "9",
            "prompt_version": "v3",
        },
    )
    blobs = FileBlobStore(tmp_path / "recordings")
    caller = party("+36301234567", "Szabó Gergő", ParticipantRole.CALLER)
    agent = party("+3618889000", "Áram ügyfélszolgálat", ParticipantRole.CALLEE)
    # kept from before the policy changed: its purpose is still in the record, as no longer recorded
    await add_recording(
        pool,
        blobs,
        tenant_id=aram,
        started_at=datetime(2026, 10, 1, 8, tzinfo=UTC),
        caller=caller,
        callee=agent,
        purpose="training",
    )
    await add_recording(
        pool,
        blobs,
        tenant_id=aram,
        started_at=datetime(2026, 11, 3, 9, tzinfo=UTC),
        caller=caller,
        callee=agent,
        basis="legal_obligation",
        statute="Fgytv. 17/B §",
        purpose="customer service calls",
        retention="utility_customer_service",
    )
    return aram


async def test_the_record_reflects_current_policies_classes_numbers_and_recordings(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    aram = await _utility(pool, tmp_path)
    record = await records(pool).build(aram, processor=PROCESSOR, actor=DPO)
    data = json.loads(json.dumps(record.to_json(), ensure_ascii=False))

    assert data["controller"] == {"id": str(aram), "slug": "aram-zrt", "name": "Áram Zrt."}
    assert data["processor"] == PROCESSOR and data["generated_at"] == "2026-11-30T12:00:00.000000Z"
    assert [(p["scope"], p["version"], p["direction"], p["basis"]) for p in data["policies"]] == [
        ("tenant", 2, "both", "legitimate_interest"),
        ("number +3618889000", 1, "inbound", "legal_obligation"),
        ("number +3618889001", 1, "both", "consent"),
    ]  # the superseded version 1 and the system policy do not apply
    assert data["policies"][2]["consent"]["prompt_version"] == "v3"
    purposes = {(p["purpose"], p["basis"], p["statute"], p["current"]) for p in data["purposes"]}
    assert purposes == {
        ("quality assurance | coaching", "legitimate_interest", None, True),
        ("customer service calls", "legal_obligation", "Fgytv. 17/B §", True),
        ("telephone sales contracts", "consent", None, True),
        ("training", "legitimate_interest", None, False),
    }
    retention = {line["class"]: line for line in data["retention"]}
    assert set(retention) == {"quality_60d", "panasz_3ev", "utility_customer_service", "consent"}
    assert (retention["quality_60d"]["option_position"], retention["panasz_3ev"]["option_position"]) == (0, 1)
    statutory = retention["utility_customer_service"]
    assert (statutory["statutory"], statutory["days"], statutory["source"]) == (True, 1826, "Fgytv. 17/B §")
    assert data["numbers"] == {"extension": 1, "number": 2, "range": 1}
    assert data["recordings"] == {"total": 2, "unencrypted": 2}
    assert any("proof of consent" in item for item in data["data_categories"])
    assert any("AES-256-GCM" in item for item in data["measures"])
    assert any("hash-chained audit trail" in item for item in data["measures"])
    assert any("2 recording(s) made before encryption" in item for item in data["measures"])
    assert data["recipients"] == [] and data["transfers"].startswith("none")

    entry = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'ropa.export'")
    assert (entry["actor"], entry["tenant_id"], entry["object_id"]) == ("dpo@aram.hu", aram, str(aram))


async def test_the_markdown_is_a_document_a_dpo_can_file(pool: asyncpg.Pool, tmp_path: Path) -> None:
    aram = await _utility(pool, tmp_path)
    text = to_markdown(await records(pool).build(aram, processor=PROCESSOR, actor=DPO))
    for heading in (
        "# Record of processing activities: call recording — Áram Zrt.",
        "## Controller and processor",
        "## Purposes and legal bases (Art. 30(1)(b))",
        "## Categories of data subjects (Art. 30(1)(c))",
        "## Categories of personal data (Art. 30(1)(c))",
        "## Recipients (Art. 30(1)(d))",
        "## Transfers to third countries (Art. 30(1)(e))",
        "## Time limits for erasure (Art. 30(1)(f))",
        "## Technical and organisational security measures (Art. 30(1)(g), Art. 32)",
    ):
        assert heading in text.splitlines(), heading
    assert f"- **Processor** (Art. 28, 30(2)): {PROCESSOR}" in text
    assert (
        "| customer service calls | legal obligation — Art. 6(1)(c) | Fgytv. 17/B § | recorded now |" in text
    )
    assert "| training | legitimate interests — Art. 6(1)(f) | — | only earlier recordings kept |" in text
    assert "| quality assurance \\| coaching |" in text  # a pipe in a purpose does not break the table
    assert "| `utility_customer_service` | Utility customer service, 5 years | 1826 days | yes |" in text
    assert "| `panasz_3ev` | Panaszok, 3 év | 1095 days | no |" in text and "| choice 1 |" in text
    assert "None: the recording system delivers no copies to other recipients." in text
    assert "*to be completed*" in text


async def test_a_tenant_without_its_own_policy_follows_the_system_policy(pool: asyncpg.Pool) -> None:
    small = await make_tenant(pool, "kis-bt", "Kis Bt.")
    record = await records(pool).build(small, processor=PROCESSOR, actor=DPO)
    assert [(p.scope, p.basis, p.purpose, p.retention_class) for p in record.policies] == [
        ("system", "legitimate_interest", "quality assurance", "quality_60d")
    ]
    assert [(p.purpose, p.current) for p in record.purposes] == [("quality assurance", True)]
    assert [line.code for line in record.retention] == ["quality_60d"]
    assert record.recordings == 0 and not any(m.startswith("note:") for m in record.measures)
    assert not any("proof of consent" in c for c in record.data_categories)

    # only a number has a policy: the tenant's other calls still follow the system's
    line = await _number(pool, small, "number", "+3612345678")
    await _policy(
        pool,
        small,
        number_id=line,
        basis="legitimate_interest",
        purpose="orders",
        retention=await _class_id(pool, "contract_evidence"),
    )
    record = await records(pool).build(small, processor=PROCESSOR, actor=DPO)
    assert [p.scope for p in record.policies] == ["system", "number +3612345678"]


async def test_recipients_come_from_the_delivery_hook(pool: asyncpg.Pool) -> None:
    small = await make_tenant(pool, "kis-bt", "Kis Bt.")
    record = await records(pool, ["CRM: Salesforce (Kis Bt. org)", "SFTP: archiv.kisbt.hu"]).build(
        small, processor=PROCESSOR, actor=DPO
    )
    assert record.to_json()["recipients"] == ["CRM: Salesforce (Kis Bt. org)", "SFTP: archiv.kisbt.hu"]
    assert "- SFTP: archiv.kisbt.hu" in to_markdown(record)


async def test_an_unknown_tenant_is_not_found(pool: asyncpg.Pool) -> None:
    with pytest.raises(NotFoundError):
        await records(pool).build(uuid4(), processor=PROCESSOR, actor=DPO)
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 0
