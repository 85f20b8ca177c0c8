"""Timestamps as SRCs write them in metadata (RFC 7865 uses xs:dateTime, RFC 3339).

Seen: with `Z` or an offset (`+01:00`, `-0500`), without any zone (Oracle/Acme, Avaya SBCE), with
fractional seconds of any length (Cisco: milliseconds), lowercase `t`/`z`, a space instead of `T`, and dates
in 1970 from SRCs without a clock (Sonus/Ribbon). A time without zone is taken as UTC; a time before 2000
says nothing about the call and is treated as absent.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["EARLIEST_CREDIBLE", "parse_timestamp"]

EARLIEST_CREDIBLE = datetime(2000, 1, 1, tzinfo=UTC)


def parse_timestamp(value: str | None) -> datetime | None:
    """An RFC 3339 time as sent in metadata, as an aware datetime; None if absent, unreadable or before 2000.

    A time without zone is taken as UTC.
    """
    if not value:
        return None
    text = value.strip().replace(" ", "T", 1)
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment if moment >= EARLIEST_CREDIBLE else None
