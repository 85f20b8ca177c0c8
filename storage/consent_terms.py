"""How consent to recording is asked (GDPR Art. 7): the answer window, the keys, and the prompt's version.

One definition for the policy that stores the terms (``recording_policies.consent``), the decision at call
setup, the announcement texts, and the consent gate in the server (``siprec_server.consent``), which judges the
party's key presses by them. The proof of consent names the prompt version (Art. 7(1)).

The valid terms are the stricter of the two rule sets this product had, where every current caller agrees:

- ``window_seconds``: a number of seconds from 1 to 120; a fraction is allowed (the gate works in seconds on
  the media clock), a whole number is kept as an ``int`` so texts read "10 seconds", not "10.0";
- ``yes_digit``, ``no_digit``, ``stop_digit``: one DTMF key each (0-9, ``*``, ``#``, A-D; RFC 4733 §3.2
  events 0-15), three different keys; a letter key may be written in lower case, and in JSON a digit may be
  written as a number (``"yes_digit": 1``);
- ``prompt_version``: 1-40 printable characters without surrounding spaces (``2026-11 HU/EN``);
- nothing else: an unknown field is refused, so a misspelt one is not silently replaced by its default.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DTMF_DIGITS", "MAX_WINDOW", "MIN_WINDOW", "ConsentTerms", "ConsentTermsError"]

#: The sixteen DTMF keys (RFC 4733 §3.2 events 0-15).
DTMF_DIGITS = "0123456789*#ABCD"
MIN_WINDOW = 1
MAX_WINDOW = 120
MAX_PROMPT_VERSION = 40
_FIELDS = ("window_seconds", "yes_digit", "no_digit", "stop_digit", "prompt_version")
_KEYS = ("yes_digit", "no_digit", "stop_digit")


class ConsentTermsError(ValueError):
    """Consent terms are malformed: the message names the field and what it must be."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentTerms:
    """What the party is asked at call start: the keys, how long we wait, and which prompt the PBX plays."""

    window_seconds: float = 10
    yes_digit: str = "1"
    no_digit: str = "2"
    stop_digit: str = "9"
    prompt_version: str = "v1"

    def __post_init__(self) -> None:
        window = self.window_seconds
        if isinstance(window, bool) or not isinstance(window, int | float) or not math.isfinite(window):
            raise ConsentTermsError(f"window_seconds must be a number of seconds, not {window!r}")
        if not MIN_WINDOW <= window <= MAX_WINDOW:
            raise ConsentTermsError(f"window_seconds must be {MIN_WINDOW}-{MAX_WINDOW} seconds, not {window}")
        object.__setattr__(
            self, "window_seconds", int(window) if float(window).is_integer() else float(window)
        )
        keys: dict[str, str] = {}
        for name in _KEYS:
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) != 1 or value.upper() not in DTMF_DIGITS:
                raise ConsentTermsError(f"{name} must be one key of 0-9, *, #, A-D, not {value!r}")
            keys[name] = value.upper()
            object.__setattr__(self, name, value.upper())
        if len(set(keys.values())) != len(keys):
            raise ConsentTermsError(f"the yes, no and stop keys must differ (three different keys): {keys}")
        version = self.prompt_version
        if (
            not isinstance(version, str)
            or not 0 < len(version) <= MAX_PROMPT_VERSION
            or version != version.strip()
            or not version.isprintable()
        ):
            raise ConsentTermsError(
                f"prompt_version must be 1-{MAX_PROMPT_VERSION} printable characters without surrounding "
                f"spaces, not {version!r}"
            )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConsentTerms:
        """From a policy's stored terms; absent fields take the defaults, unknown ones are refused."""
        if not isinstance(data, Mapping):
            raise ConsentTermsError(f"consent terms must be a JSON object, not {type(data).__name__}")
        unknown = sorted(str(key) for key in data if key not in _FIELDS)
        if unknown:
            raise ConsentTermsError(f"unknown consent terms {unknown}; known: {list(_FIELDS)}")
        values = dict(data)
        for name in _KEYS:
            value = values.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9:
                values[name] = str(value)
        return cls(**values)

    @classmethod
    def parse(cls, terms: Mapping[str, Any] | str | bytes) -> ConsentTerms:
        """From the terms as JSON text, or already decoded (see :meth:`from_json`)."""
        if not isinstance(terms, str | bytes):
            return cls.from_json(terms)
        try:
            decoded = json.loads(terms)
        except ValueError as exc:
            raise ConsentTermsError(f"consent terms are not JSON: {exc}") from exc
        return cls.from_json(decoded)

    def to_json(self) -> dict[str, Any]:
        """The terms as a policy stores them (every field written out)."""
        return {
            "window_seconds": self.window_seconds,
            "yes_digit": self.yes_digit,
            "no_digit": self.no_digit,
            "stop_digit": self.stop_digit,
            "prompt_version": self.prompt_version,
        }
