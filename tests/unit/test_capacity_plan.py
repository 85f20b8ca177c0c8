"""The capacity planner: hand-computed plans, the Poisson peak against an exact computation, the measured sizes
against what the recorder and the rendition encoders really write, and ``hangtar plan``'s output."""

from __future__ import annotations

import argparse
import asyncio
import json
from decimal import Decimal, getcontext
from pathlib import Path

import numpy as np
import pytest

from load_tests.bench_media_pipeline import speech_like
from media.g711 import decode_ulaw, encode_ulaw
from media.transcode import OutputFormat, transcode
from media.writer import FlacWriter
from siprec_server import cli_plan
from siprec_server.capacity_plan import MEASURED, Workload, peak_calls, plan, recording_bytes
from siprec_server.cli import _storage_options
from siprec_server.config import Config

MIB, KIB = 1024 * 1024, 1024


def exact_cdf(erlangs: int, k: int) -> Decimal:
    """P(N ≤ k) for N ~ Poisson(erlangs), in 60-digit decimal arithmetic."""
    getcontext().prec = 60
    mean = Decimal(erlangs)
    term = (-mean).exp()
    total = term
    for i in range(1, k + 1):
        term = term * mean / i
        total += term
    return total


# -- concurrency -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("erlangs", "peak"),
    [(1, 5), (30, 48), (80, 109), (1500, 1621)],  # P(N ≤ peak − 1) < 0.999 ≤ P(N ≤ peak)
)
def test_the_peak_is_the_poisson_999th_percentile(erlangs: int, peak: int) -> None:
    assert peak_calls(erlangs) == peak
    assert exact_cdf(erlangs, peak - 1) < Decimal("0.999") <= exact_cdf(erlangs, peak)


def test_no_traffic_no_peak_and_large_traffic_does_not_underflow() -> None:
    assert peak_calls(0) == 0
    # exp(-A) underflows to 0 above A ≈ 745: the log-space sum still finds the percentile (≈ A + 3.09 √A)
    assert 20_000 + 3.0 * 20_000**0.5 < peak_calls(20_000) < 20_000 + 3.2 * 20_000**0.5
    with pytest.raises(ValueError):
        peak_calls(-1)


# -- whole plans, computed by hand -------------------------------------------------------------------------------
def test_a_small_contact_centre_recording_flac() -> None:
    result = plan(Workload(calls_per_hour=600, avg_minutes=3, retention_days=60))
    assert result.erlangs == 30.0  # 600 × 3 / 60
    assert result.peak_calls == 48
    assert (result.nodes, result.cores) == (1, 1)
    assert result.recording_cores == pytest.approx(48 / 800)
    assert result.rendition_cores == 0.0
    # FLAC: 128 + 14,700 × 180 s = 2,646,128 octets; sealed in 41 chunks of 64 KiB: + 32 + 41 × 28
    assert result.bytes_per_recording == 2_650_696
    assert result.recordings_per_day == 14_400  # 600 × 24 h
    assert result.storage_bytes_per_day == 14_400 * 2_650_696 == 38_170_022_400
    assert result.storage_bytes == 60 * 38_170_022_400
    assert result.rtp_bits_per_second_peak == 48 * 2 * 80_000  # (160 + 12 + 8 + 20) × 8 × 50 a stream
    assert result.ram_bytes_per_node == 140 * MIB + 48 * 410 * KIB
    assert result.write_bytes_per_second_peak == 48 * 14_700


def test_opus_without_the_master_over_a_business_day() -> None:
    workload = Workload(
        calls_per_hour=1200,
        avg_minutes=4,
        retention_days=30,
        format=OutputFormat.OPUS,
        hours_per_day=10,
        keep_master=False,
    )
    result = plan(workload)
    assert (result.erlangs, result.peak_calls) == (80.0, 109)
    # 24 kbit/s × 240 s = 720,000 octets; 44 chunks: + 32 + 44 × 28
    assert result.bytes_per_recording == 721_264
    # 1,200 × 240 s of audio an hour at 3,000 µs a second: 864 CPU-seconds an hour
    assert result.rendition_cores == pytest.approx(0.24)
    assert result.recording_cores == pytest.approx(109 / 800)
    assert result.cores == 1
    assert result.recordings_per_day == 12_000
    assert result.storage_bytes == 30 * 12_000 * 721_264 == 259_655_040_000


def test_mp3_beside_the_master_and_wav_alone() -> None:
    mp3 = plan(Workload(calls_per_hour=60, avg_minutes=1, retention_days=1, format=OutputFormat.MP3))
    assert mp3.peak_calls == 5
    # MP3: 4,000 × 60 + 4 frames of 288 = 241,152 → sealed 241,296; FLAC 882,128 → sealed 882,552
    assert mp3.bytes_per_recording == 241_604 + 883_672
    assert mp3.rendition_cores == pytest.approx(3600 * 6300e-6 / 3600)
    wav = Workload(
        calls_per_hour=60, avg_minutes=2, retention_days=1, format=OutputFormat.WAV, keep_master=False
    )
    assert recording_bytes(wav, 120) == 32 + 235 * 28 + 44 + 32_000 * 120


