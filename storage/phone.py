"""Phone numbers in any written form, to one E.164 form for storing and searching (GDPR Art. 15 requests).

`+36 1 234 5678`, `06-1-234-5678`, `0036 1 234 5678` and `3612345678` are one number: ``+3612345678``. Parsing
and validation are Google's libphonenumber rules (the ``phonenumbers`` package), read in a default region for
numbers written without a country code. A number libphonenumber does not hold valid for its region (a PBX
extension such as ``201``, a truncated or foreign-national number) is kept as its digits, so it still matches
itself exactly and never matches a real number by accident.
"""

from __future__ import annotations

import re

import phonenumbers

__all__ = ["DEFAULT_REGION", "number_key", "to_e164"]

DEFAULT_REGION = "HU"
_URI = re.compile(r"^(?:sips?|tel):([^@;]+)", re.IGNORECASE)
_DIALLABLE = re.compile(r"^\+?[0-9*#]+$")
_SEPARATORS = re.compile(r"[\s\-.()/]")


def to_e164(text: str, region: str = DEFAULT_REGION) -> str | None:
    """E.164 (``+3612345678``) of ``text`` if it is a valid phone number, read in ``region``; else None.

    ``text`` may be a ``sip:``/``tel:`` URI (its user part is read), with visual separators anywhere.
    """
    digits = _digits(text)
    if digits is None or not any(c.isdigit() for c in digits) or "*" in digits or "#" in digits:
        return None
    try:
        parsed = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def number_key(text: str, region: str = DEFAULT_REGION) -> str | None:
    """What a recording stores and a search compares: the E.164 form when ``text`` is a valid number, else
    its dialled digits (``201``, ``*21#``); None when ``text`` holds no number at all."""
    e164 = to_e164(text, region)
    if e164 is not None:
        return e164
    return _digits(text)


def _digits(text: str) -> str | None:
    match = _URI.match(text.strip())
    user = match.group(1) if match else text.strip()
    compact = _SEPARATORS.sub("", user)
    return compact if compact and _DIALLABLE.fullmatch(compact) else None
