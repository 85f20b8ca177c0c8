"""``hangtar plan``: the nodes, cores, RAM, storage and bandwidth a workload needs (:mod:`.capacity_plan`).

    hangtar plan --calls-per-hour 1200 --avg-minutes 4 --retention-days 60 --format opus [--json]

``--format`` and ``--keep-master`` default to the configuration's ``[recording]`` values, the Opus and MP3 bit
rates to ``[transcode]``'s. Nothing is read from the database. Exit codes: 0 ok, 2 usage.
"""

from __future__ import annotations

import argparse
import json

from media.transcode import OutputFormat

from .capacity_plan import MEASURED, PEAK_QUANTILE, CapacityPlan, Workload, plan
from .cli_policies import EXIT_OK, EXIT_USAGE, StorageOptions, fail
from .config import Config

__all__ = ["add_commands", "render", "run"]


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], storage_options: StorageOptions
) -> None:
    parser = commands.add_parser(
        "plan", help="capacity plan: nodes, cores, RAM, storage and RTP bandwidth for a busy hour's calls"
    )
    storage_options(parser)  # --config: the [recording] and [transcode] defaults below
    parser.add_argument(
        "--calls-per-hour", type=float, required=True, metavar="N", help="calls starting in the busy hour"
    )
    parser.add_argument("--avg-minutes", type=float, required=True, metavar="M", help="mean call length")
    parser.add_argument(
        "--retention-days", type=float, required=True, metavar="D", help="days a recording is kept"
    )
    parser.add_argument(
        "--format",
        choices=[f.value for f in OutputFormat],
        help="stored format (default: [recording] format); WAV, Opus and MP3 are renditions of the FLAC master",
    )
    parser.add_argument(
        "--keep-master",
        action=argparse.BooleanOptionalAction,
        help="keep the FLAC master beside a rendition (default: [recording] keep_master)",
    )
    parser.add_argument(
        "--hours-per-day",
        type=float,
        default=24.0,
        metavar="H",
        help="hours a day at the busy-hour rate, for storage (default 24: round the clock)",
    )
    parser.add_argument("--json", action="store_true", help="the plan as one JSON object")


async def run(args: argparse.Namespace, config: Config) -> int | None:
    if args.command != "plan":
        return None
    try:
        workload = Workload(
            calls_per_hour=args.calls_per_hour,
            avg_minutes=args.avg_minutes,
            retention_days=args.retention_days,
            format=OutputFormat(args.format or config.recording_format),
            hours_per_day=args.hours_per_day,
            keep_master=config.keep_master if args.keep_master is None else args.keep_master,
            opus_bitrate=config.opus_bitrate,
            mp3_bitrate=config.mp3_bitrate,
        )
    except ValueError as exc:
        return fail(str(exc), EXIT_USAGE)
    result = plan(workload)
    print(json.dumps(result.to_json(), indent=2) if args.json else render(result))
    return EXIT_OK


def render(result: CapacityPlan) -> str:
    """The plan as an operator reads it."""
    w = result.workload
    stored = w.format.value.upper() if w.format is not OutputFormat.FLAC else "FLAC"
    if w.format is not OutputFormat.FLAC:
        stored += " + FLAC master" if w.keep_master else " (master removed)"
    per_call_kbit = MEASURED.streams_per_call * MEASURED.rtp_stream_bits_per_second / 1000
    lines = [
        f"Workload: {_number(w.calls_per_hour)} calls in the busy hour, {_number(w.avg_minutes)} min each, "
        f"{_number(w.hours_per_day)} h a day, kept {_number(w.retention_days)} days as {stored}",
        f"  concurrent calls  {result.erlangs:.1f} on average (Erlangs), {result.peak_calls} at the peak "
        f"({PEAK_QUANTILE:.1%} of the time at or below)",
        f"  nodes             {result.nodes} (one recording core each, {MEASURED.calls_per_core} calls a core; "
        "add one so that a node can drain or fail)",
        f"  CPU cores         {result.cores}: {result.recording_cores:.2f} recording at the peak + "
        f"{result.rendition_cores:.2f} encoding renditions",
        f"  RAM               {result.ram_bytes_per_node / 2**20:.0f} MiB per node at the peak "
        f"({MEASURED.rss_base_bytes / 2**20:.0f} MiB + {MEASURED.rss_per_call_bytes / 2**10:.0f} KiB a call)",
        f"  storage           {_bytes(result.bytes_per_recording)} a recording, "
        f"{_number(result.recordings_per_day)} recordings and {_bytes(result.storage_bytes_per_day)} a day, "
        f"{_bytes(result.storage_bytes)} held (disk or S3, encrypted)",
        f"  RTP in            {result.rtp_bits_per_second_peak / 1e6:.2f} Mbit/s at the peak "
        f"({MEASURED.streams_per_call} G.711 streams × {per_call_kbit / 2:.0f} kbit/s a call, IPv4/UDP/RTP)",
        f"  disk writes       {_bytes(result.write_bytes_per_second_peak)}/s at the peak",
        "Figures: docs/capacity (measured on two PCMU streams a call, encrypted at rest); docs/metrics.md says "
        "how to check them against a running node.",
    ]
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def _bytes(value: float) -> str:
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"
