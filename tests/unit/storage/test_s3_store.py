"""The S3 blob store against a real S3 server (SeaweedFS started by the tests): uploads in one piece and in
parts, confirmation, ranged reads and the blocking reader that decoders use, and every way an upload fails."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import logging
import os
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from storage.errors import IntegrityError, StorageError
from storage.s3_config import MIN_PART_SIZE, S3Settings
from storage.s3_errors import BlobStoreError, S3Error, UnconfirmedUploadError
from storage.s3_reader import S3ObjectReader
from storage.s3_store import S3Store
from storage.sealed import SealedReader, SealedWriter
from tests.s3 import SeaweedFS, running_seaweedfs
from tests.unit.storage.test_sealed import RATE, Int16, phone_call, write_flac

MiB = 1 << 20


class Observed:
    """What the store reported to its metrics observer, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float]] = []

    def __call__(self, operation: str, result: str, seconds: float) -> None:
        self.calls.append((operation, result, seconds))

    @property
    def operations(self) -> list[tuple[str, str]]:
        return [(operation, result) for operation, result, _ in self.calls]


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def settings(seaweed: SeaweedFS) -> S3Settings:
    """The shared server's bucket, under a prefix of this test's own."""
    return dataclasses.replace(seaweed.settings, prefix=f"{uuid.uuid4().hex}/recordings/")


@pytest.fixture
def observed() -> Observed:
    return Observed()


@pytest.fixture
async def store(settings: S3Settings, observed: Observed) -> AsyncIterator[S3Store]:
    async with S3Store(settings, observe=observed) as store:
        yield store


@pytest.fixture(scope="module")
def call() -> Int16:
    return phone_call(20.0)


