"""Delete our copy after a confirmed delivery, for the targets that ask (the seed product's "60 days + transfer").

A recording delivered to such a target is erased through :class:`storage.erasure.ErasureService`, so every
rule applies: a legal hold (GDPR Art. 18) or a statutory retention class (Art. 17(3)(b)) keeps it, and that is
recorded on the delivery (``copy_state`` 'kept', with the reason) and in the audit trail, not treated as an
error; it then expires under its class as usual. The copy is erased only once every enabled target of the
tenant that takes the recording has it delivered: a second target still waiting for it keeps it here.

The delivery is marked ``erasing`` before the erasure and ``erased`` after it, so the ``erased`` event the
erasure writes sends no notice back to the recipients (:mod:`storage.delivery_outbox`); a pass that dies in
between is finished by the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from .audit import Actor
from .delivery_filter import MATCHES
from .delivery_outbox import DELIVERABLE
from .erasure import ErasureService
from .errors import CatalogueError, LifecycleError, NotFoundError, translated

__all__ = ["CopyReport", "DeliveredCopies"]

_OPEN = """
    SELECT d.id, d.recording_id, d.tenant_id, d.reference, t.name AS target_name
    FROM deliveries d JOIN delivery_targets t ON t.id = d.target_id
    WHERE d.kind = 'recording' AND d.status = 'delivered' AND (d.copy_state IS NULL OR d.copy_state = 'erasing')
      AND t.delete_after_delivery
    ORDER BY d.id
    LIMIT $1
"""
# Another enabled target of the tenant takes the recording and has not had it delivered yet.
_STILL_WANTED = f"""
    SELECT EXISTS (
        SELECT 1 FROM recordings r
        JOIN delivery_targets t ON t.tenant_id = r.tenant_id AND t.enabled
        LEFT JOIN retention_classes c ON c.id = r.retention_class_id
        WHERE r.id = $1 AND {DELIVERABLE} AND r.ended_at >= t.deliver_since AND {MATCHES}
          AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.target_id = t.id AND d.recording_id = r.id
                          AND d.kind = 'recording' AND d.status = 'delivered')
    )
"""  # noqa: S608 (constant fragments)
_MARK = "UPDATE deliveries SET copy_state = $2, copy_note = $3 WHERE id = $1"


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyReport:
    erased: int = 0
    kept: int = 0  # a hold or a statutory class keeps it (recorded on the delivery, audited)
    waiting: int = 0  # another target still waits for it, or the erasure failed and is tried again


class DeliveredCopies:
    def __init__(self, pool: Any, erasure: ErasureService, *, node: str) -> None:
        self._pool = pool
        self._erasure = erasure
        self._actor = Actor(name="system:delivery", origin=node)

    async def erase_delivered(self, *, limit: int = 200) -> CopyReport:
        """Erase our copies of what was delivered to delete-after-delivery targets, as far as the rules let."""
        erased = kept = waiting = 0
        with translated("find delivered copies to erase"):
            rows = await self._pool.fetch(_OPEN, limit)
        for row in rows:
            with translated("check a recording's other deliveries"):
                wanted = await self._pool.fetchval(_STILL_WANTED, row["recording_id"])
            if wanted:
                waiting += 1
                continue
            outcome = await self._erase(row["id"], row["tenant_id"], row["recording_id"], row["target_name"])
            erased += outcome == "erased"
            kept += outcome == "kept"
            waiting += outcome is None
        return CopyReport(erased=erased, kept=kept, waiting=waiting)

    async def _erase(self, delivery_id: int, tenant_id: UUID, recording_id: UUID, target: str) -> str | None:
        with translated("mark a delivered copy"):
            await self._pool.execute(_MARK, delivery_id, "erasing", None)
        note = f"delivered to {target}; erased here after the confirmed delivery"
        try:
            await self._erasure.erase(
                tenant_id, recording_id, self._actor, f"delete after delivery to {target}"
            )
        except NotFoundError:
            note = f"delivered to {target}; already erased here"
        except LifecycleError as exc:  # a hold, a statutory floor: kept, and the refusal is audited
            with translated("mark a delivered copy"):
                await self._pool.execute(_MARK, delivery_id, "kept", f"kept: {exc}")
            return "kept"
        except CatalogueError:
            return None  # still 'erasing': the next pass tries again
        with translated("mark a delivered copy"):
            await self._pool.execute(_MARK, delivery_id, "erased", note)
        return "erased"
