"""Telephone numbers as SRCs write them, normalised to E.164 (ITU-T E.164, RFC 3966 for `tel:` forms).

Pure functions, no I/O. The same number reaches us as `+36301234567`, `0036301234567`, `06301234567`,
`36301234567` or `+36 30 123-4567`; `normalise_number` turns each into one `PhoneNumber` whose `e164` is
`+36301234567`, and `PhoneNumber.written_forms()` lists every way it may have been written, so a search by
any written form finds the recordings of all the others (design guide §3, GDPR Art. 15 access requests).

Rules (for a `NumberingPlan`; `HUNGARY` is the default):

- Visual separators (space, `-`, `.`, `(`, `)`, `/`) are dropped (RFC 3966 §5.1.1); anything else that is
  not a digit (letters, `*`, `#`) means the text is no telephone number: `None`.
- `+CC…` and the international prefix (`00CC…`) are international: E.164 when 8 to 15 digits long.
- The trunk prefix (`06…` in Hungary) and the bare country code (`36…`) are national forms: E.164 only when
  the rest is a valid national significant number (NSN), so that an extension such as `3612` is never
  mistaken for a Hungarian number. Hungarian NSNs: `1` + 7 digits (Budapest), mobile and corporate ranges
  (`20`, `21`, `30`, `31`, `50`, `70`) + 7 digits, every other area code + 6 digits.
- Up to `max_extension_digits` digits: a PBX extension, left as it is.
- Anything else (a national number of another country, a truncated number): kept as digits, no E.164.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["HUNGARY", "NumberKind", "NumberingPlan", "PhoneNumber", "normalise_number"]

_SEPARATORS = re.compile(r"[\s\-.()/]")
_DIALLABLE = re.compile(r"\+?\d+")
_E164_MAX_DIGITS = 15  # ITU-T E.164 §6
_E164_MIN_DIGITS = 8  # shorter "international" strings are typing errors, not numbers


class NumberKind(StrEnum):
    E164 = "e164"  # normalised: `PhoneNumber.e164` is set
    EXTENSION = "extension"  # a short PBX number, kept as written
    UNKNOWN = "unknown"  # digits we cannot place in a numbering plan


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberingPlan:
    """How national numbers of one country are written; `nine_digit_ranges` have 9-digit NSNs."""

    country_code: str
    international_prefix: str
    trunk_prefix: str
    nsn_digits: int
    nine_digit_ranges: frozenset[str]
    max_extension_digits: int = 6

    def valid_nsn(self, nsn: str) -> bool:
        if not nsn.isdigit() or nsn.startswith("0"):
            return False
        if nsn[:2] in self.nine_digit_ranges:
            return len(nsn) == 9
        return len(nsn) == self.nsn_digits


# Hungary: +36, international prefix 00, trunk prefix 06 (NMHH numbering plan).
HUNGARY = NumberingPlan(
    country_code="36",
    international_prefix="00",
    trunk_prefix="06",
    nsn_digits=8,
    nine_digit_ranges=frozenset({"20", "21", "30", "31", "50", "70"}),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PhoneNumber:
    """A number as written (`raw`), its dialled digits (`digits`, `+` kept) and its E.164 form if known."""

    raw: str
    digits: str
    kind: NumberKind
    e164: str | None = None
    plan: NumberingPlan = HUNGARY

    @property
    def value(self) -> str:
        """The best single form: E.164 when known, else the digits as written (extensions stay as they are)."""
        return self.e164 or self.digits

    def written_forms(self) -> frozenset[str]:
        """Every form this number is commonly written in, the E.164 one included (used to search by number)."""
        if self.e164 is None:
            return frozenset({self.digits})
        international = self.e164[1:]
        forms = {self.e164, international, self.plan.international_prefix + international}
        if international.startswith(self.plan.country_code):
            nsn = international[len(self.plan.country_code) :]
            forms.add(self.plan.trunk_prefix + nsn)
        return frozenset(forms)


def normalise_number(raw: str, plan: NumberingPlan = HUNGARY) -> PhoneNumber | None:
    """`raw` (a URI user part, a `tel:` number, digits with separators) as a `PhoneNumber`; None if no number."""
    digits = _SEPARATORS.sub("", raw.strip())
    if not _DIALLABLE.fullmatch(digits):
        return None
    e164 = _to_e164(digits, plan)
    if e164 is not None:
        return PhoneNumber(raw=raw, digits=digits, kind=NumberKind.E164, e164=e164, plan=plan)
    if not digits.startswith("+") and len(digits) <= plan.max_extension_digits:
        return PhoneNumber(raw=raw, digits=digits, kind=NumberKind.EXTENSION, plan=plan)
    return PhoneNumber(raw=raw, digits=digits, kind=NumberKind.UNKNOWN, plan=plan)


def _to_e164(digits: str, plan: NumberingPlan) -> str | None:
    if digits.startswith("+"):
        return _international(digits[1:])
    if digits.startswith(plan.international_prefix):
        return _international(digits[len(plan.international_prefix) :])
    for prefix in (plan.trunk_prefix, plan.country_code):
        if digits.startswith(prefix) and plan.valid_nsn(digits[len(prefix) :]):
            return f"+{plan.country_code}{digits[len(prefix) :]}"
    return None


def _international(digits: str) -> str | None:
    if digits.startswith("0") or not _E164_MIN_DIGITS <= len(digits) <= _E164_MAX_DIGITS:
        return None
    return "+" + digits
