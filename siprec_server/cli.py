"""The ``hangtar`` command line: ``serve`` and catalogue commands that reach the same database as the server."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from media import write_mono_mix
from media.transcode import EncodeSettings, OutputFormat, TranscodeError, transcode
from storage import FileBlobStore, Recording, send_command
from storage.errors import IntegrityError, KeyUnavailableError, NotFoundError
from storage.renditions import Rendition, Renditions, RenditionStatus

from . import cli_delivery, cli_dsar, cli_keys, cli_nodes, cli_plan, cli_retention, cli_tenants, cli_users
from .bootstrap import open_storage
from .config import Config, ConfigError, load_config
from .sealing import RecordingCrypto, open_stored
from .transcoder import encode_settings

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3

# The GDPR lifecycle commands, each area in its own module: add_commands(...) and run(args, config).
_AREAS = (cli_tenants, cli_retention, cli_dsar, cli_users, cli_keys, cli_delivery, cli_nodes, cli_plan)


def _storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    parser.add_argument(
        "--data-dir", type=Path, metavar="DIR", help="recordings and embedded database (default ./data)"
    )
    parser.add_argument(
        "--database-dsn", metavar="DSN", help="PostgreSQL DSN; empty = embedded server under the data dir"
    )
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hangtar", description="Hangtár SIPREC session recording server")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the recording server")
    _storage_options(serve)
    serve.add_argument("--sip-host", metavar="ADDR", help="address for SIP and RTP (default 0.0.0.0)")
    serve.add_argument("--sip-port", type=int, metavar="N", help="SIP port, UDP and TCP (default 5060)")
    serve.add_argument("--http-host", metavar="ADDR", help="address for HTTP (default 127.0.0.1)")
    serve.add_argument("--http-port", type=int, metavar="N", help="HTTP port (default 8080)")
    serve.add_argument("--rtp-ports", metavar="A-B", help="RTP port range (default 20000-39999)")
    serve.add_argument("--tls-port", type=int, metavar="N", help="SIP over TLS port (default 5061; 0: off)")
    serve.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="PEM certificate (chain) for TLS (default: self-signed under the data dir)",
    )
    serve.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    serve.add_argument(
        "--node-name", metavar="NAME", help="this node's name in the catalogue (default: host name)"
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="on an install without tenants, create a demo tenant and admin and print the login (make run)",
    )

    recordings = commands.add_parser("recordings", help="inspect the recordings catalogue")
    actions = recordings.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="newest recordings first")
    _storage_options(listing)
    listing.add_argument("--json", action="store_true", help="one JSON array (stable shape, see README)")
    listing.add_argument("--limit", type=int, default=50, metavar="N")
    show = actions.add_parser("show", help="one recording in full")
    _storage_options(show)
    show.add_argument("id", metavar="ID", help="recording id or reference (e.g. HT-7K3M-Q9RX)")
    show.add_argument("--json", action="store_true")
    export = actions.add_parser("export", help="write a recording's audio, as a user downloads it")
    _storage_options(export)
    export.add_argument("id", metavar="ID")
    export.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    export.add_argument(
        "--mono",
        action="store_true",
        help="a mono mix of all channels instead of the stored multichannel file",
    )
    export.add_argument(  # output formats: the stored rendition, else encoded now from the master
        "--format",
        choices=[f.value for f in OutputFormat],
        help="flac, wav, opus or mp3 (default: the stored format); a rendition made after the call is "
        "served as stored, any other format is encoded from the master now",
    )
    snapshot = actions.add_parser(
        "snapshot", help="ask the recording client for a full metadata snapshot of a call in progress"
    )
    _storage_options(snapshot)
    snapshot.add_argument("id", metavar="ID")
    for area in _AREAS:
        area.add_commands(commands, _storage_options)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides: dict[str, Any] = {
        "data_dir": args.data_dir,
        "database_dsn": args.database_dsn,
        "log_level": args.log_level,
    }
    if args.command == "serve":
        overrides.update(
            sip_host=args.sip_host,
            sip_port=args.sip_port,
            http_host=args.http_host,
            http_port=args.http_port,
            rtp_ports=args.rtp_ports,
            tls_port=args.tls_port,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            node_name=args.node_name,
        )
    try:
        config = load_config(config_file=args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"hangtar: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    default_level = config.log_level if args.command == "serve" else "WARNING"
    logging.basicConfig(
        level=args.log_level or default_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "serve":
        from .server import run_server

        try:
            return asyncio.run(run_server(config, demo=args.demo))
        except OSError as exc:
            print(f"hangtar: cannot start: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    if args.command == "recordings":
        return asyncio.run(_recordings(args, config))
    for area in _AREAS:
        status: int | None = asyncio.run(area.run(args, config))
        if status is not None:
            return status
    print(f"hangtar: unknown command {args.command!r}", file=sys.stderr)
    return EXIT_USAGE


async def _recordings(args: argparse.Namespace, config: Config) -> int:
    async with open_storage(config) as storage:
        if args.action == "list":
            if args.limit < 1:
                print("hangtar: --limit must be at least 1", file=sys.stderr)
                return EXIT_USAGE
            rows = await storage.catalogue.list(limit=args.limit)
            if args.json:
                print(json.dumps([r.to_json() for r in rows], indent=2, ensure_ascii=False))
            else:
                _print_table(rows)
            return EXIT_OK
        recording = await storage.catalogue.get(args.id)
        if recording is None:
            print(f"hangtar: no recording {args.id!r}", file=sys.stderr)
            return EXIT_NOT_FOUND
        if args.action == "snapshot":
            return await _snapshot(storage.dsn, recording)
        if args.action == "show":
            renditions = await Renditions(storage.pool).for_recording(recording.id)  # output formats
            if args.json:
                data = recording.to_json(detailed=True)
                data["renditions"] = [rendition.to_json() for rendition in renditions]
                print(json.dumps(data, indent=2, ensure_ascii=False))
            else:
                _print_detail(recording)
                _print_renditions(renditions)
            return EXIT_OK
        # Encryption at rest: the recording's files are read through its data key (None: a plain file).
        try:
            data_key = await RecordingCrypto.from_config(config, storage.pool).data_key(recording)
        except (KeyUnavailableError, NotFoundError) as exc:
            print(f"hangtar: recording {recording.reference} cannot be decrypted: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        source = _Source(blobs=storage.blobs, data_key=data_key)
        # output formats: another format than the stored one, or a mono mix in a format other than FLAC
        if args.format and (args.format != recording.format or (args.mono and args.format != "flac")):
            stored = await Renditions(storage.pool).get(recording.id, args.format)
            return await asyncio.to_thread(
                _export_as,
                recording,
                stored,
                args.output,
                OutputFormat(args.format),
                args.mono,
                encode_settings(config),
                source,
            )
        return await asyncio.to_thread(_export, recording, args.output, source, mono=args.mono)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Source:
    """Where an export reads a recording's stored files: under the recordings directory, decrypted with the
    recording's data key when it has one."""

    blobs: FileBlobStore
    data_key: bytes | None


