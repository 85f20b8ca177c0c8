"""Input types the routers share, so bad input is a 422 problem before it reaches a service.

Text goes to PostgreSQL, which refuses NUL in ``text``; free text must also say something (not only
spaces). Times must carry an offset, and lie in years a timestamp converts to UTC without overflowing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, Field

__all__ = ["CLASS_CODE", "EARLIEST_YEAR", "LATEST_YEAR", "TEXT", "Code", "Moment", "Number", "text_field"]

TEXT = r"^[^\x00]*[^\x00\s][^\x00]*$"  # no NUL anywhere, at least one visible character
CLASS_CODE = r"^[A-Za-z0-9_]{1,40}$"  # storage.retention_class.CLASS_CODE, in any case
EARLIEST_YEAR, LATEST_YEAR = 1970, 9000


def _within_years(moment: datetime) -> datetime:
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise ValueError(f"a time between the years {EARLIEST_YEAR} and {LATEST_YEAR}, with its offset")
    return moment


Moment = Annotated[AwareDatetime, AfterValidator(_within_years)]
Code = Annotated[str, Field(pattern=CLASS_CODE, description="a retention class code, e.g. quality_60d")]
Number = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=TEXT,
        description="a phone number in any written form: +36 1 234 5678, 06-1-234-5678, sip:+3612345678@pbx",
    ),
]


def text_field(max_length: int, description: str | None = None, *, default: Any = ...) -> Any:
    """A text field of 1-``max_length`` characters with something visible and no NUL (required unless a
    ``default`` is given)."""
    return Field(default, min_length=1, max_length=max_length, pattern=TEXT, description=description)
