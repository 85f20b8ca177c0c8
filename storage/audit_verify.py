"""Checking the audit trail, and reading it.

:func:`verify_chain` walks ``audit_log`` in sequence order, a page at a time, and checks each entry three
ways: its sequence number follows the previous one (a deleted entry leaves a gap), its content still
matches its hash (an edited entry does not), and its ``prev_hash`` is the previous entry's hash (an entry
edited and re-hashed, or a forged one, breaks the link to the next). It reports the first broken entry and
why. Removing entries from the *end* leaves a shorter chain that is still whole: compare the report's
``head_hash`` with one noted earlier, outside the database, to catch that.
"""

from __future__ import annotations

import builtins
import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .audit import GENESIS, StoredEntry
from .errors import translated
from .scope import ALL_TENANTS, TenantScope, scope_args, scope_sql

__all__ = ["AuditQuery", "ChainProblem", "ChainReport", "verify_chain"]

_PAGE = "SELECT * FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2"
_ONE = "SELECT * FROM audit_log WHERE seq = $1"
_NEWEST = "SELECT max(seq) FROM audit_log"
_MAX_LIST = 1000
_LIST = f"""
    SELECT * FROM audit_log
    WHERE {scope_sql("tenant_id", 1)}
      AND ($3::text IS NULL OR object_kind = $3)
      AND ($4::text IS NULL OR object_id = $4)
      AND ($5::text IS NULL OR actor = $5)
      AND ($6::text IS NULL OR action = $6)
      AND ($7::timestamptz IS NULL OR at >= $7)
      AND ($8::timestamptz IS NULL OR at < $8)
      AND ($9::bigint IS NULL OR seq < $9)
    ORDER BY seq DESC
    LIMIT $10
"""  # noqa: S608 (constant fragment)


class ChainProblem(enum.StrEnum):
    GAP = "gap"  # sequence numbers are missing: entries were deleted
    HASH = "hash"  # the entry's content does not match its hash: it was changed
    LINK = "link"  # prev_hash is not the previous entry's hash: an entry was replaced or re-hashed


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainReport:
    from_seq: int
    entries: int  # entries that passed every check
    last_seq: int | None  # the last entry that passed
    head_hash: str | None  # its hash: note it elsewhere to detect a truncated log later
    broken_seq: int | None = None  # the first entry that failed (for a gap: the first missing number)
    problem: ChainProblem | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "from_seq": self.from_seq,
            "entries": self.entries,
            "last_seq": self.last_seq,
            "head_hash": self.head_hash,
            "broken_seq": self.broken_seq,
            "problem": None if self.problem is None else self.problem.value,
            "detail": self.detail,
        }


async def verify_chain(pool: Any, *, from_seq: int = 1, page_size: int = 1000) -> ChainReport:
    """Check the chain from ``from_seq`` (linked to the entry before it) to the end."""
    if from_seq < 1 or page_size < 1:
        raise ValueError("from_seq and page_size start at 1")
    prev_hash = GENESIS
    if from_seq > 1:
        with translated("read the audit log"):
            anchor = await pool.fetchrow(_ONE, from_seq - 1)
            newest = await pool.fetchval(_NEWEST)
        if newest is None or newest < from_seq:
            return ChainReport(from_seq=from_seq, entries=0, last_seq=None, head_hash=None)  # nothing there
        if anchor is None:
            missing = f"entry {from_seq - 1} missing: deleted from the log"
            return _broken(from_seq, 0, None, None, from_seq - 1, ChainProblem.GAP, missing)
        prev_hash = anchor["hash"]
    expected_seq, checked, last_seq, head = from_seq, 0, None, None
    while True:
        with translated("read the audit log"):
            rows = await pool.fetch(_PAGE, expected_seq, page_size)
        for row in rows:
            entry = StoredEntry.from_row(row)
            problem, detail = _check(entry, expected_seq, prev_hash)
            if problem is not None:
                broken = expected_seq if problem is ChainProblem.GAP else entry.seq
                return _broken(from_seq, checked, last_seq, head, broken, problem, detail)
            checked += 1
            last_seq, head, prev_hash = entry.seq, entry.hash, entry.hash
            expected_seq = entry.seq + 1
        if len(rows) < page_size:
            return ChainReport(from_seq=from_seq, entries=checked, last_seq=last_seq, head_hash=head)


def _check(entry: StoredEntry, expected_seq: int, prev_hash: str) -> tuple[ChainProblem | None, str | None]:
    if entry.seq != expected_seq:
        missing = (
            f"entry {expected_seq}"
            if entry.seq == expected_seq + 1
            else f"entries {expected_seq}-{entry.seq - 1}"
        )
        return ChainProblem.GAP, f"{missing} missing: deleted from the log"
    if entry.expected_hash() != entry.hash:
        return (
            ChainProblem.HASH,
            f"entry {entry.seq} ({entry.action}) does not match its hash: it was changed",
        )
    if entry.prev_hash != prev_hash:
        return (
            ChainProblem.LINK,
            f"entry {entry.seq} does not follow entry {entry.seq - 1}: one of them was replaced or re-hashed",
        )
    return None, None


def _broken(
    from_seq: int,
    checked: int,
    last_seq: int | None,
    head: str | None,
    broken: int,
    problem: ChainProblem,
    detail: str | None,
) -> ChainReport:
    return ChainReport(
        from_seq=from_seq,
        entries=checked,
        last_seq=last_seq,
        head_hash=head,
        broken_seq=broken,
        problem=problem,
        detail=detail,
    )


class AuditQuery:
    """Reading the audit trail, newest first, for the CLI and the API."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def list(
        self,
        *,
        tenant_id: TenantScope = ALL_TENANTS,
        object_kind: str | None = None,
        object_id: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_seq: int | None = None,
        limit: int = 100,
    ) -> builtins.list[StoredEntry]:
        """Entries matching every filter given; ``before_seq`` pages back from an entry already seen.
        ``tenant_id`` is a :data:`~storage.scope.TenantScope`: a tenant's entries, ``None`` those about no
        tenant (the operator's and the unclaimed calls'), :data:`~storage.scope.ALL_TENANTS` every entry."""
        if not 1 <= limit <= _MAX_LIST:
            raise ValueError(f"limit must be between 1 and {_MAX_LIST}")
        with translated("read the audit log"):
            rows = await self._pool.fetch(
                _LIST,
                *scope_args(tenant_id),
                object_kind,
                object_id,
                actor,
                action,
                since,
                until,
                before_seq,
                limit,
            )
        return [StoredEntry.from_row(row) for row in rows]
