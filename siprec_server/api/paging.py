"""Cursor pagination (``cursor``, ``limit`` 1-200; ``{"items": [...], "next_cursor": ...}``) over a list a
storage service returns whole: a tenant's holds, access requests, numbers, policies, retention classes.

Items are put in the order of a position key (a tuple of ints and strings, unique per item); the cursor is the
last position shown, so the next page starts after it even when that item has gone meanwhile. A cursor is
opaque to clients (base64url of a small JSON object) and names its list, so one list's cursor is refused by
another.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

from fastapi import Query

from .problems import ApiProblem

__all__ = [
    "Cursor",
    "Limit",
    "Position",
    "bad_cursor",
    "decode_cursor",
    "encode_cursor",
    "micros",
    "page_of",
]

T = TypeVar("T")
Position = tuple[int | str, ...]

Cursor = Annotated[
    str | None, Query(max_length=500, description="the previous page's next_cursor, unchanged")
]
Limit = Annotated[int, Query(ge=1, le=200, description="items per page")]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    """Microseconds since 1970 (exact, unlike a float timestamp): a time as a part of a position."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def bad_cursor() -> ApiProblem:
    return ApiProblem(
        422,
        "the cursor is not valid: pass next_cursor from the previous page unchanged",
        errors=[{"field": "query.cursor", "message": "not a cursor of this list", "type": "value_error"}],
    )


def encode_cursor(kind: str, position: Position) -> str:
    text = json.dumps({"k": kind, "p": list(position)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> Position:
    """The position a cursor of list ``kind`` holds; a 422 problem for anything else."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise bad_cursor() from None
    if not isinstance(data, dict) or data.get("k") != kind or not isinstance(data.get("p"), list):
        raise bad_cursor()
    position = data["p"]
    if not position or not all(type(part) in (int, str) for part in position):
        raise bad_cursor()
    return tuple(position)


def page_of(
    items: Sequence[T], position: Callable[[T], Position], *, kind: str, cursor: str | None, limit: int
) -> tuple[list[T], str | None]:
    """One page of ``items`` in ``position`` order, after the cursor's position; and the next cursor."""
    ordered = sorted(items, key=position)
    if cursor is not None:
        after = decode_cursor(kind, cursor)
        try:
            ordered = [item for item in ordered if position(item) > after]
        except TypeError:  # a forged cursor whose parts are not of the list's types
            raise bad_cursor() from None
    page = ordered[:limit]
    more = len(ordered) > limit
    return page, encode_cursor(kind, position(page[-1])) if more and page else None
