"""Settings and value objects of the S3-compatible blob store (:mod:`storage.s3_store`).

The secret access key is never part of a repr, a log line or an error message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "S3Observer",
    "S3Result",
    "S3Settings",
    "StoredObject",
]

MiB = 1 << 20
# Amazon S3 multipart limits: every part but the last at least 5 MiB, at most 5 GiB, at most 10,000 parts.
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000

# Bucket names as S3 accepts them for new buckets: 3-63 of lower-case letters, digits, dots and hyphens.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True, slots=True, kw_only=True)
class S3Settings:
    """Where recordings go and how the store talks to it.

    ``endpoint_url`` is the S3 API's base URL (``https://s3.eu-central-1.amazonaws.com``, ``http://minio:9000``);
    ``None`` lets the client derive AWS's endpoint from ``region``. Object keys are ``prefix + key``, so one
    bucket can hold several installations. ``path_style`` puts the bucket in the URL path
    (``http://host/bucket/key``), which most self-hosted servers (SeaweedFS, MinIO, Ceph RGW) need; otherwise
    the client chooses (virtual-hosted where the bucket name allows it). Files larger than ``part_size`` are
    uploaded in parts of that size. ``max_attempts`` counts the first try: each request is retried on
    throttling, 5xx answers and connection failures with exponential back-off. ``read_ahead`` is how much a
    reader from :meth:`S3Store.open_reader` fetches at least per request.
    """

    endpoint_url: str | None
    bucket: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str = "us-east-1"
    prefix: str = ""
    path_style: bool = False
    part_size: int = 8 * MiB
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_attempts: int = 3
    read_ahead: int = 256 * 1024
    ca_bundle: str | None = (
        None  # PEM file of the CA that signed the endpoint's certificate; None: system CAs
    )

    def __post_init__(self) -> None:
        if self.endpoint_url is not None and not self.endpoint_url.startswith(("https://", "http://")):
            raise ValueError(f"S3 endpoint URL {self.endpoint_url!r} is not an http:// or https:// URL")
        if not _BUCKET.match(self.bucket) or ".." in self.bucket:
            raise ValueError(f"invalid S3 bucket name {self.bucket!r}")
        if not self.access_key_id or not self.secret_access_key:
            raise ValueError("S3 access key id and secret access key are both required")
        if self.prefix.startswith("/"):
            raise ValueError(f"S3 key prefix {self.prefix!r} must not start with '/'")
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            raise ValueError(
                f"S3 part size {self.part_size} is outside {MIN_PART_SIZE}..{MAX_PART_SIZE} octets"
            )
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("S3 timeouts must be positive")
        if self.max_attempts < 1:
            raise ValueError("S3 max_attempts counts the first try: at least 1")
        if self.read_ahead < 1:
            raise ValueError("S3 read_ahead must be positive")

    @property
    def max_object_size(self) -> int:
        """The largest file :meth:`S3Store.put_file` can upload with this part size."""
        return self.part_size * MAX_PARTS


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredObject:
    """An object as the store confirmed it. ``key`` is without the settings' prefix; ``etag`` without quotes
    (a multipart upload's ETag is not an MD5 of the content); ``sha256`` is the hex digest given at upload."""

    key: str
    size: int
    etag: str
    sha256: str | None = None


class S3Result(StrEnum):
    """How one S3 request ended, as the observer sees it (a bounded label set for metrics)."""

    OK = "ok"
    NOT_FOUND = "not_found"  # 404: an answer, not a failure, for HEAD
    CLIENT_ERROR = "client_error"  # other 4xx: refused (credentials, permissions, missing bucket)
    SERVER_ERROR = "server_error"  # 5xx after the retries
    TIMEOUT = "timeout"  # connect or read timeout after the retries
    CONNECTION_ERROR = "connection_error"  # refused, reset, DNS, TLS
    CANCELLED = "cancelled"


S3Observer = Callable[[str, str, float], None]
"""``observe(operation, result, seconds)``: called on the event loop after every S3 request (retries
included) with the S3 operation name in snake case (``put_object``, ``upload_part``, ``head_object``, ...),
an :class:`S3Result` value and the time it took. It must not block or raise."""
