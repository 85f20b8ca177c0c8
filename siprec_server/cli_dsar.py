"""``hangtar dsar|verify|audit|ropa``: subject access requests, integrity checks, the audit trail and the
records of processing, through the storage services the HTTP API will use too.

Exit codes: 0 ok, 1 failure (a damaged file, a broken audit chain, a database error), 2 usage, 3 not found,
4 refused by a rule. Times given on the command line are ISO 8601; without an offset they are Budapest
local time, and a bare date in ``--until`` includes that whole day.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from storage.access_requests import AccessRequest, AccessRequests
from storage.access_rules import DEADLINE_ZONE
from storage.audio_opener import AudioOpener, FileOpener
from storage.audit import Actor, AuditEntry, AuditLog, StoredEntry
from storage.audit_verify import AuditQuery, verify_chain
from storage.errors import IntegrityError, LifecycleError, NotFoundError, StorageError
from storage.integrity import Integrity, IntegrityResult
from storage.models import format_timestamp
from storage.processing_records import ProcessingRecords
from storage.processing_records_markdown import to_markdown
from storage.scope import ALL_TENANTS, TenantScope
from storage.subject_data import SubjectRecording
from storage.tenant_lookup import find_tenant

from .bootstrap import StorageHandles, open_storage
from .cli_policies import (
    EXIT_FAILURE,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    StorageOptions,
    actor_of,
    emit,
    fail,
)
from .config import Config
from .sealing import RecordingCrypto, make_audio_opener, make_file_opener

__all__ = ["add_commands", "run"]

COMMANDS = ("dsar", "verify", "audit", "ropa")
DEFAULT_PROCESSOR = "the operator of this Hangtár installation (name and contact details: to be completed)"


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], storage_options: StorageOptions
) -> None:
    _dsar_commands(commands, storage_options)

    verify = commands.add_parser("verify", help="re-check recordings' files against their SHA-256 hashes")
    _leaf(verify, storage_options)
    which = verify.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", metavar="ID", help="recording id or reference")
    which.add_argument("--all", action="store_true", help="every recording (of --tenant, if given)")
    verify.add_argument("--tenant", metavar="SLUG", help="with --all: only this tenant's recordings")
    verify.add_argument("--json", action="store_true", help="JSON (with --all: one line per recording)")

    audit = commands.add_parser("audit", help="the audit trail")
    actions = audit.add_subparsers(dest="action", required=True)
    check = actions.add_parser("verify", help="check the hash chain of the audit trail")
    _leaf(check, storage_options)
    check.add_argument("--from", dest="from_seq", type=int, default=1, metavar="SEQ")
    check.add_argument("--json", action="store_true")
    listing = actions.add_parser("list", help="audit entries, newest first")
    _leaf(listing, storage_options)
    listing.add_argument("--tenant", metavar="SLUG")
    listing.add_argument("--object-kind", metavar="KIND", help="recording, access_request, tenant, ...")
    listing.add_argument("--object-id", metavar="ID")
    listing.add_argument("--actor", metavar="NAME")
    listing.add_argument("--action", dest="audit_action", metavar="ACTION", help="e.g. recording.export")
    listing.add_argument("--since", type=_since, metavar="TIME")
    listing.add_argument("--until", type=_until, metavar="TIME")
    listing.add_argument("--before", dest="before_seq", type=int, metavar="SEQ", help="page back")
    listing.add_argument("--limit", type=int, default=50, metavar="N")
    listing.add_argument("--json", action="store_true")

    ropa = commands.add_parser("ropa", help="a tenant's record of processing activities (GDPR Art. 30)")
    _leaf(ropa, storage_options)
    ropa.add_argument("--tenant", required=True, metavar="SLUG")
    ropa.add_argument(
        "--processor", default=DEFAULT_PROCESSOR, metavar="TEXT", help="the operator: name, contact"
    )
    ropa.add_argument("--json", action="store_true", help="JSON instead of Markdown")
    ropa.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE instead of stdout")


def _dsar_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], storage_options: StorageOptions
) -> None:
    dsar = commands.add_parser("dsar", help="access requests of data subjects (GDPR Art. 15)")
    actions = dsar.add_subparsers(dest="action", required=True)

    search = actions.add_parser("search", help="find a person's recordings")
    _leaf(search, storage_options, tenant=True)
    criteria = search.add_mutually_exclusive_group(required=True)
    criteria.add_argument("number", nargs="?", metavar="NUMBER", help="phone number in any written form")
    criteria.add_argument("--reference", metavar="REF", help="recording reference, e.g. HT-7K3M-Q9RX")
    _window(search)
    search.add_argument("--json", action="store_true")

    opened = actions.add_parser("open", help="register a request; due one calendar month after receipt")
    _leaf(opened, storage_options, tenant=True)
    opened.add_argument("number", nargs="?", metavar="NUMBER", help="phone number in any written form")
    opened.add_argument("--reference", metavar="REF")
    _window(opened)
    opened.add_argument("--requester", required=True, metavar="TEXT", help="who asked; where the copy goes")
    opened.add_argument("--received", type=_since, metavar="TIME", help="when it arrived (default: now)")
    opened.add_argument("--note", metavar="TEXT")
    opened.add_argument("--json", action="store_true")

    listing = actions.add_parser("list", help="unanswered requests by due date")
    _leaf(listing, storage_options, tenant=True)
    listing.add_argument("--all", action="store_true", help="answered and closed ones too")
    listing.add_argument("--json", action="store_true")

    show = actions.add_parser("show", help="one request")
    _leaf(show, storage_options, tenant=True)
    show.add_argument("request_id", type=UUID, metavar="ID")
    show.add_argument("--json", action="store_true")

    export = actions.add_parser("export", help="write the copy (zip) of every matching recording")
    _leaf(export, storage_options, tenant=True)
    export.add_argument("request_id", type=UUID, metavar="ID")
    export.add_argument("--json", action="store_true")

    delivered = actions.add_parser("delivered", help="the copy was handed over")
    _leaf(delivered, storage_options, tenant=True)
    delivered.add_argument("request_id", type=UUID, metavar="ID")
    delivered.add_argument("--at", type=_since, metavar="TIME", help="when (default: now)")
    delivered.add_argument("--note", metavar="TEXT", help="how it was delivered")

    extend = actions.add_parser(
        "extend", help="extend the deadline by 1 or 2 months, once, within the first month (Art. 12(3))"
    )
    _leaf(extend, storage_options, tenant=True)
    extend.add_argument("request_id", type=UUID, metavar="ID")
    extend.add_argument("--months", type=int, choices=(1, 2), required=True)
    extend.add_argument("--reason", required=True, metavar="TEXT", help="what the person is told")

    close = actions.add_parser("close", help="close the request and remove its bundle file")
    _leaf(close, storage_options, tenant=True)
    close.add_argument("request_id", type=UUID, metavar="ID")
    close.add_argument("--note", metavar="TEXT")


def _leaf(parser: argparse.ArgumentParser, storage_options: StorageOptions, *, tenant: bool = False) -> None:
    storage_options(parser)
    parser.add_argument("--as", dest="as_user", metavar="USER", help="act as this user (default: cli:<you>)")
    if tenant:
        scope = parser.add_mutually_exclusive_group(required=True)
        scope.add_argument("--tenant", metavar="SLUG", help="the tenant (controller), by slug or id")
        scope.add_argument("--system", action="store_true", help="calls no tenant claimed")


def _window(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="since", type=_since, metavar="TIME", help="calls started at or after")
    parser.add_argument(
        "--until", type=_until, metavar="TIME", help="calls started before (a date: that day too)"
    )


def _parse_time(text: str, *, end_of_day: bool) -> datetime:
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip())
            local = datetime.combine(
                day + timedelta(days=1 if end_of_day else 0), time(), tzinfo=DEADLINE_ZONE
            )
            return local.astimezone(UTC)
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time") from exc
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=DEADLINE_ZONE)
    return moment.astimezone(UTC)


def _since(text: str) -> datetime:
    return _parse_time(text, end_of_day=False)


def _until(text: str) -> datetime:
    return _parse_time(text, end_of_day=True)


def openers(config: Config, storage: StorageHandles) -> tuple[AudioOpener, FileOpener]:
    """How the commands read stored audio: decrypted with each recording's data key (plain files as they lie).
    Made on the event loop; the services call them from worker threads."""
    crypto = RecordingCrypto.from_config(config, storage.pool)
    return make_audio_opener(crypto, storage.blobs), make_file_opener(crypto, storage.blobs)


async def run(args: argparse.Namespace, config: Config) -> int | None:
    if args.command not in COMMANDS:
        return None
    actor = actor_of(args)
    try:
        async with open_storage(config) as storage:
            if args.command == "dsar":
                return await _dsar(args, config, storage, actor)
            if args.command == "verify":
                return await _verify(args, config, storage, actor)
            if args.command == "audit":
                return await _audit(args, storage, actor)
            return await _ropa(args, config, storage, actor)
    except NotFoundError as exc:
        return fail(str(exc), EXIT_NOT_FOUND)
    except LifecycleError as exc:
        return fail(str(exc), EXIT_REFUSED)
    except IntegrityError as exc:
        return fail(str(exc), EXIT_FAILURE)
    except ValueError as exc:
        return fail(str(exc), EXIT_USAGE)
    except StorageError as exc:
        return fail(str(exc), EXIT_FAILURE)


# -- dsar ------------------------------------------------------------------------------------------------------
async def _dsar(args: argparse.Namespace, config: Config, storage: StorageHandles, actor: Actor) -> int:
    tenant_id = None if args.system else (await find_tenant(storage.pool, args.tenant)).id
    open_audio, open_file = openers(config, storage)
    service = AccessRequests(
        storage.pool,
        audit=AuditLog(),
        open_audio=open_audio,
        open_file=open_file,
        bundle_dir=config.data_dir / "access_requests",
    )
    now = datetime.now(UTC)
    if args.action == "search":
        found = await service.search(
            tenant_id,
            number=args.number,
            reference=args.reference,
            since=args.since,
            until=args.until,
            actor=actor,
        )
        if args.json:
            emit([subject.to_json() for subject in found])
        else:
            _print_found(found)
        return EXIT_OK
    if args.action == "open":
        case = await service.open(
            tenant_id,
            requester=args.requester,
            number=args.number,
            reference=args.reference,
            since=args.since,
            until=args.until,
            received_at=args.received,
            notes=args.note,
            actor=actor,
        )
        if args.json:
            emit(case.to_json(now=now))
        else:
            print(f"opened access request {case.id}, due {_local_day(case.due_at)}")
        return EXIT_OK
    if args.action == "list":
        cases = await service.list(tenant_id, include_finished=args.all)
        if args.json:
            emit([case.to_json(now=now) for case in cases])
        else:
            _print_cases(cases, now)
        return EXIT_OK
    if args.action == "show":
        case = await service.show(tenant_id, args.request_id)
        if args.json:
            emit(case.to_json(now=now))
        else:
            _print_case(case, now)
        return EXIT_OK
    if args.action == "export":
        result = await service.export(tenant_id, args.request_id, actor=actor)
        if args.json:
            emit(
                {
                    "request": result.request.to_json(now=now),
                    "bundle": {
                        "path": str(result.bundle.path),
                        "size": result.bundle.size,
                        "sha256": result.bundle.sha256,
                        "files": [entry.to_json() for entry in result.bundle.files],
                    },
                }
            )
        else:
            print(
                f"exported {len(result.bundle.recording_ids)} recording(s) to {result.bundle.path} "
                f"({result.bundle.size} bytes, sha256 {result.bundle.sha256})"
            )
        return EXIT_OK
    if args.action == "extend":
        case = await service.extend(
            tenant_id, args.request_id, months=args.months, reason=args.reason, actor=actor
        )
        print(
            f"access request {case.id}: due {_local_day(case.due_at)} (Budapest), {format_timestamp(case.due_at)}"
        )
        return EXIT_OK
    if args.action == "delivered":
        case = await service.mark_delivered(
            tenant_id, args.request_id, actor=actor, delivered_at=args.at, note=args.note
        )
    else:
        case = await service.close(tenant_id, args.request_id, actor=actor, note=args.note)
    print(f"access request {case.id}: {case.status.value}")
    return EXIT_OK


def _local_day(moment: datetime) -> str:
    return moment.astimezone(DEADLINE_ZONE).strftime("%Y-%m-%d")


def _print_found(found: Sequence[SubjectRecording]) -> None:
    print(
        f"{'REFERENCE':<14} {'STARTED (UTC)':<20} {'SECONDS':>8} {'BASIS':<20} {'EXPIRES (UTC)':<17} NUMBERS"
    )
    for subject in found:
        r = subject.recording
        seconds = f"{r.duration_seconds:.1f}" if r.duration_seconds is not None else "-"
        expires = r.expires_at.strftime("%Y-%m-%d %H:%M") if r.expires_at else "-"
        print(
            f"{r.reference:<14} {r.started_at.strftime('%Y-%m-%d %H:%M:%S'):<20} {seconds:>8} "
            f"{r.basis or '-':<20} {expires:<17} {' '.join(r.numbers)}"
        )
    print(f"{len(found)} recording(s)")


def _print_cases(cases: Sequence[AccessRequest], now: datetime) -> None:
    print(f"{'ID':<36} {'STATUS':<9} {'RECEIVED':<10} {'DUE':<10} {'':<7} CRITERIA")
    for case in cases:
        criteria = " ".join(filter(None, [case.number, case.reference]))
        flag = "OVERDUE" if case.overdue(now) else ""
        print(
            f"{case.id!s:<36} {case.status.value:<9} {_local_day(case.received_at):<10} "
            f"{_local_day(case.due_at):<10} {flag:<7} {criteria}"
        )


def _print_case(case: AccessRequest, now: datetime) -> None:
    rows: list[tuple[str, Any]] = [
        ("id", case.id),
        ("status", case.status.value + (" (OVERDUE)" if case.overdue(now) else "")),
        ("number", case.number),
        ("reference", case.reference),
        ("from", format_timestamp(case.since)),
        ("until", format_timestamp(case.until)),
        ("requester", case.requester),
        ("received_at", format_timestamp(case.received_at)),
        ("due", f"{_local_day(case.due_at)} (Budapest), {format_timestamp(case.due_at)}"),
        ("recordings", len(case.recording_ids)),
        ("bundle", case.bundle_path),
        ("bundle_sha256", case.bundle_sha256),
        ("exported_at", format_timestamp(case.exported_at)),
        ("delivered_at", format_timestamp(case.delivered_at)),
        ("extended_at", format_timestamp(case.extended_at)),
        ("extension", case.extension_reason),
        ("closed_at", format_timestamp(case.closed_at)),
        ("opened_by", case.created_by),
        ("notes", case.notes),
    ]
    for key, value in rows:
        print(f"{key:<14} {'-' if value is None else value}")


# -- verify ----------------------------------------------------------------------------------------------------
async def _verify(args: argparse.Namespace, config: Config, storage: StorageHandles, actor: Actor) -> int:
    open_audio, open_file = openers(config, storage)
    integrity = Integrity(storage.pool, open_audio=open_audio, open_file=open_file, audit=AuditLog())
    if not args.all:
        if args.tenant:
            raise ValueError("--tenant goes with --all")
        recording = await storage.catalogue.get(args.id)
        if recording is None:
            raise NotFoundError(f"no recording {args.id!r}")
        result = await integrity.verify(recording, actor=actor)
        if args.json:
            emit(result.to_json())
        else:
            _print_result(result, verbose=True)
        return EXIT_OK if result.ok else EXIT_FAILURE
    checked = failed = 0
    async for result in integrity.verify_all(await _scope(storage, args.tenant), actor=actor):
        checked += 1
        failed += 0 if result.ok else 1
        if args.json:
            print(json.dumps(result.to_json(), ensure_ascii=False), flush=True)
        elif not result.ok:
            _print_result(result, verbose=False)
    if args.json:
        print(json.dumps({"summary": {"recordings": checked, "failed": failed}}))
    else:
        print(f"checked {checked} recording(s): {failed} failed")
    return EXIT_OK if failed == 0 else EXIT_FAILURE


def _print_result(result: IntegrityResult, *, verbose: bool) -> None:
    if result.skipped:
        print(f"{result.reference}: nothing to check ({result.skipped})")
        return
    for check in result.checks:
        if not verbose and not check.failed:
            continue
        line = f"{result.reference} {check.kind}: {check.status.value.upper()}"
        if check.failed and check.actual_sha256:
            line += f" (catalogue {check.expected_sha256}, file {check.actual_sha256})"
        elif check.error:
            line += f" ({check.error})"
        print(line)


# -- audit -----------------------------------------------------------------------------------------------------
async def _audit(args: argparse.Namespace, storage: StorageHandles, actor: Actor) -> int:
    if args.action == "verify":
        report = await verify_chain(storage.pool, from_seq=args.from_seq)
        await AuditLog().record(
            storage.pool,
            AuditEntry(
                actor=actor,
                action="audit.verify",
                details={"ok": report.ok, "entries": report.entries, "broken_seq": report.broken_seq},
            ),
        )
        if args.json:
            emit(report.to_json())
        elif report.ok:
            span = f"{report.from_seq}-{report.last_seq}" if report.last_seq else "none"
            print(f"audit trail intact: {report.entries} entries ({span}), head hash {report.head_hash}")
        else:
            print(f"audit trail BROKEN at entry {report.broken_seq}: {report.detail}")
        return EXIT_OK if report.ok else EXIT_FAILURE
    entries = await AuditQuery(storage.pool).list(
        tenant_id=await _scope(storage, args.tenant),
        object_kind=args.object_kind,
        object_id=args.object_id,
        actor=args.actor,
        action=args.audit_action,
        since=args.since,
        until=args.until,
        before_seq=args.before_seq,
        limit=args.limit,
    )
    if args.json:
        emit([_entry_json(entry) for entry in entries])
    else:
        for entry in entries:
            target = f"{entry.object_kind}:{entry.object_id}" if entry.object_kind else "-"
            print(
                f"{entry.seq:>7} {format_timestamp(entry.at)} {entry.actor} ({entry.origin or '-'}) "
                f"{entry.action} {target} {json.dumps(entry.details, ensure_ascii=False, sort_keys=True)}"
            )
    return EXIT_OK


def _entry_json(entry: StoredEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": format_timestamp(entry.at),
        "tenant_id": None if entry.tenant_id is None else str(entry.tenant_id),
        "actor": entry.actor,
        "origin": entry.origin,
        "action": entry.action,
        "object_kind": entry.object_kind,
        "object_id": entry.object_id,
        "details": dict(entry.details),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


# -- ropa ------------------------------------------------------------------------------------------------------
async def _ropa(args: argparse.Namespace, config: Config, storage: StorageHandles, actor: Actor) -> int:
    tenant = await find_tenant(storage.pool, args.tenant)
    records = ProcessingRecords(storage.pool, audit=AuditLog(), dtmf_digits=config.store_dtmf_digits)
    record = await records.build(tenant.id, processor=args.processor, actor=actor)
    text = (
        json.dumps(record.to_json(), indent=2, ensure_ascii=False) + "\n"
        if args.json
        else to_markdown(record)
    )
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        print(f"{args.output} ({len(record.purposes)} purpose(s), {len(record.policies)} policy line(s))")
    else:
        sys.stdout.write(text)
    return EXIT_OK


async def _scope(storage: StorageHandles, tenant: str | None) -> TenantScope:
    """``--tenant``'s; without it, every tenant's (the operator's view)."""
    return ALL_TENANTS if not tenant else (await find_tenant(storage.pool, tenant)).id
