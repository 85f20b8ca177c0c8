"""Capacity planning: from a busy hour's calls to nodes, cores, RAM, storage and RTP bandwidth (pure computation).

The figures are the measured ones, kept together in :class:`Measured` (the capacity report is
``docs/capacity/``, summarised in the README's "Measured capacity"). ``hangtar plan`` (:mod:`.cli_plan`) prints
the result.

Concurrency. ``A = calls per hour × minutes per call / 60`` is the offered traffic in Erlangs: the mean number of
calls in progress. The recorder never queues a call (it records every call the PBX places, up to ``max_calls``),
so Erlang B or C do not apply: with calls starting at random (a Poisson process) the number in progress is
Poisson-distributed with mean ``A``, whatever the distribution of call lengths (the M/G/∞ queue). The peak
planned for is that distribution's 99.9th percentile: the smallest ``k`` with ``P(N ≤ k) ≥ 0.999``, so calls
exceed it about one minute in a thousand (``A = 30`` → 48; ``A = 500`` → 571). Give the busy hour's rate: the
plan covers that hour.

Storage counts every recording kept for the retention period: recordings per day (the rate × ``hours_per_day``,
24 for a round-the-clock rate; a centre whose busy hour holds a tenth of the day's calls gives 10) × days × the
bytes of one recording. A recording is its FLAC master, plus a rendition when the format is WAV, Opus or MP3
(the master goes once the rendition is confirmed with ``keep_master = false``), each encrypted at rest (AES-GCM
chunks: :func:`storage.sealed_format.sealed_size`). The catalogue's rows in PostgreSQL are not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from media.transcode import EncodeSettings, OutputFormat
from storage.sealed_format import sealed_size

__all__ = ["MEASURED", "CapacityPlan", "Measured", "Workload", "peak_calls", "plan"]

PEAK_QUANTILE = 0.999
_DEFAULTS = EncodeSettings()


@dataclass(frozen=True, slots=True, kw_only=True)
class Measured:
    """The measured figures the plan is made of, in one place.

    CPU and memory: the capacity report (docs/capacity/capacity.md, two PCMU streams per call, every recording
    encrypted as written, the server pinned to one core with its embedded PostgreSQL): 250 / 500 / 1,000 calls
    took 23 / 46 / 76 % of the core and 4.10 / 4.08 / 3.43 CPU-seconds per call-hour, with no loss and every
    recording verified; at 1,000 the set-up of 50 calls a second peaked at 99 % and OPTIONS stayed within 17 ms.
    One server process records on one core, so a node is planned at 800 calls (about 60 % busy), leaving room
    for set-up peaks and the hourly full collection of frozen objects (siprec_server.gc_policy).
    Resident memory: 248 MB at 250 calls to 518 MB at 1,000 in one process's life; the line through the idle
    process (140 MB) and the 1,000-call peak is 390 KB a call; the plan keeps 410 KB, which covers every step
    measured so far.
    """

    calls_per_core: int = 800  # concurrent calls one recording core carries with headroom (about 60 % busy)
    cpu_seconds_per_call_hour: float = 4.2  # the highest of the three steps, rounded up
    rss_base_bytes: int = 140 * 1024 * 1024
    rss_per_call_bytes: int = 410 * 1024
    # FLAC master, 8 kHz stereo 16-bit from G.711 (libsndfile level 0, as media.writer writes it): 0.88 MB a
    # minute measured on stereo G.711 speech; the speech-shaped benchmark signal
    # (load_tests.bench_media_pipeline.speech_like) gives 12,200 B/s. The plan takes the larger.
    flac_bytes_per_second: float = 14_700.0
    flac_header_bytes: int = 128  # STREAMINFO and the Vorbis comment written before the first frame
    # WAV rendition: 16-bit PCM, sample for sample: 8000 × 2 channels × 2 octets, and a 44-octet RIFF header.
    wav_bytes_per_second: float = 8000 * 2 * 2
    wav_header_bytes: int = 44
    # Opus is VBR: the encoder's target rate bounds it (speech measured at 2,500 B/s for the 3,000 of 24 kbit/s,
    # Ogg paging included). MP3 is CBR: exactly its rate, plus LAME's info tag and the encoder delay and
    # padding, about four 72 ms frames (1,101 octets measured on a minute's call at 32 kbit/s).
    mp3_frames_overhead: int = 4
    # Rendition encoding, CPU µs per stereo second of an 8 kHz master (read, encode, read back, hash; the
    # table in media/transcode.py). Renditions queue, so the mean rate is what needs cores.
    wav_encode_us_per_second: float = 280.0
    opus_encode_us_per_second: float = 3000.0  # complexity 1, the default
    mp3_encode_us_per_second: float = 6300.0
    # RTP in, one G.711 stream at 20 ms: (160 payload + 12 RTP + 8 UDP + 20 IPv4 header) octets × 50 packets/s.
    rtp_stream_bits_per_second: int = (160 + 12 + 8 + 20) * 8 * 50
    streams_per_call: int = 2

    def encode_us_per_second(self, fmt: OutputFormat) -> float:
        """CPU µs per second of audio to make a rendition in ``fmt`` (none for FLAC: the master is it)."""
        return {
            OutputFormat.FLAC: 0.0,
            OutputFormat.WAV: self.wav_encode_us_per_second,
            OutputFormat.OPUS: self.opus_encode_us_per_second,
            OutputFormat.MP3: self.mp3_encode_us_per_second,
        }[fmt]


MEASURED = Measured()


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    calls_per_hour: float  # in the busy hour
    avg_minutes: float  # mean call length
    retention_days: float
    format: OutputFormat = OutputFormat.FLAC
    hours_per_day: float = 24.0  # hours a day at that rate (storage only)
    keep_master: bool = True  # with a WAV, Opus or MP3 rendition, the FLAC master is kept too
    opus_bitrate: int = _DEFAULTS.opus_bitrate  # bit/s for a two-channel recording
    mp3_bitrate: int = _DEFAULTS.mp3_bitrate

    def __post_init__(self) -> None:
        if not (math.isfinite(self.calls_per_hour) and self.calls_per_hour >= 0):
            raise ValueError("calls per hour must be a number of at least 0")
        if not (math.isfinite(self.avg_minutes) and self.avg_minutes > 0):
            raise ValueError("the mean call length must be above 0 minutes")
        if not (math.isfinite(self.retention_days) and self.retention_days >= 0):
            raise ValueError("the retention period must be at least 0 days")
        if not 0 < self.hours_per_day <= 24:
            raise ValueError("hours per day must be above 0 and at most 24")
        EncodeSettings(opus_bitrate=self.opus_bitrate, mp3_bitrate=self.mp3_bitrate)  # ValueError if invalid


@dataclass(frozen=True, slots=True, kw_only=True)
class CapacityPlan:
    workload: Workload
    erlangs: float  # mean calls in progress
    peak_calls: int  # 99.9th percentile of calls in progress
    nodes: int  # server processes, each recording on one core
    recording_cores: float  # at the peak
    rendition_cores: float  # mean, for the rendition workers
    cores: int  # recording + renditions, rounded up
    ram_bytes_per_node: int  # at the peak spread over the nodes
    bytes_per_recording: int  # as stored: master and/or rendition, encrypted
    recordings_per_day: float
    storage_bytes_per_day: int
    storage_bytes: int  # held at any time once the retention period is full
    rtp_bits_per_second_peak: int
    write_bytes_per_second_peak: int  # the FLAC masters being written at the peak

    def to_json(self) -> dict[str, Any]:
        workload = {
            "calls_per_hour": self.workload.calls_per_hour,
            "avg_minutes": self.workload.avg_minutes,
            "retention_days": self.workload.retention_days,
            "format": self.workload.format.value,
            "hours_per_day": self.workload.hours_per_day,
            "keep_master": self.workload.keep_master,
        }
        figures = {name: getattr(self, name) for name in self.__slots__ if name != "workload"}
        return {"workload": workload, **figures, "peak_quantile": PEAK_QUANTILE}


def peak_calls(erlangs: float, quantile: float = PEAK_QUANTILE) -> int:
    """The smallest ``k`` with ``P(N ≤ k) ≥ quantile`` for ``N`` Poisson-distributed with mean ``erlangs``."""
    if erlangs < 0 or not 0 < quantile < 1:
        raise ValueError("erlangs must be at least 0 and the quantile between 0 and 1")
    if erlangs == 0:
        return 0
    cumulative, k = 0.0, 0
    while True:
        # log-space terms: exp(-A) alone underflows above A ≈ 745
        cumulative += math.exp(k * math.log(erlangs) - erlangs - math.lgamma(k + 1))
        if cumulative >= quantile:
            return k
        k += 1


def recording_bytes(workload: Workload, seconds: float, measured: Measured = MEASURED) -> int:
    """Octets stored for one recording of ``seconds``: its files as written encrypted."""
    master = sealed_size(math.ceil(measured.flac_header_bytes + measured.flac_bytes_per_second * seconds))
    fmt = workload.format
    if fmt is OutputFormat.FLAC:
        return master
    if fmt is OutputFormat.WAV:
        plain = measured.wav_header_bytes + measured.wav_bytes_per_second * seconds
    elif fmt is OutputFormat.OPUS:
        plain = workload.opus_bitrate / 8 * seconds
    else:  # MPEG-2.5 Layer III at 8 kHz: 576 samples a frame
        frame = 576 * workload.mp3_bitrate / 8 / 8000
        plain = workload.mp3_bitrate / 8 * seconds + measured.mp3_frames_overhead * frame
    rendition = sealed_size(math.ceil(plain))
    return rendition + (master if workload.keep_master else 0)


def plan(workload: Workload, measured: Measured = MEASURED) -> CapacityPlan:
    seconds = workload.avg_minutes * 60
    erlangs = workload.calls_per_hour * workload.avg_minutes / 60
    peak = peak_calls(erlangs)
    nodes = max(1, math.ceil(peak / measured.calls_per_core))
    recording_cores = peak / measured.calls_per_core
    audio_seconds_per_hour = workload.calls_per_hour * seconds
    rendition_cores = audio_seconds_per_hour * measured.encode_us_per_second(workload.format) / 1e6 / 3600
    per_recording = recording_bytes(workload, seconds, measured)
    per_day = workload.calls_per_hour * workload.hours_per_day
    storage_per_day = math.ceil(per_day * per_recording)
    return CapacityPlan(
        workload=workload,
        erlangs=erlangs,
        peak_calls=peak,
        nodes=nodes,
        recording_cores=recording_cores,
        rendition_cores=rendition_cores,
        cores=max(1, math.ceil(recording_cores + rendition_cores)),
        ram_bytes_per_node=measured.rss_base_bytes + measured.rss_per_call_bytes * math.ceil(peak / nodes),
        bytes_per_recording=per_recording,
        recordings_per_day=per_day,
        storage_bytes_per_day=storage_per_day,
        storage_bytes=math.ceil(per_day * workload.retention_days * per_recording),
        rtp_bits_per_second_peak=peak * measured.streams_per_call * measured.rtp_stream_bits_per_second,
        write_bytes_per_second_peak=math.ceil(peak * measured.flac_bytes_per_second),
    )
