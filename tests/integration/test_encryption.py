"""Encryption at rest end to end: real SIPREC calls to the real server, the stored files checked on disk and in
the catalogue (also while a call is recorded, and after the server was killed mid-call), and the audio got back
only through the CLI, the way an operator does it."""

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
import numpy as np
import pytest
import soundfile

from media.g711 import encode_ulaw
from storage import EmbeddedDatabase
from storage.sealed import sealed_size
from tests.audio import peak_frequency, read_audio
from tests.peers.sipp_runner import run_siprec_call
from tests.pg import scratch_dir

from .server import ServerProcess, free_port, rtp_range
from .test_formats import assert_tones, shown, wait_rendition
from .test_recording_calls import export, finished, run_pjsua, start_pjsua

MAGIC = b"HTSEALED"
WINDOW = 32  # octets: a plaintext run this long in a stored file would be a leak


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def in_database(data_dir: Path, query: str, *args: Any) -> asyncpg.Record | None:
    """Run one statement in the server's own database (its first row, if any)."""

    async def run() -> asyncpg.Record | None:
        database = EmbeddedDatabase(data_dir)
        dsn = await asyncio.to_thread(database.start)  # joins the running cluster
        try:
            conn = await asyncpg.connect(dsn)
            try:
                row: asyncpg.Record | None = await conn.fetchrow(query, *args)
                return row
            finally:
                await conn.close()
        finally:
            database.stop()  # forgets a joined cluster; the server's keeps running

    return asyncio.run(run())


def key_row(server: ServerProcess, recording_id: str) -> asyncpg.Record | None:
    """The recording's row in ``recording_keys``."""
    return in_database(
        server.data_dir,
        "SELECT key_ref, wrapped, destroyed_at FROM recording_keys WHERE recording_id = $1",
        UUID(recording_id),
    )


def assert_sealed_on_disk(path: Path) -> None:
    assert path.name.endswith(".sealed"), path
    assert path.read_bytes()[:8] == MAGIC
    with pytest.raises(soundfile.LibsndfileError):
        soundfile.info(str(path))


def files_of(server: ServerProcess, recording_id: str) -> list[str]:
    return sorted(p.name for p in (server.data_dir / "recordings").rglob(f"*{recording_id}*") if p.is_file())


def stored_files(data_dir: Path) -> dict[Path, bytes]:
    """Every file the server keeps in its data dir, read as it lies on disk now; the database cluster's own
    files excepted (no audio goes into the database)."""
    pgdata = EmbeddedDatabase(data_dir).pgdata
    found = {}
    for path in data_dir.rglob("*"):
        if path.is_relative_to(pgdata) or not path.is_file():
            continue
        try:
            found[path] = path.read_bytes()
        except FileNotFoundError:  # a temporary that went while we looked
            continue
    return found


def plaintext_runs(flac: Path) -> list[bytes]:
    """Runs of a recording's plaintext that must never be on disk: pieces of its FLAC stream (from past the
    header), and of its audio as 16-bit PCM (interleaved and per channel) and as the G.711 µ-law it arrived in."""
    stream = flac.read_bytes()
    samples, _ = soundfile.read(str(flac), dtype="int16", always_2d=True)
    sources = [stream[64:], samples.tobytes()]
    for channel in range(samples.shape[1]):
        voice = np.ascontiguousarray(samples[:, channel])
        sources += [voice.tobytes(), encode_ulaw(voice)]
    return [
        run
        for source in sources
        for run in (source[i : i + WINDOW] for i in range(0, len(source) - WINDOW, 4099))
        if len(set(run)) > 4  # not a stretch of silence, which any file may hold by chance
    ]


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
    # Only the sealed file, written as such from the start: no plaintext sibling, no temporary, nothing
    # sealed after the call (no sealing journal).
    assert files_of(server, row["id"]) == [f"{row['id']}.flac.sealed"]
    assert not (server.data_dir / "sealing").exists()
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