def test_a_large_operator_needs_several_nodes() -> None:
    result = plan(Workload(calls_per_hour=30_000, avg_minutes=3, retention_days=1825))
    assert (result.erlangs, result.peak_calls) == (1500.0, 1621)
    assert result.nodes == 3  # 1,621 / 800 → 2.03
    assert result.cores == 3
    assert result.ram_bytes_per_node == 140 * MIB + 541 * 410 * KIB  # ceil(1,621 / 3) calls each


@pytest.mark.parametrize(
    "fields",
    [
        {"calls_per_hour": -1, "avg_minutes": 3, "retention_days": 60},
        {"calls_per_hour": 100, "avg_minutes": 0, "retention_days": 60},
        {"calls_per_hour": 100, "avg_minutes": float("nan"), "retention_days": 60},
        {"calls_per_hour": 100, "avg_minutes": 3, "retention_days": -5},
        {"calls_per_hour": 100, "avg_minutes": 3, "retention_days": 60, "hours_per_day": 25},
        {"calls_per_hour": 100, "avg_minutes": 3, "retention_days": 60, "mp3_bitrate": 33000},
    ],
)
def test_impossible_workloads_are_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Workload(**fields)  # type: ignore[arg-type]


# -- the measured sizes against the product's own writers ---------------------------------------------------------
@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """A minute of two-party G.711 speech (each party talking half the time) as the recorder writes it."""
    rng = np.random.default_rng(11)
    seconds = 60.0
    legs = [
        decode_ulaw(encode_ulaw(speech_like(seconds, pitch, first, rng)))
        for pitch, first in ((118.0, True), (205.0, False))
    ]
    path = tmp_path_factory.mktemp("plan") / "call.flac"
    writer = FlacWriter(str(path), 2, 8000)
    writer.write(np.stack(legs, axis=1).astype(np.int16))
    writer.close()
    return path, seconds


def test_the_flac_figure_covers_what_the_recorder_writes_for_speech(master: tuple[Path, float]) -> None:
    path, seconds = master
    written = path.stat().st_size / seconds
    assert written <= MEASURED.flac_bytes_per_second  # the plan never under-counts the master...
    assert (
        written >= 0.75 * MEASURED.flac_bytes_per_second
    )  # ...nor pads it past what an encoder change explains


@pytest.mark.parametrize("fmt", [OutputFormat.WAV, OutputFormat.OPUS, OutputFormat.MP3])
def test_rendition_sizes_match_the_encoders(
    master: tuple[Path, float], tmp_path: Path, fmt: OutputFormat
) -> None:
    path, seconds = master
    made = transcode(path, tmp_path / f"call.{fmt.extension}", fmt)
    workload = Workload(calls_per_hour=1, avg_minutes=1, retention_days=1, format=fmt, keep_master=False)
    planned = recording_bytes(workload, seconds)
    overhead = planned - made.size_bytes  # the plan counts the file sealed; the encoder wrote it plain
    if fmt is OutputFormat.WAV:
        assert made.size_bytes == 44 + 32_000 * 60  # exact
        assert overhead == 32 + 118 * 28
    elif fmt is OutputFormat.MP3:
        assert 0 <= overhead - (32 + 15 * 28) < 288  # CBR: within one frame of the plan
    else:
        assert made.size_bytes <= planned  # VBR under its target rate
        assert made.size_bytes >= 0.5 * planned


# -- hangtar plan -------------------------------------------------------------------------------------------------
def run_plan(*argv: str, config: Config | None = None) -> int | None:
    parser = argparse.ArgumentParser(prog="hangtar")
    cli_plan.add_commands(parser.add_subparsers(dest="command"), _storage_options)
    return asyncio.run(cli_plan.run(parser.parse_args(["plan", *argv]), config or Config()))


def test_the_command_prints_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_plan(
        "--calls-per-hour", "600", "--avg-minutes", "3", "--retention-days", "60", "--format", "flac"
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "30.0 on average (Erlangs), 48 at the peak" in out
    assert "nodes             1 " in out
    assert "38.2 GB a day, 2.3 TB held" in out
    assert "7.68 Mbit/s at the peak" in out


def test_json_is_the_plan_and_defaults_come_from_the_configuration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = Config(recording_format="opus", keep_master=False)
    code = run_plan(
        "--calls-per-hour",
        "1200",
        "--avg-minutes",
        "4",
        "--retention-days",
        "30",
        "--hours-per-day",
        "10",
        "--json",
        config=config,
    )
    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    expected = plan(
        Workload(
            calls_per_hour=1200,
            avg_minutes=4,
            retention_days=30,
            format=OutputFormat.OPUS,
            hours_per_day=10,
            keep_master=False,
        )
    )
    assert printed == json.loads(json.dumps(expected.to_json()))
    assert printed["workload"]["format"] == "opus" and printed["bytes_per_recording"] == 721_264


def test_bad_figures_exit_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_plan("--calls-per-hour", "600", "--avg-minutes", "0", "--retention-days", "60") == 2
    assert "mean call length" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        run_plan("--calls-per-hour", "600", "--avg-minutes", "3", "--retention-days", "60", "--format", "ogg")
    assert exited.value.code == 2


def test_other_commands_are_not_plans() -> None:
    args = argparse.Namespace(command="keys")
    assert asyncio.run(cli_plan.run(args, Config())) is None
