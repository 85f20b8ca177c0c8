"""`storage.phone.number_key`, fast enough for call setup: the same answer, without libphonenumber's full
parse (tens of microseconds) for the number most calls carry, one already written in E.164.

- The text is first reduced to its dialled digits exactly as `storage.phone` reads it (the user part of a
  ``sip:``/``tel:`` URI, visual separators dropped), so ``sip:+36…@sbc1``, ``tel:+36-…`` and ``+36 …`` share
  one cache entry.
- ``+<digits>`` needs no parse when libphonenumber's parse would not change the digits: it splits the country
  code the same way (the shortest known code), and only a national prefix after it (``+36 06…``) or a leading
  zero (``+39 06…``) can make the result differ. Then the key is the text itself: a valid number formats back
  to exactly these digits, an invalid one is kept as written. Anything else takes the full path.
- Results are remembered (LRU): callers and DIDs repeat call after call.

`tests/unit/storage/test_attribution.py` holds the property that `party_key` equals `number_key`.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

from .phone import DEFAULT_REGION, number_key

__all__ = ["dialled", "party_key"]

# As storage.phone reads a number, so that number_key(dialled(text)) == number_key(text).
_URI = re.compile(r"^(?:sips?|tel):([^@;]+)", re.IGNORECASE)
_SEPARATORS = re.compile(r"[\s\-.()/]")
_DIALLABLE = re.compile(r"^\+?[0-9*#]+$")
_INTERNATIONAL = re.compile(r"^\+[1-9][0-9]*$")
_NO_PREFIX = re.compile(r"(?!)")  # matches nothing: the country has no national prefix
_national_prefixes: dict[int, re.Pattern[str]] = {}


def dialled(text: str) -> str | None:
    """The dialled digits of ``text`` (``+``, digits, ``*``, ``#``), or None when it holds no number."""
    stripped = text.strip()
    match = _URI.match(stripped)
    compact = _SEPARATORS.sub("", match.group(1) if match else stripped)
    return compact if compact and _DIALLABLE.fullmatch(compact) else None


def party_key(text: str, region: str = DEFAULT_REGION) -> str | None:
    """`storage.phone.number_key(text, region)`, remembered and with the E.164 shortcut."""
    compact = dialled(text)
    return None if compact is None else key_of_dialled(compact, region)


@lru_cache(maxsize=65536)
def key_of_dialled(compact: str, region: str) -> str | None:
    """`number_key` of digits already reduced by `dialled`."""
    if _INTERNATIONAL.fullmatch(compact) and _parse_keeps(compact):
        return compact
    return number_key(compact, region)


def _parse_keeps(compact: str) -> bool:
    """True when libphonenumber's parse of ``+<digits>`` yields exactly these digits back (or fails)."""
    digits = compact[1:]
    for length in range(1, min(3, len(digits)) + 1):  # the shortest known country code, as parse takes it
        code = int(digits[:length])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            national = digits[length:]
            return not national.startswith("0") and _national_prefix(code).match(national) is None
    return True  # no country code: parse fails and number_key keeps the text as written


def _national_prefix(code: int) -> re.Pattern[str]:
    pattern = _national_prefixes.get(code)
    if pattern is None:
        region = phonenumbers.region_code_for_country_code(code)
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, region)
        prefix = None if metadata is None else metadata.national_prefix_for_parsing
        pattern = re.compile(prefix) if prefix else _NO_PREFIX
        _national_prefixes[code] = pattern
    return pattern