def test_no_plaintext_audio_reaches_the_disk_while_a_call_is_recorded(
    server: ServerProcess, tmp_path: Path
) -> None:
    pjsua, report_file = start_pjsua(
        server, tmp_path, "--duration", "9", "--caller-tone", "440", "--callee-tone", "1000"
    )
    try:
        live = server.wait_for_recording(lambda r: r["status"] == "recording", timeout=30)
        stored = Path(live["file_path"])
        assert stored.name == f"{live['id']}.flac.sealed"
        # The data key was stored before any audio: the row names it while the call is still up.
        key = key_row(server, live["id"])
        assert key is not None and key["wrapped"] is not None and key["destroyed_at"] is None
        assert shown(server, live["reference"])["encrypted"] is True
        # The data dir as it lies on disk, again and again while the call runs.
        snapshots: list[dict[Path, bytes]] = []
        while pjsua.poll() is None:
            snapshots.append(stored_files(server.data_dir))
            time.sleep(0.25)  # the sampling rate of the scan, not a wait for readiness
    finally:
        stdout, stderr = pjsua.communicate(timeout=60)
    assert pjsua.returncode == 0, f"pjsua2 SRC failed:\n{stdout}\n{stderr}"
    report = json.loads(report_file.read_text())
    row = server.wait_for_recording(finished(report["call_id"]))
    assert row["id"] == live["id"] and row["status"] == "complete", row
    flac = export(server, row["reference"], tmp_path / "live.flac")
    assert read_audio(flac).duration >= 8.0

    # Audio reached the disk during the call (flushed as it was recorded), and only ever encrypted.
    sizes = [len(snapshot.get(stored, b"")) for snapshot in snapshots]
    assert sizes == sorted(sizes) and len(set(sizes)) > 3 and sizes[-1] > 20_000, sizes
    runs = plaintext_runs(flac)
    assert len(runs) > 100
    # Access-request bundles are the one plaintext the product writes on purpose: a decrypted export made for
    # a data subject (an earlier test here made one, of a call with the same tones). They are not recordings.
    bundles = server.data_dir / "access_requests"
    for snapshot in [*snapshots, stored_files(server.data_dir)]:
        for path, content in snapshot.items():
            if path.is_relative_to(bundles):
                continue
            assert b"fLaC" not in content, path
            assert not [run for run in runs if run in content], path
            if path.is_relative_to(server.data_dir / "recordings"):
                assert content[:8] == MAGIC, path


def test_a_data_key_that_cannot_be_stored_means_nothing_is_recorded(
    server: ServerProcess, tmp_path: Path
) -> None:
    key_file = server.data_dir / "keys" / "keys.json"
    intact = key_file.read_bytes()
    before = {row["call_id"] for row in server.recordings()}
    files_before = sorted(p for p in (server.data_dir / "recordings").rglob("*") if p.is_file())
    broken = server.metric("hangtar_recording_promises_broken_total", stage="encryption")
    damaged = key_file.with_name("damaged.json")
    damaged.write_text('{"format": "hangtar-keys", "version": 1, "keys": [{"scope": "system"}]}')
    damaged.chmod(0o600)
    damaged.replace(key_file)  # a damaged key file: no data key can be wrapped
    try:
        call = run_siprec_call(f"127.0.0.1:{server.sip_port}", workdir=tmp_path, duration=2.0)
    finally:
        restored = key_file.with_name("restored.json")
        restored.write_bytes(intact)
        restored.chmod(0o600)
        restored.replace(key_file)
    assert call.sipp.ok, call.sipp.output
    (_, ok), *_ = call.sipp.exchanges("INVITE")
    # Answered, so the SRC keeps its call, but with every stream inactive: no media is taken at all.
    assert ok is not None and ok.status == 200
    assert "a=inactive" in ok.body and "a=recvonly" not in ok.body
    assert ok.header("X-Recording-Ref") is None
    assert server.metric("hangtar_recording_promises_broken_total", stage="encryption") == broken + 1
    # The key is stored before the row and the file are made: neither exists.
    assert {row["call_id"] for row in server.recordings()} == before
    assert sorted(p for p in (server.data_dir / "recordings").rglob("*") if p.is_file()) == files_before
    assert "data key could not be stored; not recorded" in server.log()

    # With the key file back, the next call is recorded again.
    report = run_pjsua(server, tmp_path, "--duration", "2", "--caller-tone", "440", "--callee-tone", "1000")
    assert server.wait_for_recording(finished(report["call_id"]))["status"] == "complete"


