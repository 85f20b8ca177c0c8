"""Errors of the S3-compatible blob store. Client library errors never escape it; credentials never appear."""

from __future__ import annotations

from .errors import StorageError

__all__ = ["BlobStoreError", "S3Error", "UnconfirmedUploadError"]


class BlobStoreError(StorageError):
    """An object store failed, refused or could not confirm an operation on a recording's object."""


class S3Error(BlobStoreError):
    """An S3 request failed. ``operation`` is the S3 operation (``upload_part``), ``key`` the object key
    without the prefix (empty for bucket-wide requests), ``code`` the S3 error code (``NoSuchBucket``,
    ``SignatureDoesNotMatch``, ``InvalidAccessKeyId``) or, when no answer came, the client's error name
    (``EndpointConnectionError``, ``ReadTimeoutError``)."""

    def __init__(self, message: str, *, operation: str, key: str, code: str) -> None:
        super().__init__(message)
        self.operation = operation
        self.key = key
        self.code = code


class UnconfirmedUploadError(S3Error):
    """The upload went through but reading the object back did not confirm it (missing, wrong size or wrong
    SHA-256): the recording must not be treated as stored."""
