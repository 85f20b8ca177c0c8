"""Which of a tenant's recordings a delivery target takes: by number, direction and retention class.

Each criterion left empty matches every recording; those given must all match. Numbers are stored as the
catalogue stores a recording's parties (:func:`storage.phone.number_key`: E.164, or an extension's digits), read
in the tenant's region, so ``06 1 234 5678`` in a filter matches a call of ``+3612345678``. The filter is
stored as the target's ``filter`` JSON and tested in SQL (:data:`MATCHES`), where the outbox picks recordings.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .phone import DEFAULT_REGION, number_key
from .retention_class import CLASS_CODE

__all__ = ["MATCHES", "DeliveryFilter", "FilterDirection"]


class FilterDirection(enum.StrEnum):
    """Seen from the tenant, as the call facts store it (``call_facts.direction.value``)."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


# Target row ``t`` takes recording row ``r`` (its retention class joined as ``c``), per t.filter.
MATCHES = """
    (coalesce(jsonb_array_length(t.filter -> 'numbers'), 0) = 0
        OR r.numbers && ARRAY(SELECT jsonb_array_elements_text(t.filter -> 'numbers')))
    AND (t.filter ->> 'direction' IS NULL OR r.call_facts -> 'direction' ->> 'value' = t.filter ->> 'direction')
    AND (coalesce(jsonb_array_length(t.filter -> 'classes'), 0) = 0
        OR c.code IN (SELECT jsonb_array_elements_text(t.filter -> 'classes')))
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryFilter:
    numbers: Sequence[str] = ()  # stored keys (E.164); a recording with any of them matches
    direction: FilterDirection | None = None
    classes: Sequence[str] = ()  # retention class codes

    def __post_init__(self) -> None:
        object.__setattr__(self, "numbers", tuple(dict.fromkeys(self.numbers)))
        object.__setattr__(
            self, "classes", tuple(dict.fromkeys(code.strip().lower() for code in self.classes))
        )
        if self.direction is not None:
            object.__setattr__(self, "direction", FilterDirection(self.direction))
        for code in self.classes:
            if not CLASS_CODE.match(code):
                raise ValueError(f"{code!r} is not a retention class code")

    @classmethod
    def of(
        cls,
        *,
        numbers: Iterable[str] = (),
        direction: str | None = None,
        classes: Iterable[str] = (),
        region: str = DEFAULT_REGION,
    ) -> DeliveryFilter:
        """From numbers as a person writes them (any form, read in ``region``); ``ValueError`` for one that
        holds no number."""
        keys = []
        for text in numbers:
            key = number_key(text, region)
            if key is None:
                raise ValueError(f"{text!r} is not a phone number")
            keys.append(key)
        return cls(
            numbers=keys,
            direction=None if direction is None else FilterDirection(direction.strip().lower()),
            classes=list(classes),
        )

    @property
    def everything(self) -> bool:
        return not self.numbers and self.direction is None and not self.classes

    def describe(self) -> str:
        if self.everything:
            return "all recordings"
        parts = []
        if self.numbers:
            parts.append("numbers " + ", ".join(self.numbers))
        if self.direction is not None:
            parts.append(self.direction.value)
        if self.classes:
            parts.append("classes " + ", ".join(self.classes))
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "numbers": list(self.numbers),
            "direction": None if self.direction is None else self.direction.value,
            "classes": list(self.classes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeliveryFilter:
        return cls(
            numbers=data.get("numbers") or (),
            direction=data.get("direction"),
            classes=data.get("classes") or (),
        )
