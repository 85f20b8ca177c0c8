"""Output formats end to end: a real SIPREC call recorded as FLAC, its rendition made after the call by the
server's worker pool, found and exported through the CLI, and decoded back (tones per channel, length)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import pytest
import soundfile

from media.transcode import EncodeSettings
from media.writer import FlacWriter
from siprec_server.config import ConfigError, load_config
from siprec_server.metrics import Metrics
from siprec_server.transcoder import TranscodePool, encode_settings
from storage import (
    Catalogue,
    FileBlobStore,
    NewRecording,
    Recording,
    RecordingStatus,
    migrate,
    open_pool,
)
from storage.renditions import Rendition, RenditionJob, Renditions, RenditionStatus
from tests.audio import peak_frequency, read_audio
from tests.pg import PgCluster, running_cluster, scratch_dir

from .server import ServerProcess, free_port, rtp_range
from .test_recording_calls import finished, run_pjsua

TONES = (440.0, 1000.0)


@pytest.fixture(scope="module")
def opus_server() -> Iterator[ServerProcess]:
    """A server whose recordings get an Ogg/Opus rendition, chosen through the environment."""
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


def shown(server: ServerProcess, reference: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(server.cli("recordings", "show", reference, "--json").stdout)
    return data


def wait_rendition(server: ServerProcess, reference: str, fmt: str, timeout: float = 120.0) -> dict[str, Any]:
    """Poll the catalogue (as an operator would) until the rendition is no longer pending. Generous: the
    workers run at a low priority, and a machine busy with other work starves them on purpose."""
    deadline = time.monotonic() + timeout
    while True:
        data = shown(server, reference)
        found = [r for r in data["renditions"] if r["format"] == fmt]
        if found and found[0]["status"] != "pending":
            return found[0]
        assert time.monotonic() < deadline, f"rendition still pending: {data['renditions']}\n{server.log()}"
        time.sleep(0.3)


def wait_metric(server: ServerProcess, name: str, value: float, timeout: float = 10.0, **labels: str) -> None:
    deadline = time.monotonic() + timeout
    while server.metric(name, **labels) != value:
        assert time.monotonic() < deadline, f"{name}{labels} = {server.metric(name, **labels)}, not {value}"
        time.sleep(0.1)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_tones(path: Path, seconds: float, *, tolerance: float = 0.002) -> None:
    audio = read_audio(path)
    assert audio.channels == 2
    assert abs(audio.duration - seconds) <= tolerance, (audio.duration, seconds)
    for channel, tone in enumerate(TONES):
        assert abs(peak_frequency(audio.channel(channel), audio.sample_rate) - tone) < 5


def test_a_call_gets_its_opus_rendition_after_hanging_up(opus_server: ServerProcess, tmp_path: Path) -> None:
    server = opus_server
    report = run_pjsua(server, tmp_path, "--duration", "4", "--caller-tone", "440", "--callee-tone", "1000")
    assert report["status"] == 200
    row = server.wait_for_recording(finished(report["call_id"]))
    assert row["status"] == "complete" and row["format"] == "flac"  # the receive path writes the master only

    rendition = wait_rendition(server, row["reference"], "opus")
    assert rendition["status"] == "done" and rendition["attempts"] == 1 and rendition["error"] is None
    assert rendition["replaces_master"] is False
    # Stored encrypted like its master (test_encryption.py): the audio itself comes back through export.
    stored = Path(rendition["file_path"])
    assert stored.name == f"{row['id']}.opus.sealed" and stored.parent == Path(row["file_path"]).parent
    assert rendition["size_bytes"] == stored.stat().st_size
    assert not [p for p in stored.parent.iterdir() if p.name.endswith(".part")]
    opus = tmp_path / "rendition.opus"
    server.cli("recordings", "export", row["reference"], "-o", str(opus), "--format", "opus")
    assert rendition["sha256"] == sha256(opus) and opus.read_bytes()[:4] == b"OggS"
    assert Path(row["file_path"]).is_file()  # keep_master defaults to true
    master = tmp_path / "master.flac"
    server.cli("recordings", "export", row["reference"], "-o", str(master))
    assert soundfile.info(str(opus)).frames == soundfile.info(str(master)).frames
    assert_tones(opus, row["duration_seconds"])
    # Speech-sized: 24 kbit/s for the two channels at most, against FLAC's ~0.9 MB a minute.
    assert rendition["size_bytes"] < 24000 / 8 * row["duration_seconds"] * 1.1 < row["size_bytes"]

    wait_metric(server, "hangtar_transcode_backlog", 0)
    assert server.metric("hangtar_transcode_jobs_total", format="opus", result="done") == 1
    assert server.metric("hangtar_transcode_encode_seconds_count", format="opus") == 1
    assert server.metric("hangtar_transcode_jobs_total", format="opus", result="failed") == 0

    # Export: the stored rendition as it is; WAV encoded now from the master, sample for sample.
    served = tmp_path / "served.opus"
    result = server.cli("recordings", "export", row["reference"], "-o", str(served), "--format", "opus")
    assert "opus rendition" in result.stdout
    assert served.read_bytes() == opus.read_bytes()
    wav = tmp_path / "now.wav"
    server.cli("recordings", "export", row["reference"], "-o", str(wav), "--format", "wav")
    flac = master
    assert np.array_equal(
        soundfile.read(str(wav), dtype="int16")[0], soundfile.read(str(flac), dtype="int16")[0]
    )
    assert soundfile.info(str(wav)).subtype == "PCM_16"
    mp3 = tmp_path / "now.mp3"
    server.cli("recordings", "export", row["reference"], "-o", str(mp3), "--format", "mp3")
    assert_tones(mp3, row["duration_seconds"])
    mono = tmp_path / "mono.opus"
    server.cli("recordings", "export", row["reference"], "-o", str(mono), "--format", "opus", "--mono")
    assert read_audio(mono).channels == 1
    mono_flac = tmp_path / "mono.flac"
    server.cli("recordings", "export", row["reference"], "-o", str(mono_flac), "--format", "flac", "--mono")
    assert soundfile.info(str(mono_flac)).format == "FLAC" and read_audio(mono_flac).channels == 1
    text = server.cli("recordings", "show", row["reference"]).stdout
    assert "rendition         opus  done" in text


async def request_mp3(dsn: str, recording_id: str) -> None:
    pool = await open_pool(dsn, max_size=1)
    try:
        # What a node that stopped before getting to it leaves behind: a pending row nobody holds.
        await Renditions(pool).request(UUID(recording_id), "mp3", now=datetime.now(UTC), replaces_master=True)
    finally:
        await pool.close()


def test_pending_renditions_resume_at_start_and_may_replace_the_master(
    data_dir: Path, tmp_path: Path
) -> None:
    # A FLAC-only server records a call and stops.
    first = ServerProcess(
        data_dir=data_dir, sip_port=free_port(), http_port=free_port(), rtp_ports=rtp_range()
    )
    first.start()
    try:
        report = run_pjsua(
            first, tmp_path, "--duration", "3", "--caller-tone", "440", "--callee-tone", "1000"
        )
        row = first.wait_for_recording(finished(report["call_id"]))
        assert shown(first, row["reference"])["renditions"] == []
    finally:
        assert first.stop() == 0
    master = Path(row["file_path"])
    assert master.is_file()

    with running_cluster(data_dir) as cluster:
        asyncio.run(request_mp3(cluster.dsn, row["id"]))
        # The next server (MP3, masters not kept) takes the job it finds pending, and records a new call too.
        second = ServerProcess(
            data_dir=data_dir, sip_port=free_port(), http_port=free_port(), rtp_ports=rtp_range()
        )
        second.start(env={"HANGTAR_RECORDING_FORMAT": "mp3", "HANGTAR_RECORDING_KEEP_MASTER": "false"})
        try:
            rendition = wait_rendition(second, row["reference"], "mp3")
            assert rendition["status"] == "done", rendition
            moved = shown(second, row["reference"])
            stored = Path(rendition["file_path"])
            # The recording now is its MP3 (sealed with the recording's key, like the master it replaces):
            # the catalogue vouches for it, the master is gone.
            assert (moved["file_path"], moved["format"], moved["encrypted"]) == (str(stored), "mp3", True)
            assert stored.name == f"{row['id']}.mp3.sealed"
            exported = tmp_path / "call.mp3"
            second.cli("recordings", "export", row["reference"], "-o", str(exported))
            assert (moved["size_bytes"], moved["sha256"]) == (stored.stat().st_size, sha256(exported))
            assert (rendition["size_bytes"], rendition["sha256"]) == (moved["size_bytes"], moved["sha256"])
            assert not master.exists()
            assert_tones(exported, row["duration_seconds"])
            refused = second.cli(
                "recordings",
                "export",
                row["reference"],
                "-o",
                str(tmp_path / "x.flac"),
                "--format",
                "flac",
                check=False,
            )
            assert refused.returncode == 3 and "keeps no FLAC master" in refused.stderr
            assert not (tmp_path / "x.flac").exists()

            report = run_pjsua(
                second, tmp_path, "--duration", "3", "--caller-tone", "440", "--callee-tone", "1000"
            )
            live = second.wait_for_recording(finished(report["call_id"]))
            done = wait_rendition(second, live["reference"], "mp3")
            assert done["status"] == "done" and done["replaces_master"] is True
            after = shown(second, live["reference"])
            assert after["format"] == "mp3" and after["file_path"] == done["file_path"]
            # Only the MP3 is left: the master's plaintext went at hang-up, the master itself goes right
            # after the rendition's commit.
            day = Path(live["file_path"]).parent
            deadline = time.monotonic() + 10
            while (left := sorted(p.name for p in day.iterdir() if p.name.startswith(live["id"]))) != [
                Path(done["file_path"]).name
            ]:
                assert time.monotonic() < deadline, f"{left}\n{second.log()}"
                time.sleep(0.1)
            live_mp3 = tmp_path / "live.mp3"
            second.cli("recordings", "export", live["reference"], "-o", str(live_mp3))
            assert_tones(live_mp3, live["duration_seconds"])
            wait_metric(second, "hangtar_transcode_backlog", 0)
            assert second.metric("hangtar_transcode_jobs_total", format="mp3", result="done") == 2
        finally:
            assert second.stop() == 0


# -- the pool on its own: a real PostgreSQL, real worker processes, real files ------------------------------------
@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    with scratch_dir() as data_dir, running_cluster(data_dir) as pg:
        yield pg


async def finished_recording(
    catalogue: Catalogue, blobs: FileBlobStore, frames: np.ndarray, *, sha: str | None = None
) -> Recording:
    """A call's row as the server leaves it, with its FLAC master written by the product's writer."""
    started = datetime.now(UTC)
    row = await catalogue.create(
        NewRecording(call_id=f"{uuid4().hex}@192.0.2.10", started_at=started, channels=2, sample_rate=8000)
    )
    path = blobs.root / f"{row.id}.flac"
    writer = FlacWriter(path, 2, 8000)
    writer.write(frames)
    writer.close()
    return await catalogue.finish(
        row.id,
        status=RecordingStatus.COMPLETE,
        ended_at=started,
        media_started_at=started,
        duration_seconds=len(frames) / 8000,
        streams=[],
        file_path=str(path),
        format="flac",
        size_bytes=path.stat().st_size,
        sha256=sha or blobs.sha256(path),
    )


async def settled(renditions: Renditions, recording_id: UUID, fmt: str) -> Rendition:
    """The rendition once a worker is done with it (a minute at most)."""
    async with asyncio.timeout(60):
        while True:
            found = await renditions.get(recording_id, fmt)
            if found is not None and found.status is not RenditionStatus.PENDING:
                return found
            await asyncio.sleep(0.05)


def two_party_tones(seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * 8000)) / 8000
    return np.stack([np.round(9000 * np.sin(2 * np.pi * f * t)) for f in TONES], axis=1).astype(np.int16)


async def test_the_pool_gives_up_on_a_master_that_fails_its_check_and_keeps_it(
    cluster: PgCluster, tmp_path: Path
) -> None:
    db = await open_pool(await cluster.create_database(), max_size=3)
    await migrate(db)
    blobs, metrics = FileBlobStore(tmp_path / "recordings"), Metrics()
    blobs.root.mkdir()
    pool = TranscodePool(
        db=db, blobs=blobs, metrics=metrics, settings=EncodeSettings(), keep_master=False, poll_interval=0.2
    )
    await pool.start()
    try:
        tampered = await finished_recording(Catalogue(db), blobs, two_party_tones(2.0), sha="0" * 64)
        await pool.request(tampered.id, "wav")
        failed = await settled(Renditions(db), tampered.id, "wav")
        assert failed.status is RenditionStatus.FAILED and failed.attempts == 1  # no retry can fix that
        assert failed.error is not None and "integrity check" in failed.error
        # Never removed for a rendition that does not exist.
        assert await asyncio.to_thread(Path(str(tampered.file_path)).is_file)
        assert await Catalogue(db).get(tampered.id) == tampered
        assert not list(blobs.root.rglob("*.wav")) and not list(blobs.root.rglob("*.part"))
        assert (
            metrics.registry.get_sample_value(
                "hangtar_transcode_jobs_total", {"format": "wav", "result": "failed"}
            )
            == 1
        )
    finally:
        await pool.stop()
        await db.close()


async def test_the_pool_retries_what_may_pass_and_never_asks_flac_of_itself(
    cluster: PgCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = await open_pool(await cluster.create_database(), max_size=3)
    await migrate(db)
    blobs, metrics = FileBlobStore(tmp_path / "recordings"), Metrics()
    blobs.root.mkdir()
    pool = TranscodePool(
        db=db,
        blobs=blobs,
        metrics=metrics,
        settings=EncodeSettings(),
        default_format="opus",
        poll_interval=0.1,
        retry_delays=(0.3,),
    )
    await pool.start()
    try:
        recording = await finished_recording(Catalogue(db), blobs, two_party_tones(3.0))
        # The day directory cannot be made (a file is in the way, as on a full or broken volume).
        blocker = blobs.root / f"{recording.started_at:%Y}"
        blocker.write_bytes(b"")
        await pool.request(recording.id, "flac")  # the master is FLAC: nothing to do
        assert await Renditions(db).for_recording(recording.id) == []
        await pool.request(recording.id)  # the configured default: Opus
        renditions = Renditions(db)
        deadline = time.monotonic() + 30
        while (
            metrics.registry.get_sample_value(
                "hangtar_transcode_jobs_total", {"format": "opus", "result": "retry"}
            )
            != 1
        ):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        pending = await renditions.get(recording.id, "opus")
        assert pending is not None and pending.status is RenditionStatus.PENDING and pending.attempts == 1
        assert pending.error is not None and "Error" in pending.error
        blocker.unlink()  # the volume is back
        done = await settled(renditions, recording.id, "opus")
        assert done.status is RenditionStatus.DONE and done.attempts == 2 and done.error is None
        assert_tones(Path(str(done.file_path)), 3.0)
        assert await asyncio.to_thread(Path(str(recording.file_path)).is_file)  # keep_master defaults to true
        # The backlog is as of the dispatcher's last count, made on its next cycle (every 0.1 s here).
        deadline = time.monotonic() + 5
        while pool.backlog != 0:
            assert time.monotonic() < deadline, pool.backlog
            await asyncio.sleep(0.05)
        assert metrics.registry.get_sample_value("hangtar_transcode_backlog") == 0
        # Idle, the pool only polls (every 0.1 s here), it never spins on the database.
        claims = 0
        claim_next = Renditions.claim_next

        async def counted(self: Renditions, *, now: datetime) -> RenditionJob | None:
            nonlocal claims
            claims += 1
            return await claim_next(self, now=now)

        monkeypatch.setattr(Renditions, "claim_next", counted)
        await asyncio.sleep(1.0)  # a measuring window, not a wait for readiness
        assert 5 <= claims <= 15
    finally:
        await pool.stop()
        await db.close()


def test_format_settings_come_from_toml_then_the_environment(tmp_path: Path) -> None:
    toml = tmp_path / "hangtar.toml"
    toml.write_text(
        '[recording]\nformat = "MP3"\nkeep_master = false\n'
        "[transcode]\nworkers = 2\nmp3_bitrate = 48000\nopus_bitrate = 32000\nopus_complexity = 0\n"
    )
    config = load_config(config_file=toml, environ={})
    assert (config.recording_format, config.keep_master, config.transcode_workers) == ("mp3", False, 2)
    settings = encode_settings(config)
    assert (settings.mp3_bitrate, settings.opus_bitrate, settings.opus_complexity) == (48000, 32000, 0)
    assert load_config(environ={}).recording_format == "flac" and load_config(environ={}).keep_master
    overridden = load_config(
        config_file=toml, environ={"HANGTAR_RECORDING_FORMAT": "opus", "HANGTAR_RECORDING_KEEP_MASTER": "yes"}
    )
    assert (overridden.recording_format, overridden.keep_master) == ("opus", True)
    for name, value, complaint in [
        ("HANGTAR_RECORDING_FORMAT", "ogg", "recording format 'ogg'"),
        ("HANGTAR_RECORDING_KEEP_MASTER", "maybe", "HANGTAR_RECORDING_KEEP_MASTER: expected bool"),
        ("HANGTAR_TRANSCODE_WORKERS", "0", "transcode workers"),
        ("HANGTAR_TRANSCODE_MP3_BITRATE", "33000", "not an MP3 bit rate"),
        ("HANGTAR_TRANSCODE_OPUS_COMPLEXITY", "11", "outside 0-10"),
    ]:
        with pytest.raises(ConfigError, match=complaint):
            load_config(environ={name: value})
    toml.write_text("[recording]\nkeep_master = 1\n")
    with pytest.raises(ConfigError, match="keep_master: expected bool"):
        load_config(config_file=toml, environ={})


async def test_stopping_mid_encode_leaves_the_job_pending_and_no_partial_file(
    cluster: PgCluster, tmp_path: Path
) -> None:
    db = await open_pool(await cluster.create_database(), max_size=3)
    await migrate(db)
    blobs, metrics = FileBlobStore(tmp_path / "recordings"), Metrics()
    blobs.root.mkdir()
    # Ten minutes at the most expensive Opus setting: many seconds of encoding.
    pool = TranscodePool(
        db=db, blobs=blobs, metrics=metrics, settings=EncodeSettings(opus_complexity=10), stop_timeout=0.2
    )
    await pool.start()
    try:
        tones = await asyncio.to_thread(two_party_tones, 600.0)
        recording = await finished_recording(Catalogue(db), blobs, tones)
        await pool.request(recording.id, "opus")
        async with asyncio.timeout(60):  # the worker has started writing
            while True:
                if await asyncio.to_thread(lambda: list(blobs.root.rglob("*.part"))):
                    break
                await asyncio.sleep(0.05)
        assert pool.running == 1
    finally:
        await pool.stop()
    try:
        left = await Renditions(db).get(recording.id, "opus")
        assert left is not None and left.status is RenditionStatus.PENDING and left.attempts == 0
        assert await asyncio.to_thread(
            lambda: sorted(p.name for p in blobs.root.rglob("*") if p.is_file())
        ) == [f"{recording.id}.flac"]
    finally:
        await db.close()


async def test_a_worker_killed_mid_encode_costs_one_attempt_and_no_partial_file(
    cluster: PgCluster, tmp_path: Path
) -> None:
    db = await open_pool(await cluster.create_database(), max_size=3)
    await migrate(db)
    blobs, metrics = FileBlobStore(tmp_path / "recordings"), Metrics()
    blobs.root.mkdir()
    pool = TranscodePool(
        db=db,
        blobs=blobs,
        metrics=metrics,
        settings=EncodeSettings(opus_complexity=10),
        poll_interval=0.1,
        retry_delays=(0.1,),
    )
    await pool.start()
    try:
        tones = await asyncio.to_thread(two_party_tones, 120.0)
        recording = await finished_recording(Catalogue(db), blobs, tones)
        await pool.request(recording.id, "opus")
        async with asyncio.timeout(60):
            while True:
                if await asyncio.to_thread(lambda: list(blobs.root.rglob("*.part"))):
                    break
                await asyncio.sleep(0.02)
        workers = multiprocessing.active_children()
        assert len(workers) == 1
        os.kill(workers[0].pid or 0, signal.SIGKILL)  # a crash inside a codec library
        done = await settled(Renditions(db), recording.id, "opus")
        assert done.status is RenditionStatus.DONE and done.attempts == 2 and done.error is None
        assert (
            metrics.registry.get_sample_value(
                "hangtar_transcode_jobs_total", {"format": "opus", "result": "retry"}
            )
            == 1
        )
        names = await asyncio.to_thread(lambda: sorted(p.name for p in blobs.root.rglob("*") if p.is_file()))
        assert names == sorted([f"{recording.id}.flac", f"{recording.id}.opus"])
        assert_tones(Path(str(done.file_path)), 120.0)
    finally:
        await pool.stop()
        await db.close()
