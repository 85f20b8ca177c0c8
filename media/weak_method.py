"""A bound method held without keeping its object alive.

An object's part that calls back into its owner through a plain bound method closes a reference cycle
(owner → part → method → owner), which only the cycle collector frees. The server keeps long-lived objects out
of that collector's sight (``gc.freeze``, see ``siprec_server.collector``), so per-call state must go by
reference counting alone: parts hold their owner's methods through :func:`weakly`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TypeVar

__all__ = ["weakly"]

T = TypeVar("T")


def weakly(method: Callable[[], T], *, default: T) -> Callable[[], T]:
    """``method`` (a bound method), called through a weak reference; ``default`` once its object is gone."""
    ref = weakref.WeakMethod(method)

    def call() -> T:
        bound = ref()
        return default if bound is None else bound()

    return call