def test_a_crash_mid_call_leaves_only_encrypted_audio_and_restart_finishes_it(
    data_dir: Path, tmp_path: Path
) -> None:
    server = ServerProcess(
        data_dir=data_dir, sip_port=free_port(), http_port=free_port(), rtp_ports=rtp_range()
    )
    server.start()
    try:
        earlier = [
            server.wait_for_recording(
                finished(
                    run_pjsua(
                        server, tmp_path, "--duration", "2", "--caller-tone", "440", "--callee-tone", "1000"
                    )["call_id"]
                )
            )
            for _ in range(2)
        ]
        old_audio = export(server, earlier[1]["reference"], tmp_path / "old.flac")
        before = server.metric("hangtar_rtp_packets_total")
        pjsua, _ = start_pjsua(server, tmp_path, "--duration", "20")
        try:
            live = server.wait_for_recording(lambda r: r["status"] == "recording", timeout=30)
            deadline = time.monotonic() + 30
            while server.metric("hangtar_rtp_packets_total") < before + 2 * 50 * 8:  # 8 s of both streams
                assert time.monotonic() < deadline, "RTP never arrived:\n" + server.log()
                time.sleep(0.1)
            server.kill()  # SIGKILL mid-call: no chance to finalise anything
        finally:
            pjsua.wait(60)
            pjsua.communicate()
    finally:
        server.kill()
    stored = Path(live["file_path"])
    left = stored.read_bytes()
    assert stored.name == f"{live['id']}.flac.sealed" and left[:8] == MAGIC and b"fLaC" not in left
    assert files_of(server, live["id"]) == [stored.name]  # no plaintext beside it

    # What an earlier version could leave behind. (1) A call it was recording as a plain FLAC file when it
    # died: a plain file, a row still 'recording', no data key.
    plain = Path(shown_offline(data_dir, earlier[1])).with_suffix("")  # <id>.flac
    plain.with_name(plain.name + ".sealed").unlink()
    plain.write_bytes(old_audio.read_bytes())
    in_database(
        data_dir,
        "UPDATE recordings SET status = 'recording', ended_at = NULL, file_path = $2, encryption = NULL, "
        "sha256 = NULL, size_bytes = NULL WHERE id = $1",
        UUID(earlier[1]["id"]),
        str(plain),
    )
    in_database(data_dir, "DELETE FROM recording_keys WHERE recording_id = $1", UUID(earlier[1]["id"]))
    # (2) A crash between the catalogue naming a sealed file and the removal of its plaintext: the plaintext
    # beside the sealed file, and the journal entry naming it.
    sealed_earlier = Path(shown_offline(data_dir, earlier[0]))
    left_behind = sealed_earlier.with_name(sealed_earlier.name.removesuffix(".sealed"))
    left_behind.write_bytes(b"fLaC and the rest of a recording's plaintext")
    (data_dir / "sealing").mkdir(mode=0o700, exist_ok=True)
    (data_dir / "sealing" / earlier[0]["id"]).write_text(str(left_behind))

    server.start()  # the restart recovers what the dead process left behind
    try:
        data = shown(server, live["reference"])
        assert data["status"] == "interrupted" and data["encrypted"] is True, data
        assert Path(data["file_path"]) == stored
        assert_sealed_on_disk(stored)
        assert files_of(server, live["id"]) == [stored.name]
        out = export(server, live["reference"], tmp_path / "crash.flac")
        assert sha256(out) == data["sha256"] and data["size_bytes"] == stored.stat().st_size
        audio = read_audio(out)
        # At least 8 s of media had arrived when the server was killed; the audio is flushed to disk once a
        # second behind the 0.3 s reorder window, so the crash costs ~1.5 s (the product promises < 10 s).
        print(f"after a crash at >= 8 s of media the file holds {audio.duration:.2f} s")
        assert audio.duration >= 8.0 - 2.0, audio.duration
        assert abs(peak_frequency(audio.channel(0), audio.sample_rate) - 440) < 5
        assert abs(peak_frequency(audio.channel(1), audio.sample_rate) - 1000) < 5
        assert data["duration_seconds"] is not None and abs(data["duration_seconds"] - audio.duration) < 0.05
        key = key_row(server, live["id"])
        assert key is not None and key["wrapped"] is not None

        # (1) The earlier version's plain file is encrypted under a new data key, and gone.
        old = shown(server, earlier[1]["reference"])
        assert old["status"] == "interrupted" and old["encrypted"] is True, old
        assert not plain.exists() and files_of(server, earlier[1]["id"]) == [
            f"{earlier[1]['id']}.flac.sealed"
        ]
        assert sha256(export(server, earlier[1]["reference"], tmp_path / "old-again.flac")) == sha256(
            old_audio
        )
        # (2) The plaintext the journal named is removed; its recording is untouched.
        assert not left_behind.exists() and sealed_earlier.is_file()
        assert not any((data_dir / "sealing").iterdir())
        again = export(server, earlier[0]["reference"], tmp_path / "earlier.flac")
        assert_tones(again, earlier[0]["duration_seconds"])
    finally:
        assert server.stop() == 0


def shown_offline(data_dir: Path, row: dict[str, Any]) -> str:
    """The stored file of a recording while no server runs (the CLI starts the embedded database itself)."""
    server = ServerProcess(data_dir=data_dir, sip_port=0, http_port=0, rtp_ports=(0, 0))
    path: str = shown(server, row["reference"])["file_path"]
    return path
