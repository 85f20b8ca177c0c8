"""The access-request bundle: every file hashed in the manifest, the audio exactly as stored, the metadata and
the Art. 15 summary in Hungarian and English; written atomically and streamed."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import BinaryIO
from uuid import UUID, uuid4

import asyncpg
import pytest
import soundfile

from storage import FileBlobStore, ParticipantRole, Recording
from storage.access_rules import parse_criteria
from storage.audio_opener import plain_audio_opener, plain_file_opener
from storage.bundle import BUNDLE_FORMAT, BundleItem, BundleRequest, BundleResult, write_bundle
from storage.errors import IntegrityError
from storage.renditions import Renditions
from storage.subject_data import SubjectData

from .subject_samples import (
    add_consent_proof,
    add_recording,
    add_wav_rendition,
    flip_byte,
    make_tenant,
    party,
)

GENERATED = datetime(2026, 11, 30, 10, 15, tzinfo=UTC)
CALLER = party("+3612345678", "Kovács Éva", ParticipantRole.CALLER)
AGENT = party("+3618889000", "ACME ügyfélszolgálat", ParticipantRole.CALLEE)


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "recordings")


async def _items(pool: asyncpg.Pool, tenant_id: UUID | None, number: str = "+3612345678") -> list[BundleItem]:
    data = SubjectData(pool)
    subjects = await data.search(tenant_id, parse_criteria(number=number))
    proofs = await data.consent_proofs([s.recording.id for s in subjects])
    return [
        BundleItem(
            subject=s,
            renditions=tuple(await Renditions(pool).for_recording(s.recording.id)),
            consent_proofs=tuple(proofs.get(s.recording.id, ())),
        )
        for s in subjects
    ]


def _request(controller: str = "ACME Kft.") -> BundleRequest:
    return BundleRequest(
        request_id=UUID("0b6c1d3e-5f7a-4b2c-9d8e-1f2a3b4c5d6e"),
        controller=controller,
        received_at=datetime(2026, 11, 29, 8, 0, tzinfo=UTC),
        number="+3612345678",
    )


def _write(target: Path, items: list[BundleItem], blobs: FileBlobStore, **overrides: object) -> BundleResult:
    arguments: dict[str, object] = {
        "request": _request(),
        "items": items,
        "generated_at": GENERATED,
        "open_audio": plain_audio_opener(blobs),
        "open_file": plain_file_opener(blobs),
    }
    arguments.update(overrides)
    return write_bundle(target, **arguments)  # type: ignore[arg-type]


async def _two_calls(pool: asyncpg.Pool, blobs: FileBlobStore) -> tuple[UUID, Recording, Recording]:
    acme = await make_tenant(pool, "acme-kft", "ACME Kft.")
    quality = await add_recording(
        pool,
        blobs,
        tenant_id=acme,
        started_at=datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
        caller=CALLER,
        callee=AGENT,
    )
    consented = await add_recording(
        pool,
        blobs,
        tenant_id=acme,
        started_at=datetime(2026, 11, 27, 13, 30, tzinfo=UTC),
        caller=CALLER,
        callee=AGENT,
        basis="consent",
        purpose="szerződéskötés rögzítése",
        retention="consent",
        consent_state="given",
        seed=4,
    )
    await add_wav_rendition(pool, blobs, quality)
    await add_consent_proof(pool, consented, "+3612345678", "1")
    return acme, quality, consented


async def test_every_file_matches_the_manifest_and_the_audio_is_the_stored_file(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    acme, quality, consented = await _two_calls(pool, blobs)
    result = _write(tmp_path / "bundle.zip", await _items(pool, acme), blobs)

    with zipfile.ZipFile(result.path) as bundle:
        assert bundle.testzip() is None
        manifest = json.loads(bundle.read("manifest.json"))
        assert manifest["format"] == BUNDLE_FORMAT and manifest["controller"] == "ACME Kft."
        listed = {entry["path"]: entry for entry in manifest["files"]}
        assert set(listed) == set(bundle.namelist()) - {"manifest.json"}
        for name, entry in listed.items():
            content = bundle.read(name)
            assert (len(content), hashlib.sha256(content).hexdigest()) == (entry["size"], entry["sha256"])

        folder = f"recordings/2026-11-20T090000Z_{quality.reference}"
        assert quality.file_path is not None and quality.sha256 is not None
        audio = bundle.read(f"{folder}/audio.flac")
        with blobs.open_read(quality.file_path) as stored:
            assert audio == stored.read()
        assert listed[f"{folder}/audio.flac"]["sha256"] == quality.sha256
        samples, rate = soundfile.read(io.BytesIO(audio), always_2d=True)
        assert (rate, samples.shape[1]) == (8000, 2)  # both parties, as stored
        wav, wav_rate = soundfile.read(io.BytesIO(bundle.read(f"{folder}/rendition.wav")), always_2d=True)
        assert (wav_rate, wav.shape) == (8000, samples.shape)

        metadata = json.loads(bundle.read(f"{folder}/metadata.json"))
        assert metadata["reference"] == quality.reference
        assert [p["name"] for p in metadata["participants"]] == ["Kovács Éva", "ACME ügyfélszolgálat"]
        assert metadata["numbers"] == ["+3612345678", "+3618889000"]
        assert metadata["streams"][0]["loss_fraction"] == pytest.approx(0.000638)
        assert metadata["streams"][0]["jitter_ms"] == pytest.approx(3.125)
        assert (metadata["basis"], metadata["purpose"]) == ("legitimate_interest", "quality assurance")
        assert metadata["retention"]["class"] == "quality_60d" and metadata["retention"]["days"] == 60
        assert metadata["retention"]["expires_at"] == "2027-01-19T09:00:00.000000Z"
        assert metadata["raw_metadata"].startswith('<?xml version="1.0"')
        assert "urn:ietf:params:xml:ns:recording:1" in metadata["raw_metadata"]
        assert metadata["audio_file"] == f"{folder}/audio.flac"
        assert metadata["renditions"][0]["file"] == f"{folder}/rendition.wav"
        assert "file_path" not in metadata  # server paths stay inside

        other = json.loads(bundle.read(f"recordings/2026-11-27T133000Z_{consented.reference}/metadata.json"))
        assert other["consent"]["state"] == "given"
        assert other["consent"]["proofs"] == [
            {
                "number": "+3612345678",
                "prompt_version": "v1",
                "asked_at": "2026-11-27T13:30:01.000000Z",
                "answered_at": "2026-11-27T13:30:04.200000Z",
                "digit": "1",
                "outcome": "given",
            }
        ]
    assert result.path.stat().st_mode & 0o777 == 0o600
    assert result.sha256 == hashlib.sha256(result.path.read_bytes()).hexdigest()
    assert result.recording_ids == (quality.id, consented.id)
    assert not (tmp_path / "bundle.zip.part").exists()


async def test_the_summary_gives_the_article_15_items_in_hungarian_and_english(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    acme, quality, _ = await _two_calls(pool, blobs)
    result = _write(tmp_path / "bundle.zip", await _items(pool, acme), blobs)
    with zipfile.ZipFile(result.path) as bundle:
        text = bundle.read("summary.txt").decode("utf-8")
        page = bundle.read("summary.html").decode("utf-8")
    hungarian, english = text.split("Information in reply to your access request")
    for phrase in (
        "Adatkezelő: ACME Kft.",
        "2 hangfelvételt találtunk",
        f"{quality.reference}: 2026-11-20 10:00",  # Budapest time
        "quality assurance: az adatkezelő jogos érdeke (GDPR 6. cikk (1) bekezdés f) pont)",
        "szerződéskötés rögzítése: az Ön hozzájárulása",
        "mindkét fél hangjával",
        "a hozzájárulás igazolása",
        "nem továbbította más címzettnek",
        f"{quality.reference}: 60 napig; törlés: 2027-01-19 10:00",
        "vagy amíg hozzájárulását vissza nem vonja",
        "helyesbítését",
        "törlését",
        "korlátozását",
        "Tiltakozhat",
        "Nemzeti Adatvédelmi és Információszabadság Hatóság",
        "magából a telefonhívásból származnak",
        "nem hozunk automatizált döntést",
        "harmadik országba",
    ):
        assert phrase in hungarian, phrase
    for phrase in (
        "Controller: ACME Kft.",
        "We found 2 recording(s)",
        "the controller's legitimate interests (GDPR Art. 6(1)(f))",
        "has not passed the recordings to any recipient",
        "60 days; deleted on 2027-01-19 10:00",
        "rectified",
        "erased",
        "restricted",
        "object to processing",
        "lodge a complaint",
        "NAIH",
        "come from the phone call itself",
        "No automated decisions",
        "third country",
    ):
        assert phrase in english, phrase

    class Collect(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.text: list[str] = []
            self.tags: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append(tag)

        def handle_data(self, data: str) -> None:
            self.text.append(data)

    parsed = Collect()
    parsed.feed(page)
    assert "script" not in parsed.tags and parsed.tags.count("section") == 2
    assert "Nemzeti Adatvédelmi és Információszabadság Hatóság" in "".join(parsed.text)


async def test_a_statutory_recording_names_its_law_and_names_are_escaped_in_html(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    utility = await make_tenant(pool, "aram-zrt", "Áram Zrt.")
    odd = party("+3612345678", '<script>alert("x")</script>', ParticipantRole.CALLER)
    await add_recording(
        pool,
        blobs,
        tenant_id=utility,
        started_at=datetime(2026, 11, 2, 7, 45, tzinfo=UTC),
        caller=odd,
        callee=AGENT,
        basis="legal_obligation",
        statute="Fgytv. 17/B §",
        purpose="ügyfélszolgálati hívások rögzítése",
        retention="utility_customer_service",
    )
    result = _write(tmp_path / "b.zip", await _items(pool, utility), blobs, request=_request("Áram Zrt."))
    with zipfile.ZipFile(result.path) as bundle:
        text = bundle.read("summary.txt").decode()
        page = bundle.read("summary.html").decode()
    assert "jogi kötelezettség teljesítése (GDPR 6. cikk (1) bekezdés c) pont); Fgytv. 17/B §" in text
    assert "1826 napig, jogszabály írja elő (Fgytv. 17/B §)" in text
    assert "1826 days, required by law (Fgytv. 17/B §)" in text
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


async def test_a_damaged_file_stops_the_bundle_and_keeps_the_previous_one(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    acme, quality, _ = await _two_calls(pool, blobs)
    target = tmp_path / "bundle.zip"
    first = _write(target, await _items(pool, acme), blobs)
    rendition = (await Renditions(pool).for_recording(quality.id))[0]
    assert rendition.file_path is not None
    flip_byte(rendition.file_path, offset=2000)  # inside the samples: still a playable WAV
    with pytest.raises(IntegrityError, match=f"wav rendition of {quality.reference}"):
        _write(target, await _items(pool, acme), blobs)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == first.sha256
    assert sorted(os.listdir(tmp_path)) == ["bundle.zip", "recordings"]


async def test_calls_in_progress_and_without_audio_bring_their_data_only(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    acme = await make_tenant(pool, "acme-kft", "ACME Kft.")
    live = await add_recording(
        pool,
        blobs,
        tenant_id=acme,
        started_at=GENERATED - timedelta(minutes=2),
        caller=CALLER,
        callee=AGENT,
        finished=False,
    )
    result = _write(tmp_path / "b.zip", await _items(pool, acme), blobs)
    with zipfile.ZipFile(result.path) as bundle:
        names = bundle.namelist()
        metadata = json.loads(bundle.read(f"recordings/2026-11-30T101300Z_{live.reference}/metadata.json"))
        text = bundle.read("summary.txt").decode()
    assert not any(name.endswith(".flac") for name in names)
    assert metadata["audio_file"] is None and metadata["status"] == "recording"
    assert metadata["audio_note"] == "the call was still being recorded when this bundle was made"
    assert "az összeállításkor még tartott a felvétel" in text


async def test_nothing_found_is_still_an_answer(blobs: FileBlobStore, tmp_path: Path) -> None:
    result = _write(tmp_path / "empty.zip", [], blobs)
    with zipfile.ZipFile(result.path) as bundle:
        assert sorted(bundle.namelist()) == ["manifest.json", "summary.html", "summary.txt"]
        text = bundle.read("summary.txt").decode()
    assert "nem találtunk Önről hangfelvételt" in text and "We found no recording of you" in text
    assert result.recording_ids == ()


async def test_audio_is_read_in_bounded_chunks(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    acme = await make_tenant(pool, "acme-kft", "ACME Kft.")
    long_call = await add_recording(
        pool,
        blobs,
        tenant_id=acme,
        started_at=datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
        caller=CALLER,
        callee=AGENT,
        seconds=150.0,
    )
    assert long_call.size_bytes is not None and long_call.size_bytes > 1 << 20
    reads: list[int] = []

    class Counting(io.RawIOBase):
        def __init__(self, inner: BinaryIO) -> None:
            self.inner = inner

        def read(self, size: int = -1) -> bytes:
            assert size > 0, "read the whole file at once"
            reads.append(size)
            return self.inner.read(size)

    @contextlib.contextmanager
    def opener(recording: Recording) -> Iterator[BinaryIO]:
        assert recording.file_path is not None
        with blobs.open_read(recording.file_path) as inner:
            yield Counting(inner)  # type: ignore[misc]

    result = _write(tmp_path / "b.zip", await _items(pool, acme), blobs, open_audio=opener)
    assert len(reads) >= 2 and max(reads) <= 1 << 20
    with zipfile.ZipFile(result.path) as bundle:
        assert bundle.getinfo(
            f"recordings/2026-11-20T090000Z_{long_call.reference}/audio.flac"
        ).file_size == (long_call.size_bytes)


async def test_another_tenants_recordings_never_enter_a_bundle(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    acme, quality, _ = await _two_calls(pool, blobs)
    other = await make_tenant(pool, "masik-bt", "Másik Bt.")
    assert await _items(pool, other) == []
    assert await SubjectData(pool).by_ids(other, [quality.id]) == []
    assert [s.recording.id for s in await SubjectData(pool).by_ids(acme, [quality.id, uuid4()])] == [
        quality.id
    ]
