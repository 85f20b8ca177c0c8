"""Recording references: short random codes people can read out, type and quote, e.g. ``HT-7K3M-Q9RX``.

Eight Crockford base32 symbols (40 random bits) after a fixed ``HT-`` prefix. The alphabet has no I, L, O or
U, so nothing reads as another symbol; on input, as Crockford's decoding rule says, I and L are taken as 1
and O as 0, case is ignored and hyphens and spaces may be anywhere or absent.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

__all__ = ["ALPHABET", "new_reference", "normalize_reference"]

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PREFIX = "HT"
_SYMBOLS = 8
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0"})


def new_reference(choice: Callable[[str], str] = secrets.choice) -> str:
    """A fresh random reference; `choice` picks one symbol (a seeded one in tests)."""
    body = "".join(choice(ALPHABET) for _ in range(_SYMBOLS))
    return _format(body)


def normalize_reference(text: str) -> str | None:
    """The canonical form of a reference as a person might type it, or None if it cannot be one."""
    compact = "".join(text.split()).replace("-", "").upper().translate(_READ_AS)
    if len(compact) == len(_PREFIX) + _SYMBOLS and compact.startswith(_PREFIX):
        compact = compact[len(_PREFIX) :]
    if len(compact) != _SYMBOLS or any(symbol not in ALPHABET for symbol in compact):
        return None
    return _format(compact)


def _format(body: str) -> str:
    return f"{_PREFIX}-{body[:4]}-{body[4:]}"
