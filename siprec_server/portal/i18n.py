"""The portal's words in Hungarian and English, and which of them a request gets.

The language is the ``lang`` cookie when it names one we have (the switch in the page header sets it), else
the best match of ``Accept-Language`` (RFC 9110 §12.5.4: language ranges with q-values), else Hungarian.
Every message exists in both languages (a test compares the keys); ``{name}`` fields are filled in by
:meth:`Translator.__call__`. Messages from the storage services (why a change was refused) are English and
are shown after a translated lead-in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .messages_en import MESSAGES_EN
from .messages_hu import MESSAGES_HU

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "LANGUAGE_COOKIE",
    "MESSAGES",
    "Message",
    "Translator",
    "choose_language",
]

LANGUAGE_COOKIE = "lang"
DEFAULT_LANGUAGE = "hu"

MESSAGES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {"hu": MappingProxyType(MESSAGES_HU), "en": MappingProxyType(MESSAGES_EN)}
)
LANGUAGES: tuple[str, ...] = tuple(MESSAGES)
_NAMES = {"hu": "Magyar", "en": "English"}


@dataclass(frozen=True, slots=True)
class Message:
    """A message to show: its key and the values of its fields, translated when the page is rendered."""

    key: str
    fields: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def of(cls, key: str, **fields: object) -> Message:
        return cls(key, fields)


class Translator:
    """The messages of one language: ``t("recording.title", reference="HT-…")``."""

    def __init__(self, language: str) -> None:
        self.language = language if language in MESSAGES else DEFAULT_LANGUAGE
        self._messages = MESSAGES[self.language]

    def __call__(self, key: str, **fields: object) -> str:
        text = self._messages.get(key) or MESSAGES["en"].get(key) or key
        return text.format(**fields) if fields else text

    def say(self, message: Message | str) -> str:
        """A :class:`Message` (or a bare key) in this language."""
        if isinstance(message, str):
            return self(message)
        return self(message.key, **message.fields)

    def has(self, key: str) -> bool:
        return key in self._messages

    @staticmethod
    def name_of(language: str) -> str:
        """A language's name in itself, for the switch."""
        return _NAMES.get(language, language)


def choose_language(cookie: str | None, accept_language: str | None) -> str:
    """The ``lang`` cookie's language if we have it, else the best ``Accept-Language`` match, else Hungarian."""
    if cookie is not None and cookie in MESSAGES:
        return cookie
    best, best_q = DEFAULT_LANGUAGE, 0.0
    for item in (accept_language or "").split(",")[:20]:
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().split("-", 1)[0].lower()
        if primary not in MESSAGES:
            continue
        q = _quality(params)
        if q > best_q:  # equal weights: the one listed first wins
            best, best_q = primary, q
    return best


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0