async def _snapshot(dsn: str, recording: Recording) -> int:
    if recording.finished:
        print(
            f"hangtar: recording {recording.reference} is not in progress ({recording.status.value})",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    reply = await send_command(dsn, "snapshot", recording_id=str(recording.id))
    if reply is None:
        print(f"hangtar: no running server holds recording {recording.reference}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"{recording.reference}: {reply.detail}")
    return EXIT_OK if reply.ok else EXIT_FAILURE


def _export(recording: Recording, output: Path, source: _Source, *, mono: bool = False) -> int:
    if not recording.file_path or not source.blobs.exists(recording.file_path):
        print(
            f"hangtar: recording {recording.reference} has no audio ({recording.status.value})",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    tmp = output.with_name(output.name + ".part")
    # The catalogue's SHA-256 is of the audio itself: checked over the decrypted bytes.
    digest = _verified_copy(
        source, recording.file_path, recording.sha256, tmp, f"recording {recording.reference}"
    )
    if digest is None:
        return EXIT_FAILURE
    if mono:
        # The mix is made from the verified copy, so what is mixed is what the catalogue vouches for.
        mixed = output.with_name(output.name + ".mono.part")
        try:
            write_mono_mix(tmp, mixed)
        finally:
            tmp.unlink()
        shutil.move(mixed, output)
        print(f"{output} (mono mix of {recording.channels} channel(s), {output.stat().st_size} bytes)")
        return EXIT_OK
    shutil.move(tmp, output)
    print(f"{output} ({recording.format}, {output.stat().st_size} bytes, sha256 {digest})")
    return EXIT_OK


# -- output formats: export as WAV, Opus or MP3 ------------------------------------------------------------------
def _export_as(
    recording: Recording,
    stored: Rendition | None,
    output: Path,
    fmt: OutputFormat,
    mono: bool,
    settings: EncodeSettings,
    source: _Source,
) -> int:
    """The stored rendition when there is a finished one (and no mono mix is asked for); otherwise ``fmt``
    encoded now from the recording's own file, after checking it against the catalogue."""
    if stored is not None and stored.status is RenditionStatus.DONE and stored.file_path and not mono:
        if not _verified_copy(source, stored.file_path, stored.sha256, output, f"its {fmt.value} rendition"):
            return EXIT_FAILURE
        print(f"{output} ({fmt.value} rendition, {output.stat().st_size} bytes, sha256 {stored.sha256})")
        return EXIT_OK
    if fmt is OutputFormat.FLAC:
        print(
            f"hangtar: recording {recording.reference} keeps no FLAC master (its file is {recording.format}); "
            f"export it as {recording.format}",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    if not recording.file_path or not source.blobs.exists(recording.file_path):
        print(
            f"hangtar: recording {recording.reference} has no audio ({recording.status.value})",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    plain = output.with_name(output.name + ".source.part")
    mixed = output.with_name(output.name + ".mono.part")
    try:
        if not _verified_copy(source, recording.file_path, recording.sha256, plain, "its audio file"):
            return EXIT_FAILURE
        if mono:
            write_mono_mix(plain, mixed)
        result = transcode(mixed if mono else plain, output, fmt, settings)
    except TranscodeError as exc:
        print(
            f"hangtar: recording {recording.reference} cannot be exported as {fmt.value}: {exc}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    finally:
        plain.unlink(missing_ok=True)
        mixed.unlink(missing_ok=True)
    how = f"mono mix, {fmt.value}" if mono else fmt.value
    print(f"{output} ({how} encoded from the {recording.format} file, {result.size_bytes} bytes)")
    return EXIT_OK


def _verified_copy(source: _Source, path: str, sha256: str | None, target: Path, what: str) -> str | None:
    """Copy the plaintext of ``path`` (decrypted when the recording is encrypted) to ``target`` if its SHA-256
    is the catalogue's, and return that; complain and leave nothing if not."""
    if not source.blobs.exists(path):
        print(f"hangtar: {what} {path} is missing", file=sys.stderr)
        return None
    partial = target.with_name(target.name + ".copy.part")
    digest = hashlib.sha256()
    try:
        with open_stored(source.blobs, path, source.data_key) as reader, partial.open("wb") as writer:
            while chunk := reader.read(1 << 20):
                digest.update(chunk)
                writer.write(chunk)
    except (IntegrityError, ValueError) as exc:  # a damaged container; a path outside the recordings
        partial.unlink(missing_ok=True)
        print(f"hangtar: {what} fails its integrity check ({exc}); not exported", file=sys.stderr)
        return None
    if sha256 and digest.hexdigest() != sha256:
        partial.unlink()
        print(
            f"hangtar: {what} fails its integrity check (SHA-256 differs from the catalogue); not exported",
            file=sys.stderr,
        )
        return None
    partial.replace(target)
    return digest.hexdigest()


def _print_renditions(renditions: Sequence[Rendition]) -> None:
    for rendition in renditions:
        detail = f"{rendition.size_bytes} bytes {rendition.file_path}" if rendition.file_path else ""
        if rendition.error:
            detail = f"{detail} error: {rendition.error}".strip()
        print(
            f"{'rendition':<17} {rendition.format:<5} {rendition.status.value:<8} "
            f"attempts={rendition.attempts} {detail}".rstrip()
        )


def _party(recording: Recording, role: str) -> str:
    for participant in recording.participants:
        if participant.role == role:
            return participant.aor or participant.name or "?"
    return "-"


def _print_table(rows: Sequence[Recording]) -> None:
    header = f"{'REFERENCE':<14} {'STARTED (UTC)':<20} {'SECONDS':>8} {'STATUS':<11} {'CALLER':<28} CALLEE"
    print(header)
    for r in rows:
        started = r.started_at.strftime("%Y-%m-%d %H:%M:%S")
        seconds = f"{r.duration_seconds:.1f}" if r.duration_seconds is not None else "-"
        print(
            f"{r.reference:<14} {started:<20} {seconds:>8} {r.status.value:<11} "
            f"{_party(r, 'caller'):<28} {_party(r, 'callee')}"
        )


def _print_detail(recording: Recording) -> None:
    data = recording.to_json(detailed=False)
    for key in ("reference", "id", "status", "call_id", "started_at", "media_started_at", "ended_at"):
        print(f"{key:<17} {data.get(key)}")
    print(f"{'duration':<17} {data.get('duration_seconds')} s")
    print(
        f"{'audio':<17} {data.get('format')}, {data.get('channels')} ch, {data.get('sample_rate')} Hz, "
        f"{data.get('size_bytes')} bytes"
    )
    print(f"{'sha256':<17} {data.get('sha256')}")
    for participant in recording.participants:
        print(
            f"{'participant':<17} {participant.role:<7} {participant.aor or '-'} {participant.name or ''}".rstrip()
        )
    for stream in recording.streams:
        print(
            f"{'stream':<17} label={stream.label} codec={stream.codec} channel={stream.channel} "
            f"packets={stream.packets} lost={stream.lost} late={stream.late} dup={stream.duplicated}"
        )


if __name__ == "__main__":
    sys.exit(main())