@pytest.fixture(scope="module")
def plain_flac(call: Int16, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("flac") / "call.flac"
    write_flac(str(path), call)
    return path


@pytest.fixture(scope="module")
def flac_content(plain_flac: Path) -> bytes:
    return plain_flac.read_bytes()


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def uploads(seaweed: SeaweedFS, settings: S3Settings) -> list[dict[str, Any]]:
    answer = seaweed.client().list_multipart_uploads(Bucket=settings.bucket, Prefix=settings.prefix)
    return list(answer.get("Uploads") or [])


def objects(seaweed: SeaweedFS, settings: S3Settings) -> list[str]:
    answer = seaweed.client().list_objects_v2(Bucket=settings.bucket, Prefix=settings.prefix)
    return [entry["Key"] for entry in answer.get("Contents") or []]


async def test_a_small_recording_goes_up_in_one_request_and_is_confirmed(
    store: S3Store,
    observed: Observed,
    plain_flac: Path,
    flac_content: bytes,
    settings: S3Settings,
    seaweed: SeaweedFS,
) -> None:
    digest = hashlib.sha256(flac_content).hexdigest()
    stored = await store.put_file("2026/11/29/call.flac", plain_flac, sha256=digest.upper())

    content = flac_content
    assert stored.key == "2026/11/29/call.flac"
    assert stored.size == len(content)
    assert stored.etag == hashlib.md5(content).hexdigest()  # S3's ETag of a single PUT
    assert stored.sha256 == digest
    assert observed.operations == [("put_object", "ok"), ("head_object", "ok")]
    assert objects(seaweed, settings) == [settings.prefix + "2026/11/29/call.flac"]
    assert await store.head("2026/11/29/call.flac") == stored
    assert await store.read_range(stored.key, 0, stored.size) == content
    assert await store.read_range(stored.key, 4, 42) == content[4:42]  # the FLAC STREAMINFO block
    assert await store.read_range(stored.key, stored.size - 10, stored.size + 100) == content[-10:]
    assert await store.read_range(stored.key, 7, 7) == b""


async def test_a_large_recording_goes_up_in_parts_and_reads_back_byte_for_byte(
    store: S3Store, observed: Observed, tmp_path: Path, settings: S3Settings, seaweed: SeaweedFS
) -> None:
    assert settings.part_size == MIN_PART_SIZE
    source = random_file(tmp_path / "long-call.flac", 2 * MIN_PART_SIZE + 123_457)
    content = await asyncio.to_thread(source.read_bytes)

    stored = await store.put_file("long-call.flac", source, sha256=hashlib.sha256(content).hexdigest())

    assert stored.size == len(content)
    assert stored.etag.endswith("-3")  # S3's multipart ETag: MD5 of the part MD5s, dash, part count
    assert observed.operations == [
        ("create_multipart_upload", "ok"),
        ("upload_part", "ok"),
        ("upload_part", "ok"),
        ("upload_part", "ok"),
        ("complete_multipart_upload", "ok"),
        ("head_object", "ok"),
    ]
    assert uploads(seaweed, settings) == []
    boundary = MIN_PART_SIZE
    assert (
        await store.read_range("long-call.flac", boundary - 5, boundary + 5)
        == content[boundary - 5 : boundary + 5]
    )
    with store.open_reader("long-call.flac", stored.size) as reader:
        assert await asyncio.to_thread(reader.read) == content


async def test_a_plain_recording_decodes_through_the_reader_and_seeks_to_the_middle(
    store: S3Store, observed: Observed, plain_flac: Path, call: Int16
) -> None:
    stored = await store.put_file("call.flac", plain_flac)
    observed.calls.clear()

    def decode() -> tuple[Any, Any]:
        with store.open_reader("call.flac", stored.size) as reader:
            whole, rate = soundfile.read(reader, dtype="int16", always_2d=True)
            assert rate == RATE
            reader.seek(0)
            with soundfile.SoundFile(reader) as flac:
                flac.seek(len(call) // 2)
                rest = flac.read(dtype="int16", always_2d=True)
        return whole, rest

    whole, rest = await asyncio.to_thread(decode)

    assert np.array_equal(whole, call)
    assert np.array_equal(rest, call[len(call) // 2 :])
    # The read-ahead serves libsndfile's many small reads (hundreds of a few KiB each) with a few requests:
    # two per pass over these 280 KB, the second pass starting over at the beginning and again mid-file.
    assert 250_000 < stored.size < 2 * store.settings.read_ahead
    assert set(observed.operations) == {("get_object", "ok")}
    assert len(observed.calls) <= 5


async def test_a_sealed_recording_decrypts_and_decodes_from_the_store(
    store: S3Store, call: Int16, flac_content: bytes, tmp_path: Path
) -> None:
    key = os.urandom(32)
    sealed = tmp_path / "call.flac.sealed"
    with SealedWriter(sealed, key) as writer:
        write_flac(writer, call)
    stored = await store.put_file("call.flac.sealed", sealed, sha256=sha256_of(sealed))

    def play() -> tuple[bytes, Any]:
        with store.open_reader("call.flac.sealed", stored.size) as remote, SealedReader(remote, key) as plain:
            decrypted = plain.read()
            plain.seek(0)
            with soundfile.SoundFile(plain) as flac:
                flac.seek(len(call) // 2)
                rest = flac.read(dtype="int16", always_2d=True)
        return decrypted, rest

    decrypted, rest = await asyncio.to_thread(play)

    assert decrypted == flac_content
    assert np.array_equal(rest, call[len(call) // 2 :])


async def test_the_reader_refuses_to_block_the_event_loop(store: S3Store, plain_flac: Path) -> None:
    stored = await store.put_file("call.flac", plain_flac)
    with (
        store.open_reader("call.flac", stored.size) as reader,
        pytest.raises(RuntimeError, match="worker thread"),
    ):
        reader.read(100)


async def test_the_reader_reports_an_object_shorter_than_catalogued(store: S3Store, plain_flac: Path) -> None:
    stored = await store.put_file("call.flac", plain_flac)
    with store.open_reader("call.flac", stored.size + 1000) as reader:
        reader.seek(stored.size - 10)
        with pytest.raises(BlobStoreError, match="fewer octets"):
            await asyncio.to_thread(reader.read, 100)


async def test_missing_objects_and_idempotent_deletes(
    store: S3Store, observed: Observed, tmp_path: Path, settings: S3Settings, seaweed: SeaweedFS
) -> None:
    assert await store.head("never-uploaded.flac") is None
    with pytest.raises(S3Error) as missing:
        await store.read_range("never-uploaded.flac", 0, 10)
    assert missing.value.code == "NoSuchKey"
    assert missing.value.operation == "get_object"

    await store.put_file("call.flac", random_file(tmp_path / "call.flac", 5000))
    await store.delete("call.flac")
    await store.delete("call.flac")  # a retried erasure
    await store.delete("never-uploaded.flac")

    assert await store.head("call.flac") is None
    assert objects(seaweed, settings) == []
    assert observed.operations[-4:] == [
        ("delete_object", "ok"),
        ("delete_object", "ok"),
        ("delete_object", "ok"),
        ("head_object", "not_found"),
    ]
    with pytest.raises(S3Error) as past_the_end:
        await store.read_range("never-uploaded.flac", 0, 1)
    assert past_the_end.value.code == "NoSuchKey"


async def test_an_upload_into_a_removed_bucket_fails_and_leaves_nothing(
    seaweed: SeaweedFS, tmp_path: Path, observed: Observed
) -> None:
    admin = seaweed.client()
    admin.create_bucket(Bucket="removed-bucket")
    settings = dataclasses.replace(seaweed.settings, bucket="removed-bucket")
    admin.delete_bucket(Bucket="removed-bucket")

    async with S3Store(settings, observe=observed) as store:
        with pytest.raises(S3Error) as small:
            await store.put_file("call.flac", random_file(tmp_path / "small.flac", 4000))
        with pytest.raises(S3Error) as large:
            await store.put_file("call.flac", random_file(tmp_path / "large.flac", MIN_PART_SIZE + 1))

    assert (small.value.code, small.value.operation) == ("NoSuchBucket", "put_object")
    assert (large.value.code, large.value.operation) == ("NoSuchBucket", "create_multipart_upload")
    assert "call.flac" in str(small.value) and "removed-bucket" in str(small.value)
    assert isinstance(small.value, BlobStoreError) and isinstance(small.value, StorageError)
    assert observed.operations == [("put_object", "not_found"), ("create_multipart_upload", "not_found")]


async def test_a_bucket_removed_mid_upload_fails_it_without_leftovers(
    seaweed: SeaweedFS, tmp_path: Path
) -> None:
    admin = seaweed.client()
    admin.create_bucket(Bucket="vanishing-bucket")
    settings = dataclasses.replace(seaweed.settings, bucket="vanishing-bucket")
    observed = Observed()

    def remove_bucket_after_first_part(operation: str, result: str, seconds: float) -> None:
        observed(operation, result, seconds)
        if operation == "upload_part" and observed.operations.count(("upload_part", "ok")) == 1:
            admin.delete_bucket(Bucket="vanishing-bucket")

    source = random_file(tmp_path / "call.flac", 2 * MIN_PART_SIZE + 1)
    async with S3Store(settings, observe=remove_bucket_after_first_part) as store:
        with pytest.raises(S3Error) as failed:
            await store.put_file("call.flac", source)

    assert (failed.value.operation, failed.value.code) == ("upload_part", "NoSuchBucket")
    assert observed.operations[-1][0] == "abort_multipart_upload"
    assert not getattr(failed.value, "__notes__", None)  # nothing is left to abort
    admin.create_bucket(Bucket="vanishing-bucket")
    assert admin.list_multipart_uploads(Bucket="vanishing-bucket").get("Uploads") is None
    assert admin.list_objects_v2(Bucket="vanishing-bucket").get("Contents") is None


async def test_a_file_that_changed_since_it_was_hashed_is_not_stored(
    store: S3Store, observed: Observed, tmp_path: Path, settings: S3Settings, seaweed: SeaweedFS
) -> None:
    small = random_file(tmp_path / "small.flac", 70_000)
    large = random_file(tmp_path / "large.flac", MIN_PART_SIZE + 70_000)
    catalogued = {path: sha256_of(path) for path in (small, large)}
    for path in (small, large):  # one flipped bit after the catalogue took the hash
        with path.open("r+b") as file:
            file.seek(60_000)
            octet = file.read(1)[0]
            file.seek(60_000)
            file.write(bytes([octet ^ 0x10]))

    with pytest.raises(IntegrityError):
        await store.put_file("small.flac", small, sha256=catalogued[small])
    with pytest.raises(IntegrityError):
        await store.put_file("large.flac", large, sha256=catalogued[large])

    assert objects(seaweed, settings) == []
    assert uploads(seaweed, settings) == []
    assert [operation for operation, _ in observed.operations] == [
        "create_multipart_upload",
        "upload_part",
        "upload_part",
        "abort_multipart_upload",
    ]


async def test_an_object_replaced_before_confirmation_is_not_confirmed(
    settings: S3Settings, seaweed: SeaweedFS, plain_flac: Path
) -> None:
    admin = seaweed.client()

    def overwrite_after_upload(operation: str, result: str, seconds: float) -> None:
        if operation == "put_object":  # another writer, between our PUT and our HEAD
            admin.put_object(Bucket=settings.bucket, Key=settings.prefix + "call.flac", Body=b"fLaC")

    async with S3Store(settings, observe=overwrite_after_upload) as store:
        with pytest.raises(UnconfirmedUploadError, match="4 octets instead of"):
            await store.put_file("call.flac", plain_flac, sha256=sha256_of(plain_flac))


async def test_wrong_credentials_fail_clearly_without_revealing_the_secret(
    settings: S3Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = random_file(tmp_path / "call.flac", 9000)
    wrong_secret = dataclasses.replace(settings, secret_access_key="Wr0ng/Secret+Key-" + uuid.uuid4().hex)
    unknown_key = dataclasses.replace(settings, access_key_id="AKIAUNKNOWN0000000")
    caplog.set_level(logging.DEBUG)  # the client library's debug log included

    async with S3Store(wrong_secret) as store:
        with pytest.raises(S3Error) as refused:
            await store.put_file("call.flac", source)
        with pytest.raises(S3Error) as head_refused:
            await store.head("call.flac")
    async with S3Store(unknown_key) as store:
        with pytest.raises(S3Error) as unknown:
            await store.put_file("call.flac", source)

    assert refused.value.code == "SignatureDoesNotMatch"
    assert head_refused.value.code == "403"  # a HEAD answer has no body to name the code
    assert unknown.value.code == "InvalidAccessKeyId"
    for secret in (wrong_secret.secret_access_key, settings.secret_access_key):
        for error in (refused.value, head_refused.value, unknown.value):
            assert secret not in str(error)
            assert secret not in repr(error.__cause__)
        assert secret not in caplog.text
        assert secret not in repr(wrong_secret) and secret not in str(settings)
    assert "put_object of call.flac" in str(refused.value)


async def test_a_server_lost_mid_upload_fails_it_and_the_leftover_upload_is_cleared(
    tmp_path: Path, plain_flac: Path, flac_content: bytes
) -> None:
    server = SeaweedFS(tmp_path / "seaweedfs")
    await asyncio.to_thread(server.start)
    try:
        observed = Observed()

        def crash_after_first_part(operation: str, result: str, seconds: float) -> None:
            observed(operation, result, seconds)
            if (operation, result) == ("upload_part", "ok"):
                server.kill()

        source = random_file(tmp_path / "call.flac", 2 * MIN_PART_SIZE + 1)
        async with S3Store(server.settings, observe=crash_after_first_part) as store:
            with pytest.raises(S3Error) as lost:
                await store.put_file("call.flac", source)
            assert (lost.value.operation, lost.value.code) == ("upload_part", "EndpointConnectionError")
            assert observed.operations[-2:] == [
                ("upload_part", "connection_error"),
                ("abort_multipart_upload", "connection_error"),
            ]
            (note,) = lost.value.__notes__
            assert "could not be aborted" in note and "abort_stale_uploads" in note

            await asyncio.to_thread(server.start)  # back, on the same ports and data
            assert await store.head("call.flac") is None
            (leftover,) = server.client().list_multipart_uploads(Bucket=server.bucket)["Uploads"]
            assert leftover["UploadId"] in note

            # A cut-off before the upload began spares it (it could be one in progress); a later one clears it.
            assert (
                await store.abort_stale_uploads(initiated_before=datetime.now(UTC) - timedelta(hours=1)) == 0
            )
            assert (
                await store.abort_stale_uploads(initiated_before=datetime.now(UTC) + timedelta(minutes=1))
                == 1
            )
            assert server.client().list_multipart_uploads(Bucket=server.bucket).get("Uploads") is None
            stored = await store.put_file("call.flac", plain_flac)  # and the retry succeeds
            assert stored.size == len(flac_content)
    finally:
        await asyncio.to_thread(server.stop)


async def test_a_failing_observer_cannot_break_the_store(
    settings: S3Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(operation: str, result: str, seconds: float) -> None:
        raise ValueError("metrics backend gone")

    async with S3Store(settings, observe=broken) as store:
        stored = await store.put_file("call.flac", random_file(tmp_path / "call.flac", 3000))
        assert stored.size == 3000
    assert caplog.text.count("observer failed") == 2  # the PUT and the HEAD that confirmed it


def test_running_seaweedfs_serves_signed_requests_only_and_stops(tmp_path: Path) -> None:
    with running_seaweedfs(tmp_path) as settings:
        assert settings.endpoint_url is not None
        port = int(settings.endpoint_url.rsplit(":", 1)[1])
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            urllib.request.urlopen(f"{settings.endpoint_url}/{settings.bucket}/", timeout=5)
        assert anonymous.value.code == 403

        async def round_trip() -> bytes:
            async with S3Store(settings) as store:
                await store.put_file("hello.flac", random_file(tmp_path / "hello.flac", 100))
                return await store.read_range("hello.flac", 0, 100)

        assert asyncio.run(round_trip()) == (tmp_path / "hello.flac").read_bytes()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"part_size": MIN_PART_SIZE - 1}, "part size"),
        ({"endpoint_url": "minio:9000"}, "endpoint URL"),
        ({"bucket": "Recordings"}, "bucket name"),
        ({"bucket": "ab"}, "bucket name"),
        ({"prefix": "/recordings/"}, "prefix"),
        ({"secret_access_key": ""}, "secret"),
        ({"read_timeout": 0.0}, "timeouts"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_settings_refuse_what_s3_would(change: dict[str, Any], problem: str) -> None:
    valid = S3Settings(
        endpoint_url=None, bucket="recordings", access_key_id="AKIA", secret_access_key="s3cr3t"
    )
    assert "s3cr3t" not in repr(valid)
    with pytest.raises(ValueError, match=problem):
        dataclasses.replace(valid, **change)


async def test_keys_are_checked_before_any_request(
    store: S3Store, observed: Observed, plain_flac: Path
) -> None:
    for key in ("", "/etc/passwd", "x" * 1100):
        with pytest.raises(ValueError, match="object key"):
            await store.put_file(key, plain_flac)
    with pytest.raises(ValueError, match="SHA-256"):
        await store.put_file("call.flac", plain_flac, sha256="not-a-hash")
    assert observed.calls == []
    assert isinstance(store.open_reader("call.flac", 10), io.RawIOBase)
    assert isinstance(store.open_reader("call.flac", 10), S3ObjectReader)
