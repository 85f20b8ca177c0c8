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

__all__ = [
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
    "StorageError",
    "StreamRecord",
    "load_migrations",
    "migrate",
    "new_reference",
    "normalize_reference",
    "open_pool",
    "send_command",
]
