"""Domain errors raised by the storage package; database driver errors never escape it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg  # type: ignore[import-untyped,unused-ignore]

__all__ = [
    "CatalogueError",
    "ConflictError",
    "EmbeddedDatabaseError",
    "IntegrityError",
    "KeyUnavailableError",
    "LifecycleError",
    "MigrationError",
    "NotFoundError",
    "PolicyRuleError",
    "RecordingNotFoundError",
    "StatutoryFloorError",
    "StorageError",
    "TwoPersonRuleError",
    "UnderHoldError",
    "translated",
]


class StorageError(Exception):
    """Base of every error the storage package raises on purpose."""


class EmbeddedDatabaseError(StorageError):
    """The embedded PostgreSQL could not be initialised, started, reached or stopped."""


class CatalogueError(StorageError):
    """The catalogue database refused or failed an operation (driver errors are wrapped in this)."""


class MigrationError(CatalogueError):
    """A schema migration is malformed, failed, or differs from the one already applied."""


class NotFoundError(CatalogueError):
    """The named object (tenant, number, policy, hold, request, ...) does not exist, or not for this tenant."""


class RecordingNotFoundError(NotFoundError):
    """An update named a recording id that is not in the catalogue."""


class ConflictError(CatalogueError):
    """The slug, hint, number, range or network is already taken. ``owner_slug`` names the tenant holding it,
    for an operator; the message does not, since a tenant may see it."""

    def __init__(self, message: str, *, owner_slug: str | None = None) -> None:
        super().__init__(message)
        self.owner_slug = owner_slug


class LifecycleError(StorageError):
    """A data-protection rule refused the operation; the message says which rule and why."""


class PolicyRuleError(LifecycleError):
    """A recording policy breaks one or more rules (:func:`storage.policy_rules.validate_policy`);
    ``problems`` lists each in a sentence."""

    def __init__(self, problems: tuple[str, ...]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class UnderHoldError(LifecycleError):
    """The recording is restricted by a legal hold (GDPR Art. 18): it cannot be deleted or shortened."""


class StatutoryFloorError(LifecycleError):
    """A statutory retention period cannot be shortened, and erasure is refused under Art. 17(3)(b)."""


class TwoPersonRuleError(LifecycleError):
    """Releasing a hold needs a second, different person to approve it."""


class KeyUnavailableError(StorageError):
    """A recording's data key is destroyed or its tenant key is missing: the audio cannot be read."""


class IntegrityError(StorageError):
    """Stored data does not match its recorded hash: it was changed or damaged."""


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Turn a database or connection failure inside the block into a :class:`CatalogueError` naming ``action``."""
    try:
        yield
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise CatalogueError(f"cannot {action}: {exc}") from exc
