"""Verification after a run: every call the generator placed must have left a correct recording.

Each call is looked up in the catalogue by its Call-ID (through :mod:`storage`, read-only) once the server has
finalised it, and its audio file is read back. A call is verified when its recording is ``complete``, stereo,
as long as the media that was sent (first RTP packet of either leg to the end of the last, ± 0.25 s, less any
extra one-way delay of a leg that its sender reports aligned away), carries
the caller's tone on the left and the callee's on the right (± 5 Hz), and its channels start within 0.25 s of
each other as their legs did (an extra one-way delay may be kept on the timeline or aligned away). Each channel
must sound from first to last for as long as its leg sent (by the generator's clock or by the RTP timestamps,
which differ when the generator falls behind) — within the error of anchoring each source by its
first arrival (the jitter and a packet time), a realignment by a sender report (the jitter once more), and one
packet — so no audio was cut out; and no channel may be silent for longer than its leg's longest run of
dropped packets explains (plus, after an SSRC change, that anchoring error once). Rejected, unanswered and
failed calls are not verified, with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from storage import Catalogue, Recording, RecordingStatus, StorageError, open_pool
from storage.keys import KeyFileProvider, RecordingKeys
from storage.s3_config import S3Settings
from storage.s3_store import S3Store

from .audio_checks import AudioFacts, analyse_file
from .profile import PTIME
from .results import CallResult
from .rtp_legs import LegResult

__all__ = [
    "CallVerdict",
    "Tolerances",
    "check_calls",
    "collect_recordings",
    "fetch_objects",
    "find_recordings",
    "judge",
]

_PAGE = 1000  # the catalogue's largest page
_POLL = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class Tolerances:
    duration: float = 0.25  # seconds
    frequency: float = 5.0  # Hz
    gap_slack: float = 0.005  # seconds of silence beyond what the drops explain


@dataclass(frozen=True, slots=True, kw_only=True)
class CallVerdict:
    index: int
    call_id: str
    verified: bool
    problems: tuple[str, ...]
    reference: str | None = None
    status: str | None = None
    duration: float | None = None  # of the audio file
    expected_duration: float | None = None
    peaks_hz: tuple[float | None, ...] = ()
    longest_gaps: tuple[float, ...] = ()
    received: int = 0  # RTP packets the catalogue says the streams received (duplicates included)
    lost: int = 0
    late: int = 0
    duplicated: int = 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["problems"] = list(self.problems)
        data["peaks_hz"] = list(self.peaks_hz)
        data["longest_gaps"] = list(self.longest_gaps)
        return data


def judge(
    call: CallResult, recording: Recording | None, audio: AudioFacts | None, tolerances: Tolerances
) -> CallVerdict:
    """The verdict on one call from what the generator sent, the catalogue row and the audio file (pure)."""
    if not call.answered:
        return CallVerdict(
            index=call.index,
            call_id=call.call_id,
            verified=False,
            problems=(f"not answered: {call.outcome} {call.status or ''} {call.reason}".rstrip(),),
        )
    problems: list[str] = []
    if call.outcome not in ("completed", "ended_by_srs"):
        problems.append(f"call ended {call.outcome}: {call.reason}")
    if recording is None:
        problems.append("no finished recording with this Call-ID in the catalogue")
        return CallVerdict(index=call.index, call_id=call.call_id, verified=False, problems=tuple(problems))
    streams = recording.streams
    base = CallVerdict(
        index=call.index,
        call_id=call.call_id,
        verified=False,
        problems=(),
        reference=recording.reference,
        status=recording.status.value,
        received=sum(s.packets for s in streams),
        lost=sum(s.lost for s in streams),
        late=sum(s.late for s in streams),
        duplicated=sum(s.duplicated for s in streams),
    )
    if recording.status is not RecordingStatus.COMPLETE:
        problems.append(f"status {recording.status.value}, expected complete")
    if audio is None:
        if recording.file_path is None:
            problems.append(f"no audio file in the catalogue (status {recording.status.value})")
        else:
            problems.append(f"audio file {recording.file_path} unreadable")
        return replace(base, problems=tuple(problems))
    expected = call.media_span
    problems += _audio_problems(call, audio, expected, tolerances)
    return replace(
        base,
        verified=not problems,
        problems=tuple(problems),
        duration=audio.duration,
        expected_duration=expected,
        peaks_hz=tuple(c.peak_hz for c in audio.channels),
        longest_gaps=tuple(c.longest_gap for c in audio.channels),
    )


def _audio_problems(
    call: CallResult, audio: AudioFacts, expected: float | None, tolerances: Tolerances
) -> list[str]:
    problems: list[str] = []
    if len(audio.channels) != 2:
        return [f"{len(audio.channels)} channel(s), expected 2"]
    # A leg's extra one-way delay may be aligned away by its sender reports, shortening the file by that much.
    alignable = max(leg.delay_ms for leg in call.legs) / 1000
    if expected is None or not (
        expected - alignable - tolerances.duration <= audio.duration <= expected + tolerances.duration
    ):
        low = (expected or 0) - alignable - tolerances.duration
        high = (expected or 0) + tolerances.duration
        problems.append(f"duration {audio.duration:.3f} s, expected {low:.3f}–{high:.3f} s")
    origin = min(leg.first_sent_at for leg in call.legs if leg.first_sent_at is not None)
    sound_starts: list[float] = []
    for side, leg, channel in zip(("left", "right"), call.legs, audio.channels, strict=True):
        if channel.peak_hz is None or channel.first_sound is None or channel.last_sound is None:
            problems.append(f"{side} channel is silent, expected {leg.frequency} Hz")
            continue
        if abs(channel.peak_hz - leg.frequency) > tolerances.frequency:
            problems.append(f"{side} channel peaks at {channel.peak_hz:.1f} Hz, expected {leg.frequency} Hz")
        # Each source is anchored by its first packet's arrival: off by up to the jitter and a tick.
        anchoring = leg.jitter_ms / 1000 + PTIME
        span = _leg_span(leg)
        # The recording follows the RTP timestamps: a generator that fell behind its clock stretched the wall
        # time it took to send, not the audio it sent.
        stamped = leg.packets * PTIME
        heard = channel.last_sound - channel.first_sound
        # A last packet still in flight when the BYE arrives may be missing: one packet more. A sender report that
        # realigns the leg after output has started moves it by up to its jitter, which that much sound may cost.
        slack = anchoring * len(leg.ssrcs) + leg.jitter_ms / 1000 + PTIME + tolerances.gap_slack
        if not min(span, stamped) - slack <= heard <= max(span, stamped) + slack:
            problems.append(
                f"{side} channel sounds for {heard:.3f} s, its leg sent {span:.3f} s "
                f"({stamped:.3f} s of timestamps; ± {slack * 1000:.0f} ms)"
            )
        allowed = leg.longest_loss_run * PTIME + tolerances.gap_slack
        if len(leg.ssrcs) > 1:
            allowed += anchoring  # the new source is anchored by its own first arrival
        if channel.longest_gap > allowed:
            problems.append(
                f"{side} channel silent for {channel.longest_gap * 1000:.0f} ms at {channel.gap_at or 0:.2f} s; "
                f"its drops explain {allowed * 1000:.0f} ms"
            )
        sound_starts.append(channel.first_sound - ((leg.first_sent_at or origin) - origin))
    if len(sound_starts) == 2 and abs(sound_starts[1] - sound_starts[0]) > tolerances.duration:
        problems.append(
            f"the channels are {abs(sound_starts[1] - sound_starts[0]):.3f} s out of step with what was sent"
        )
    return problems


def _leg_span(leg: LegResult) -> float:
    if leg.first_sent_at is None or leg.last_sent_at is None:
        return 0.0
    return leg.last_sent_at - leg.first_sent_at + PTIME


async def find_recordings(
    catalogue: Catalogue, call_ids: set[str], *, since: datetime, patience: float
) -> dict[str, Recording]:
    """The finished recordings of ``call_ids`` started after ``since``, waiting up to ``patience`` seconds for
    the server to finalise them; what is still missing then is simply absent from the result."""
    deadline = time.monotonic() + patience
    found: dict[str, Recording] = {}
    while True:
        for recording in await _recent(catalogue, since):
            if recording.call_id in call_ids and recording.settled:
                found[recording.call_id] = recording
        if len(found) == len(call_ids) or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(_POLL)


async def _recent(catalogue: Catalogue, since: datetime) -> list[Recording]:
    """Every recording started at or after ``since``, newest first, page by page."""
    rows: dict[str, Recording] = {}
    before: datetime | None = None
    while True:
        page = await catalogue.list(limit=_PAGE, before=before)
        fresh = [r for r in page if str(r.id) not in rows and r.started_at >= since]
        rows.update((str(r.id), r) for r in fresh)
        if len(page) < _PAGE or not fresh or page[-1].started_at < since:
            return list(rows.values())
        # rows sharing the last page's oldest start time may straddle the page edge: ask again from it
        before = page[-1].started_at + timedelta(microseconds=1)


async def collect_recordings(
    dsn: str, calls: Sequence[CallResult], *, since: datetime, patience: float = 60.0
) -> dict[str, Recording]:
    """The finished recordings of the answered ``calls``, by Call-ID, once the server has finalised them."""
    wanted = {call.call_id for call in calls if call.answered}
    pool = await open_pool(dsn, min_size=1, max_size=2)
    try:
        return await find_recordings(Catalogue(pool), wanted, since=since, patience=patience)
    finally:
        await pool.close()


async def data_keys(dsn: str, recordings: Mapping[str, Recording], key_file: Path) -> dict[str, bytes]:
    """The data keys of the encrypted recordings, by Call-ID, unwrapped with the server's key file; a recording
    whose key cannot be had is left out (and reported unreadable)."""
    pool = await open_pool(dsn, min_size=1, max_size=2)
    keys = RecordingKeys(pool, KeyFileProvider(key_file))
    found: dict[str, bytes] = {}
    try:
        for call_id, recording in recordings.items():
            if recording.encryption is None:
                continue
            with contextlib.suppress(StorageError):
                found[call_id] = await keys.get(recording.id, tenant_id=recording.tenant_id)
    finally:
        await pool.close()
    return found


async def fetch_objects(
    recordings: Mapping[str, Recording], settings: S3Settings, into: Path
) -> dict[str, Recording]:
    """The recordings with their objects in an S3-compatible store copied under ``into`` (the stored octets,
    still sealed), each pointing at its copy; the others as they are."""
    copies: dict[str, Recording] = dict(recordings)
    async with S3Store(settings) as store:
        for call_id, recording in recordings.items():
            if recording.object_key is None or recording.size_bytes is None:
                continue
            target = into / recording.object_key.replace("/", "_")
            with contextlib.suppress(StorageError):
                data = await store.read_range(recording.object_key, 0, recording.size_bytes)
                await asyncio.to_thread(target.write_bytes, data)
                copies[call_id] = replace(recording, file_path=str(target))
    return copies


async def check_calls(
    calls: Sequence[CallResult],
    recordings: Mapping[str, Recording],
    *,
    tolerances: Tolerances | None = None,
    processes: int = 2,
    keys: Mapping[str, bytes] | None = None,
) -> list[CallVerdict]:
    """Read every recording's audio (in ``processes`` worker processes; ``keys`` decrypt the sealed ones, by
    Call-ID) and judge each call, in order."""
    tolerances = tolerances or Tolerances()
    audio = await _analyse(recordings, processes, keys or {})
    return [judge(call, recordings.get(call.call_id), audio.get(call.call_id), tolerances) for call in calls]


def _use_every_cpu() -> None:
    """The checks run once the server is idle: they need not stay off its CPU like the generator."""
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))


async def _analyse(
    recordings: Mapping[str, Recording], processes: int, keys: Mapping[str, bytes]
) -> dict[str, AudioFacts]:
    loop = asyncio.get_running_loop()
    paths = {call_id: r.file_path for call_id, r in recordings.items() if r.file_path}
    context = multiprocessing.get_context("spawn")  # the caller runs an event loop and threads: no fork
    with ProcessPoolExecutor(
        max_workers=max(1, processes), mp_context=context, initializer=_use_every_cpu
    ) as executor:
        futures = {
            call_id: loop.run_in_executor(executor, analyse_file, path, keys.get(call_id))
            for call_id, path in paths.items()
        }
        facts: dict[str, AudioFacts] = {}
        for call_id, future in futures.items():
            try:
                facts[call_id] = await future
            except (OSError, RuntimeError, ValueError):
                continue  # reported as unreadable by judge()
    return facts
