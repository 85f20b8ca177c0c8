"""The recording catalogue (PostgreSQL via asyncpg) and the recording files (local filesystem)."""

from .blobs import FileBlobStore
from .catalogue import Catalogue
from .commands import CommandListener, CommandReply, send_command
from .database import Migration, load_migrations, migrate, open_pool
from .embedded import EmbeddedDatabase
from .errors import (
    CatalogueError,
    EmbeddedDatabaseError,
    MigrationError,
    RecordingNotFoundError,
    StorageError,
)
from .models import (
    DtmfRecord,
    MetadataSnapshot,
    NewRecording,
    ParticipantRecord,
    ParticipantRole,
    PauseRecord,
    Recording,
    RecordingStatus,
    StreamRecord,
)
from .reference import new_reference, normalize_reference
from .s3_config import S3Settings, StoredObject
from .s3_errors import BlobStoreError, S3Error, UnconfirmedUploadError

__all__ = [
    "BlobStoreError",
    "Catalogue",
    "CatalogueError",
    "CommandListener",
    "CommandReply",
    "DtmfRecord",
    "EmbeddedDatabase",
    "EmbeddedDatabaseError",
    "FileBlobStore",
    "MetadataSnapshot",
    "Migration",
    "MigrationError",
    "NewRecording",
    "ParticipantRecord",
    "ParticipantRole",
    "PauseRecord",
    "Recording",
    "RecordingNotFoundError",
    "RecordingStatus",
    "S3Error",
    "S3Settings",
    "StorageError",
    "StoredObject",
    "StreamRecord",
    "UnconfirmedUploadError",
    "load_migrations",
    "migrate",
    "new_reference",
    "normalize_reference",
    "open_pool",
    "send_command",
]
