"""Recordings in an S3-compatible object store, end to end: a real server configured with a real SeaweedFS, real
SIPREC calls (pjsua2), and the catalogue, the bucket and the node's disk checked as an operator would.

- A finished call is 'uploading' until the store confirms its object, then 'complete', named by its object key,
  and gone from the node's disk; the object is the sealed file (no plaintext), with its SHA-256 as metadata.
- Export, integrity checks and renditions read the audio from the store.
- Erasure destroys the key, then deletes the object.
- With the store down, the recording stays 'uploading' with its only copy on disk, the failure is counted, and
  it completes once the store is back (fail closed)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import soundfile

from tests.audio import peak_frequency, read_audio
from tests.pg import scratch_dir
from tests.s3 import SeaweedFS

from .server import ServerProcess, running_server
from .test_formats import shown
from .test_metrics_reference import check_against_reference, documented_metrics, scrape
from .test_recording_calls import export, run_pjsua

MAGIC = b"HTSEALED"


def s3_environment(store: SeaweedFS, prefix: str) -> dict[str, str]:
    settings = store.settings
    return {
        "HANGTAR_S3_BUCKET": settings.bucket,
        "HANGTAR_S3_ENDPOINT": store.endpoint_url,
        "HANGTAR_S3_ACCESS_KEY_ID": settings.access_key_id,
        "HANGTAR_S3_SECRET_ACCESS_KEY": settings.secret_access_key,
        "HANGTAR_S3_PATH_STYLE": "true",
        "HANGTAR_S3_PREFIX": prefix,
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="module")
def node(store: SeaweedFS) -> Iterator[ServerProcess]:
    """One server recording to the store; the CLI (run by the tests) sees the same [s3] settings."""
    environment = s3_environment(store, "node1/")
    with pytest.MonkeyPatch.context() as patch, scratch_dir() as data_dir:
        for name, value in environment.items():
            patch.setenv(name, value)
        with running_server(data_dir, "--log-level", "DEBUG") as server:
            yield server


def head(store: SeaweedFS, key: str) -> dict[str, Any] | None:
    try:
        answer: dict[str, Any] = store.client().head_object(Bucket=store.bucket, Key=key)
    except Exception as exc:  # botocore's ClientError for 404
        if "404" in str(exc) or "Not Found" in str(exc):
            return None
        raise
    return answer


def fetch(store: SeaweedFS, key: str) -> bytes:
    data: bytes = store.client().get_object(Bucket=store.bucket, Key=key)["Body"].read()
    return data


def local_files(server: ServerProcess, recording_id: str) -> list[Path]:
    return [p for p in (server.data_dir / "recordings").rglob(f"*{recording_id}*") if p.is_file()]


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout} s")


def settled(call_id: str) -> Any:
    return lambda row: row["call_id"] == call_id and row["status"] not in ("recording", "uploading")


def test_a_finished_recording_lives_in_the_object_store_and_reads_back(
    node: ServerProcess, store: SeaweedFS, tmp_path: Path
) -> None:
    report = run_pjsua(node, tmp_path, "--duration", "3", "--caller-tone", "440", "--callee-tone", "1000")
    assert report["status"] == 200
    row = node.wait_for_recording(settled(report["call_id"]))
    assert row["status"] == "complete", row
    data = shown(node, row["reference"])
    key = data["object_key"]
    # Named by its path under the recordings directory, relative, so any node finds it.
    assert key == data["file_path"] and key.endswith(f"{row['id']}.flac.sealed") and not key.startswith("/")
    assert local_files(node, row["id"]) == [], "the local copy stays after the upload"

    stored = head(store, "node1/" + key)
    assert stored is not None and stored["ContentLength"] == data["size_bytes"]
    octets = fetch(store, "node1/" + key)
    assert octets[:8] == MAGIC
    assert stored["Metadata"]["sha256"] == hashlib.sha256(octets).hexdigest()

    # Export reads the object, decrypts it and checks the audio's SHA-256 against the catalogue.
    flac = export(node, row["reference"], tmp_path / "call.flac")
    assert soundfile.info(str(flac)).format == "FLAC"
    assert hashlib.sha256(flac.read_bytes()).hexdigest() == data["sha256"]
    audio = read_audio(flac)
    assert abs(peak_frequency(audio.channel(0), audio.sample_rate) - 440) < 5
    assert abs(peak_frequency(audio.channel(1), audio.sample_rate) - 1000) < 5
    wav = tmp_path / "call.wav"
    node.cli("recordings", "export", row["reference"], "-o", str(wav), "--format", "wav")
    assert (soundfile.read(str(wav), dtype="int16")[0] == soundfile.read(str(flac), dtype="int16")[0]).all()
    verified = json.loads(node.cli("verify", row["reference"], "--json").stdout)
    assert verified["ok"] is True and not verified["skipped"], verified
    assert [check["actual_sha256"] for check in verified["checks"]] == [data["sha256"]], verified

    assert node.metric("hangtar_s3_requests_total", operation="put_object", result="ok") >= 1
    assert node.metric("hangtar_s3_requests_total", operation="head_object", result="ok") >= 1
    # With a store, the conditional metrics of docs/metrics.md are exported too, as documented.
    exported, reference = scrape(node), documented_metrics()
    assert {name for name, doc in reference.items() if doc.conditional} <= exported.keys()
    check_against_reference(exported, reference)


def test_erasure_destroys_the_key_then_deletes_the_object(
    node: ServerProcess, store: SeaweedFS, tmp_path: Path
) -> None:
    report = run_pjsua(node, tmp_path, "--duration", "2")
    row = node.wait_for_recording(settled(report["call_id"]))
    key = "node1/" + shown(node, row["reference"])["object_key"]
    assert head(store, key) is not None

    node.cli("erase", row["reference"], "--reason", "data subject request", "--as", "dpo")
    assert node.cli("recordings", "show", row["reference"], check=False).returncode != 0
    wait_for(lambda: head(store, key) is None, 30, "the erased recording's object is not deleted")
    assert node.metric("hangtar_s3_deletions_queued") == 0


def test_with_the_store_down_a_recording_waits_with_its_only_copy_on_disk(
    node: ServerProcess, store: SeaweedFS, tmp_path: Path
) -> None:
    failures = node.metric("hangtar_s3_upload_failures_total")
    store.kill()
    try:
        report = run_pjsua(node, tmp_path, "--duration", "2")
        assert report["status"] == 200
        row = node.wait_for_recording(
            lambda r: r["call_id"] == report["call_id"] and r["status"] != "recording"
        )
        assert row["status"] == "uploading", row
        wait_for(
            lambda: node.metric("hangtar_s3_upload_failures_total") > failures,
            60,
            "no upload failure counted",
        )
        data = shown(node, row["reference"])
        assert data["object_key"] is None
        (local,) = local_files(node, row["id"])
        assert local.read_bytes()[:8] == MAGIC and str(local) == data["file_path"]
        # While it waits, its audio is there: exported from the local copy.
        export(node, row["reference"], tmp_path / "waiting.flac")
        assert read_audio(tmp_path / "waiting.flac").channels == 2
    finally:
        store.start()
    done = node.wait_for_recording(settled(report["call_id"]), timeout=60)
    assert done["status"] == "complete", done
    assert head(store, "node1/" + shown(node, row["reference"])["object_key"]) is not None
    assert local_files(node, row["id"]) == []


def test_the_recording_list_of_a_node_with_a_store_never_names_a_missing_file(node: ServerProcess) -> None:
    """Every finished recording either waits with its local file or names an object the store holds."""
    for row in node.recordings():
        data = shown(node, row["reference"])
        if data["status"] == "uploading":
            assert Path(data["file_path"]).is_file()
        elif data["file_path"]:
            assert data["object_key"] == data["file_path"]
