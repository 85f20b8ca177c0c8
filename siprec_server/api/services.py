"""What the API's handlers work with: the storage services, built once per server over one pool and clock.

The routes never build a service themselves; they take :class:`ApiServices` from the app state
(:func:`siprec_server.api.deps.services`). :func:`make_services` builds the set the server runs with, the way
the CLI builds each service; tests pass their own clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storage.access_requests import AccessRequests
from storage.api_keys import ApiKeyStore
from storage.audio_opener import AudioOpener, plain_audio_opener, plain_file_opener
from storage.audit import AuditLog
from storage.blobs import FileBlobStore
from storage.catalogue import Catalogue
from storage.consent import ConsentLedger
from storage.erasure import ErasureService
from storage.holds import HoldService
from storage.login_limit import LoginLimiter, LoginLimits
from storage.login_sessions import LoginSessions, SessionLimits
from storage.passwords import Passwords
from storage.policies import PolicyStore
from storage.retention_service import RetentionService
from storage.tenants import TenantStore
from storage.users import UserStore

from ..sealing import RecordingCrypto, make_audio_opener, make_file_opener

__all__ = ["ApiServices", "make_services"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiServices:
    pool: Any  # asyncpg.Pool
    catalogue: Catalogue
    audit: AuditLog
    audio: AudioOpener | None  # a recording's audio as plaintext (decrypting sealed files); blocking
    # accounts
    users: UserStore
    sessions: LoginSessions
    api_keys: ApiKeyStore
    login_limit: LoginLimiter
    # the GDPR lifecycle
    retention: RetentionService
    holds: HoldService
    access: AccessRequests
    erasure: ErasureService
    consent: ConsentLedger
    policies: PolicyStore
    tenants: TenantStore
    now: Callable[[], datetime]  # UTC
    # where recordings lie and the keys that decrypt them (None: plain files), for reading byte ranges
    blobs: FileBlobStore | None = None
    crypto: RecordingCrypto | None = None
    # Cookies carry the Secure attribute unless the API is served over plain HTTP for development.
    secure_cookies: bool = True


def make_services(
    pool: Any,
    *,
    blobs: FileBlobStore,
    bundle_dir: Path,
    crypto: RecordingCrypto | None = None,
    clock: Callable[[], datetime] = _utc_now,
    passwords: Passwords | None = None,
    login_limits: LoginLimits | None = None,
    session_limits: SessionLimits | None = None,
    secure_cookies: bool = True,
) -> ApiServices:
    """The services over ``pool``; ``crypto`` decrypts sealed recordings. Call it on the event loop the API
    runs in (the audio openers wait for keys on it)."""
    audit = AuditLog(clock=clock)
    if crypto is not None:
        open_audio, open_file = make_audio_opener(crypto, blobs), make_file_opener(crypto, blobs)
    else:
        open_audio, open_file = plain_audio_opener(blobs), plain_file_opener(blobs)
    limiter = LoginLimiter(pool, limits=login_limits, clock=clock)
    return ApiServices(
        pool=pool,
        catalogue=Catalogue(pool),
        audit=audit,
        audio=open_audio,
        users=UserStore(pool, audit, passwords=passwords or Passwords(), limiter=limiter, clock=clock),
        sessions=LoginSessions(pool, audit, limits=session_limits, clock=clock),
        api_keys=ApiKeyStore(pool, audit, clock=clock),
        login_limit=limiter,
        retention=RetentionService(pool, audit=audit, clock=clock),
        holds=HoldService(pool, audit=audit, clock=clock),
        access=AccessRequests(
            pool,
            audit=audit,
            open_audio=open_audio,
            open_file=open_file,
            bundle_dir=bundle_dir,
            clock=clock,
        ),
        erasure=ErasureService(pool, blobs, audit=audit, clock=clock),
        consent=ConsentLedger(pool, audit=audit),
        policies=PolicyStore(pool, audit, clock=clock),
        tenants=TenantStore(pool, audit, clock=clock),
        now=clock,
        blobs=blobs,
        crypto=crypto,
        secure_cookies=secure_cookies,
    )
