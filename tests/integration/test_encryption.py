"""Encryption at rest end to end: real SIPREC calls to the real server, the stored files checked on disk and in
the catalogue, and the audio got back only through the CLI, the way an operator does it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import stat
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest
import soundfile

from storage import EmbeddedDatabase
from storage.sealed import sealed_size
from tests.audio import peak_frequency, read_audio
from tests.pg import scratch_dir

from .server import ServerProcess, free_port, rtp_range
from .test_formats import assert_tones, shown, wait_rendition
from .test_recording_calls import export, finished, run_pjsua, start_pjsua

MAGIC = b"HTSEALED"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def key_row(server: ServerProcess, recording_id: str) -> asyncpg.Record | None:
    """The recording's row in ``recording_keys``, read from the server's own database."""

    async def fetch() -> asyncpg.Record | None:
        database = EmbeddedDatabase(server.data_dir)
        dsn = await asyncio.to_thread(database.start)  # joins the running cluster
        try:
            conn = await asyncpg.connect(dsn)
            try:
                row: asyncpg.Record | None = await conn.fetchrow(
                    "SELECT key_ref, wrapped, destroyed_at FROM recording_keys WHERE recording_id = $1",
                    UUID(recording_id),
                )
                return row
            finally:
                await conn.close()
        finally:
            database.stop()  # forgets a joined cluster; the server's keeps running

    return asyncio.run(fetch())


def assert_sealed_on_disk(path: Path) -> None:
    assert path.name.endswith(".sealed"), path
    assert path.read_bytes()[:8] == MAGIC
    with pytest.raises(soundfile.LibsndfileError):
        soundfile.info(str(path))


def files_of(server: ServerProcess, recording_id: str) -> list[str]:
    return sorted(p.name for p in (server.data_dir / "recordings").rglob(f"*{recording_id}*") if p.is_file())


def test_a_recording_is_stored_encrypted_and_exports_as_the_call_sounded(
    server: ServerProcess, tmp_path: Path
) -> None:
    report = run_pjsua(server, tmp_path, "--duration", "4", "--caller-tone", "440", "--callee-tone", "1000")
    assert report["status"] == 200
    row = server.wait_for_recording(finished(report["call_id"]))
    assert row["status"] == "complete", row
    data = shown(server, row["reference"])
    assert data["encrypted"] is True and data["format"] == "flac"

    stored = Path(data["file_path"])
    assert_sealed_on_disk(stored)
    # Only the sealed file is left: no plaintext sibling, no temporary, no journal entry.
    assert files_of(server, row["id"]) == [f"{row['id']}.flac.sealed"]
    assert not any((server.data_dir / "sealing").iterdir())
    key = key_row(server, row["id"])
    assert key is not None and key["destroyed_at"] is None
    assert key["key_ref"] == "keyfile:system:1"  # no tenant claims the call: the system key wraps it
    assert len(key["wrapped"]) == 12 + 32 + 16
    key_file = server.data_dir / "keys" / "keys.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    flac = export(server, row["reference"], tmp_path / "call.flac")
    assert soundfile.info(str(flac)).format == "FLAC"
    # The catalogue's SHA-256 is the audio's, whatever the key; its size is the stored file's.
    assert sha256(flac) == data["sha256"]
    assert data["size_bytes"] == stored.stat().st_size == sealed_size(flac.stat().st_size)
    audio = read_audio(flac)
    assert abs(peak_frequency(audio.channel(0), audio.sample_rate) - 440) < 5
    assert abs(peak_frequency(audio.channel(1), audio.sample_rate) - 1000) < 5
    assert abs(audio.duration - data["duration_seconds"]) < 0.001
    mono = tmp_path / "mono.flac"
    server.cli("recordings", "export", row["reference"], "-o", str(mono), "--mono")
    assert read_audio(mono).channels == 1 and read_audio(mono).frames == audio.frames
    wav = tmp_path / "call.wav"
    server.cli("recordings", "export", row["reference"], "-o", str(wav), "--format", "wav")
    assert (soundfile.read(str(wav), dtype="int16")[0] == soundfile.read(str(flac), dtype="int16")[0]).all()

    # `hangtar verify` and an access-request bundle read the audio through the recording's key too.
    server.cli("verify", row["reference"])
    assert data["numbers"], data
    opened = json.loads(
        server.cli(
            "dsar", "open", "--system", data["numbers"][0], "--requester", "Kiss Anna, by e-mail", "--json"
        ).stdout
    )
    bundle = json.loads(server.cli("dsar", "export", "--system", opened["id"], "--json").stdout)["bundle"]
    with zipfile.ZipFile(bundle["path"]) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        for entry in manifest["files"]:
            assert hashlib.sha256(archive.read(entry["path"])).hexdigest() == entry["sha256"], entry["path"]
        audio_names = [name for name in archive.namelist() if name.endswith(".flac")]
        assert len(audio_names) == 1
        assert hashlib.sha256(archive.read(audio_names[0])).hexdigest() == data["sha256"]

    # One changed byte in the middle of the stored file: the export refuses, and leaves nothing behind.
    raw = bytearray(stored.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    stored.write_bytes(bytes(raw))
    refused = server.cli(
        "recordings", "export", row["reference"], "-o", str(tmp_path / "x.flac"), check=False
    )
    assert refused.returncode == 1 and "integrity check" in refused.stderr, refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("x.")) == []


def test_erasure_destroys_the_data_key_and_removes_the_file(server: ServerProcess, tmp_path: Path) -> None:
    report = run_pjsua(server, tmp_path, "--duration", "2", "--caller-tone", "440", "--callee-tone", "1000")
    row = server.wait_for_recording(finished(report["call_id"]))
    stored = Path(shown(server, row["reference"])["file_path"])
    assert stored.is_file()

    erased = json.loads(server.cli("erase", row["reference"], "--json", "--as", "dpo@example.hu").stdout)
    assert erased["reference"] == row["reference"] and erased["files"] == 1
    assert not stored.exists() and files_of(server, row["id"]) == []
    key = key_row(server, row["id"])
    assert key is not None, "the key's row stays as a tombstone"
    assert key["wrapped"] is None and key["destroyed_at"] is not None
    gone = server.cli("recordings", "export", row["reference"], "-o", str(tmp_path / "e.flac"), check=False)
    assert gone.returncode == 3 and not (tmp_path / "e.flac").exists()


@pytest.fixture(scope="module")
def opus_server() -> Iterator[ServerProcess]:
    with scratch_dir() as data_dir:
        server = ServerProcess(
            data_dir=data_dir, sip_port=free_port(), http_port=free_port(), rtp_ports=rtp_range()
        )
        server.start("--log-level", "DEBUG", env={"HANGTAR_RECORDING_FORMAT": "opus"})
        try:
            yield server
        finally:
            if server.process is not None and server.process.poll() is None:
                server.stop()


def test_the_opus_rendition_of_an_encrypted_recording_is_sealed_too(
    opus_server: ServerProcess, tmp_path: Path
) -> None:
    server = opus_server
    report = run_pjsua(server, tmp_path, "--duration", "3", "--caller-tone", "440", "--callee-tone", "1000")
    row = server.wait_for_recording(finished(report["call_id"]))
    rendition = wait_rendition(server, row["reference"], "opus")
    assert rendition["status"] == "done", rendition
    sealed_opus = Path(rendition["file_path"])
    assert sealed_opus.name == f"{row['id']}.opus.sealed"
    assert_sealed_on_disk(sealed_opus)
    assert rendition["size_bytes"] == sealed_opus.stat().st_size
    assert files_of(server, row["id"]) == sorted([f"{row['id']}.flac.sealed", f"{row['id']}.opus.sealed"])

    served = tmp_path / "served.opus"
    result = server.cli("recordings", "export", row["reference"], "-o", str(served), "--format", "opus")
    assert "opus rendition" in result.stdout
    assert served.read_bytes()[:4] == b"OggS"
    assert sha256(served) == rendition["sha256"]  # the hash of the plaintext rendition
    assert_tones(served, row["duration_seconds"])
    master = export(server, row["reference"], tmp_path / "master.flac")
    assert soundfile.info(str(served)).frames == soundfile.info(str(master)).frames


def test_a_crash_mid_call_is_sealed_at_restart_and_leaves_no_plaintext(
    data_dir: Path, tmp_path: Path
) -> None:
    server = ServerProcess(
        data_dir=data_dir, sip_port=free_port(), http_port=free_port(), rtp_ports=rtp_range()
    )
    server.start()
    try:
        report = run_pjsua(
            server, tmp_path, "--duration", "2", "--caller-tone", "440", "--callee-tone", "1000"
        )
        earlier = server.wait_for_recording(finished(report["call_id"]))
        before = server.metric("hangtar_rtp_packets_total")
        pjsua, _ = start_pjsua(server, tmp_path, "--duration", "14")
        try:
            live = server.wait_for_recording(lambda r: r["status"] == "recording", timeout=30)
            deadline = time.monotonic() + 30
            while server.metric("hangtar_rtp_packets_total") < before + 2 * 50 * 8:  # 8 s of both streams
                assert time.monotonic() < deadline, "RTP never arrived:\n" + server.log()
                time.sleep(0.1)
            server.kill()  # SIGKILL mid-call: the plain FLAC is all there is
        finally:
            pjsua.wait(60)
            pjsua.communicate()
    finally:
        server.kill()
    plain = Path(live["file_path"])
    assert plain.suffix == ".flac" and plain.read_bytes()[:4] == b"fLaC"

    # What a crash between the catalogue's commit and the removal of a plaintext leaves for a finished
    # recording: its plaintext beside the sealed file, and the journal entry naming it.
    sealed_earlier = Path(shown_offline(data_dir, earlier))
    left_behind = sealed_earlier.with_name(sealed_earlier.name.removesuffix(".sealed"))
    left_behind.write_bytes(b"fLaC and the rest of a recording's plaintext")
    (data_dir / "sealing" / earlier["id"]).write_text(str(left_behind))

    server.start()  # the restart recovers what the dead process left behind
    try:
        data = shown(server, live["reference"])
        assert data["status"] == "interrupted" and data["encrypted"] is True, data
        assert_sealed_on_disk(Path(data["file_path"]))
        assert not plain.exists()
        assert files_of(server, live["id"]) == [f"{live['id']}.flac.sealed"]
        out = export(server, live["reference"], tmp_path / "crash.flac")
        assert sha256(out) == data["sha256"]
        audio = read_audio(out)
        assert audio.duration >= 8.0 - 2.0, audio.duration  # as much as without encryption (test_lifecycle)
        assert abs(peak_frequency(audio.channel(1), audio.sample_rate) - 1000) < 5
        assert data["duration_seconds"] is not None and abs(data["duration_seconds"] - audio.duration) < 0.05
        key = key_row(server, live["id"])
        assert key is not None and key["wrapped"] is not None

        assert not left_behind.exists() and sealed_earlier.is_file()
        assert not any((data_dir / "sealing").iterdir())
        again = export(server, earlier["reference"], tmp_path / "earlier.flac")
        assert_tones(again, earlier["duration_seconds"])
    finally:
        assert server.stop() == 0


def shown_offline(data_dir: Path, row: dict[str, Any]) -> str:
    """The stored file of a recording while no server runs (the CLI starts the embedded database itself)."""
    server = ServerProcess(data_dir=data_dir, sip_port=0, http_port=0, rtp_ports=(0, 0))
    path: str = shown(server, row["reference"])["file_path"]
    return path
