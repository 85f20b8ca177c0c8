"""What the GDPR lifecycle looks like right now, over every tenant, for the operator's metrics: legal holds in
force (and those waiting for a second person's release), access requests unanswered and past their deadline.

One query, counts only: no personal data leaves the catalogue this way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import translated

__all__ = ["LifecycleCounts", "lifecycle_counts"]

# Unanswered access requests: open, or exported but not yet delivered (storage.access_rules.is_overdue).
_COUNTS = """
    SELECT
        (SELECT count(*) FROM holds WHERE released_at IS NULL) AS holds,
        (SELECT count(*) FROM holds
          WHERE released_at IS NULL AND release_requested_at IS NOT NULL) AS holds_release_requested,
        (SELECT count(*) FROM access_requests WHERE status IN ('open', 'exported')) AS requests_open,
        (SELECT count(*) FROM access_requests
          WHERE status IN ('open', 'exported') AND due_at < $1) AS requests_overdue
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecycleCounts:
    holds: int  # in force, by recording or by number
    holds_release_requested: int  # in force, a release requested and waiting for a second person
    requests_open: int  # access requests not yet answered (GDPR Art. 12(3))
    requests_overdue: int  # of those, past their deadline


async def lifecycle_counts(pool: Any, now: datetime) -> LifecycleCounts:
    with translated("count holds and access requests"):
        row = await pool.fetchrow(_COUNTS, now)
    return LifecycleCounts(
        holds=row["holds"],
        holds_release_requested=row["holds_release_requested"],
        requests_open=row["requests_open"],
        requests_overdue=row["requests_overdue"],
    )
