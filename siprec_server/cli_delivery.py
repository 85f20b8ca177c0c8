"""``hangtar delivery``: targets (add, list, show, enable, disable, remove), a delivery pass now, the log, the dead
letters and their replay.

Targets belong to a tenant; a command names one by ``--tenant T NAME`` or by its id. An ``sftp://`` URL makes
an SFTP target, an ``https://`` one a CRM webhook (``--mode link|inline``). Secrets never go on the command line
(where ``ps`` shows them): ``--key-file`` reads a private key, ``--password-file FILE`` or ``--secret-file FILE``
(``-``: standard input) a password or a webhook's signing secret, and without either it is asked for on the
terminal. Exit codes as for every lifecycle command: 0 ok, 1 failure, 2 usage, 3 not found, 4 refused by a rule
(plain FTP, plain HTTP to another host, an SFTP server without a pinned host key, removing a target that
delivered copies, replaying what is not dead). ``--json`` prints what a script wants; ``--as USER`` names the
person acting.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from storage import FileBlobStore
from storage.audit import AuditLog
from storage.delivery_copies import DeliveredCopies
from storage.delivery_filter import DeliveryFilter
from storage.delivery_items import DeliveryItem, DeliveryStatus
from storage.delivery_outbox import Outbox
from storage.delivery_schedule import Schedule
from storage.delivery_settings import (
    DEFAULT_NAME_TEMPLATE,
    TargetKind,
    TargetSettingsError,
    check_settings,
    settings_from_url,
)
from storage.delivery_targets import DeliveryTarget, TargetStore
from storage.erasure import ErasureService
from storage.errors import LifecycleError, NotFoundError, StorageError
from storage.keyfile import KeyFileProvider
from storage.lifecycle_rows import find_recording
from storage.models import format_timestamp
from storage.scope import ALL_TENANTS
from storage.tenant_lookup import find_tenant

from .bootstrap import open_storage
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
from .cli_retention import parse_time
from .config import Config
from .delivery import DeliveryWorker, FtpsTransport, PayloadSource, SftpTransport
from .delivery.link_signing import LinkSigner
from .delivery.webhook import WebhookTransport
from .sealing import RecordingCrypto
from .transcoder import encode_settings

__all__ = ["add_commands", "run"]


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], storage_options: StorageOptions
) -> None:
    def leaf(parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str) -> Any:
        parser = parent.add_parser(name, help=text, description=text)
        storage_options(parser)
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        return parser

    delivery = commands.add_parser("delivery", help="copies of recordings to a tenant's SFTP server or CRM")
    actions = delivery.add_subparsers(dest="action", required=True)
    targets = actions.add_parser("targets", help="where a tenant's recordings are delivered")
    target_actions = targets.add_subparsers(dest="sub", required=True)

    add = leaf(
        target_actions, "add", "add a delivery target (sftp, ftps or a CRM webhook; plain ftp is refused)"
    )
    add.add_argument("--tenant", metavar="T", required=True, help="the tenant (slug or id)")
    add.add_argument("--name", required=True, help="a-z, 0-9, - and _, unique within the tenant")
    add.add_argument(
        "--url",
        required=True,
        metavar="URL",
        help="sftp://user@host[:port]/dir, ftps://user@host[:port]/dir (explicit TLS), or https://... (a webhook)",
    )
    add.add_argument(
        "--mode",
        choices=["link", "inline"],
        help="a webhook: a signed download link (default) or the audio inline as multipart",
    )
    add.add_argument("--host-key", metavar="LINE", help="the server's public key line (from ssh-keyscan)")
    add.add_argument("--host-key-file", type=Path, metavar="FILE", help="... or a file holding it")
    add.add_argument(
        "--ca-file",
        type=Path,
        metavar="FILE",
        help="ftps: PEM certificates to trust for the server instead of the system's (its CA, or its own)",
    )
    secret = add.add_mutually_exclusive_group()
    secret.add_argument("--key-file", type=Path, metavar="FILE", help="log in with this private key")
    secret.add_argument(
        "--password-file", metavar="FILE", help="log in with the password in FILE ('-': stdin)"
    )
    secret.add_argument(
        "--secret-file", metavar="FILE", help="a webhook: sign with the secret in FILE ('-': stdin)"
    )
    add.add_argument("--schedule", default="every 15m", help="'every 15m' or 'daily 01:00-05:00 [Zone]'")
    add.add_argument(
        "--template",
        default=DEFAULT_NAME_TEMPLATE,
        help="file name; {date} {time} {reference} {caller} {callee} {direction} (UTC)",
    )
    add.add_argument("--format", choices=["flac", "wav", "opus", "mp3"], help="default: as recorded")
    add.add_argument("--no-sidecar", action="store_true", help="no metadata JSON beside each recording")
    add.add_argument("--number", action="append", default=[], metavar="N", help="only calls of this number")
    add.add_argument("--direction", choices=["inbound", "outbound"], help="only calls in this direction")
    add.add_argument(
        "--class",
        dest="classes",
        action="append",
        default=[],
        metavar="CODE",
        help="only recordings in this retention class",
    )
    add.add_argument(
        "--delete-after-delivery",
        action="store_true",
        help="erase our copy once delivered (never under a hold or a statutory class)",
    )
    add.add_argument("--max-attempts", type=int, default=12, metavar="N")
    add.add_argument(
        "--since", type=parse_time, metavar="TIME", help="also send recordings finished since TIME"
    )
    add.add_argument("--as", dest="as_user", metavar="USER", help="who acts (default cli:<os user>)")

    listing = leaf(target_actions, "list", "targets, of one tenant or of all")
    listing.add_argument("--tenant", metavar="T")
    for name, text in (
        ("show", "one target"),
        ("enable", "send again"),
        ("disable", "stop sending (what waits stays in the outbox)"),
        ("remove", "remove a target that never delivered anything"),
    ):
        one = leaf(target_actions, name, text)
        one.add_argument("target", metavar="TARGET", help="its name (with --tenant) or id")
        one.add_argument("--tenant", metavar="T")
        one.add_argument("--as", dest="as_user", metavar="USER")

    run_now = leaf(
        actions, "run", "one delivery pass now (with --target: that target's recordings, due or not)"
    )
    run_now.add_argument("--target", metavar="TARGET")
    run_now.add_argument("--tenant", metavar="T")
    log = leaf(actions, "log", "the delivery log, newest attempt first")
    log.add_argument("--recording", metavar="ID", help="recording id or reference")
    log.add_argument("--target", metavar="TARGET")
    log.add_argument("--tenant", metavar="T")
    log.add_argument("--limit", type=int, default=50, metavar="N")
    dead = leaf(actions, "dead", "dead letters: deliveries given up")
    dead.add_argument("--target", metavar="TARGET")
    dead.add_argument("--tenant", metavar="T")
    dead.add_argument("--limit", type=int, default=100, metavar="N")
    replay = leaf(actions, "replay", "send a dead delivery again, with a full count of attempts")
    replay.add_argument("id", type=int, metavar="ID")
    replay.add_argument("--as", dest="as_user", metavar="USER")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Services:
    config: Config
    pool: Any
    blobs: FileBlobStore
    targets: TargetStore
    outbox: Outbox


Handler = Callable[[argparse.Namespace, _Services], Awaitable[int]]


async def run(args: argparse.Namespace, config: Config) -> int | None:
    if args.command != "delivery":
        return None
    try:
        async with open_storage(config) as storage:
            audit = AuditLog()
            provider = KeyFileProvider(config.key_file_path)
            services = _Services(
                config=config,
                pool=storage.pool,
                blobs=storage.blobs,
                targets=TargetStore(storage.pool, provider, audit=audit, clock=_now),
                outbox=Outbox(storage.pool, audit=audit, clock=_now),
            )
            key = (args.action, getattr(args, "sub", None))
            return await _HANDLERS[key](args, services)
    except NotFoundError as exc:
        return fail(str(exc), EXIT_NOT_FOUND)
    except LifecycleError as exc:
        return fail(f"refused: {exc}", EXIT_REFUSED)
    except (TargetSettingsError, ValueError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except (StorageError, OSError) as exc:
        return fail(str(exc), EXIT_FAILURE)


def _now() -> datetime:
    return datetime.now(UTC)


# -- targets -----------------------------------------------------------------------------------------------------
async def _add(args: argparse.Namespace, services: _Services) -> int:
    kind, settings = settings_from_url(args.url)
    if kind is not TargetKind.FTPS and args.ca_file is not None:
        return fail("--ca-file is for ftps targets (the certificates that sign the server's)", EXIT_USAGE)
    if kind is TargetKind.FTPS and (args.host_key or args.host_key_file or args.key_file):
        return fail(
            "an ftps target logs in with --password-file; its certificate is checked, no host key", EXIT_USAGE
        )
    if kind is TargetKind.WEBHOOK:
        refused = _webhook_settings(args, settings)
        if refused is not None:
            return refused
    else:
        if args.mode is not None or args.secret_file is not None:
            return fail("--mode and --secret-file are for webhook targets (an https:// URL)", EXIT_USAGE)
        settings.update(
            auth="key" if args.key_file else "password",
            name_template=args.template,
            format=args.format,
            sidecar=not args.no_sidecar,
        )
        if kind is TargetKind.FTPS:
            settings["ca_certificates"] = args.ca_file.read_text() if args.ca_file else None
        else:
            settings["host_key"] = args.host_key or (
                args.host_key_file.read_text() if args.host_key_file else None
            )
    tenant = await find_tenant(services.pool, args.tenant)
    chosen = DeliveryFilter.of(
        numbers=args.number, direction=args.direction, classes=args.classes, region=tenant.region
    )
    # Check everything that needs no secret before asking for one.
    schedule = Schedule.parse(args.schedule)
    check_settings(kind, settings)
    target = await services.targets.create(
        tenant.id,
        kind=kind,
        name=args.name,
        settings=settings,
        secret=_secret(args, kind),
        schedule=schedule,
        filter=chosen,
        delete_after_delivery=args.delete_after_delivery,
        max_attempts=args.max_attempts,
        actor=actor_of(args),
    )
    waiting = None
    if args.since is not None:
        waiting = await services.outbox.backfill(target.id, args.since, actor=actor_of(args))
    if args.json:
        emit({**target.to_json(), "backfill": waiting})
    else:
        _print_target(target)
        if waiting is not None:
            print(f"{'backfill':<22} {waiting} earlier recording(s) go with the next pass")
    return EXIT_OK


async def _list(args: argparse.Namespace, services: _Services) -> int:
    scope = ALL_TENANTS if args.tenant is None else (await find_tenant(services.pool, args.tenant)).id
    targets = await services.targets.list(scope)
    if args.json:
        emit([target.to_json() for target in targets])
        return EXIT_OK
    for target in targets:
        state = "enabled" if target.enabled else "disabled"
        print(f"{target.name:<20} {state:<8} {target.schedule.describe():<28} {target.endpoint}")
    return EXIT_OK


async def _show(args: argparse.Namespace, services: _Services) -> int:
    target = await _target(args, services)
    if args.json:
        emit(target.to_json())
    else:
        _print_target(target)
    return EXIT_OK


async def _enable(args: argparse.Namespace, services: _Services) -> int:
    target = await services.targets.enable((await _target(args, services)).id, actor=actor_of(args))
    return _done(args, target, "enabled")


async def _disable(args: argparse.Namespace, services: _Services) -> int:
    target = await services.targets.disable((await _target(args, services)).id, actor=actor_of(args))
    return _done(args, target, "disabled")


async def _remove(args: argparse.Namespace, services: _Services) -> int:
    target = await _target(args, services)
    await services.targets.delete(target.id, actor=actor_of(args))
    return _done(args, target, "removed")


# -- the outbox ----------------------------------------------------------------------------------------------------
async def _run(args: argparse.Namespace, services: _Services) -> int:
    target_id = None if args.target is None else (await _target(args, services)).id
    audit = AuditLog()
    crypto = RecordingCrypto(services.pool, KeyFileProvider(services.config.key_file_path))
    node = f"cli@{socket.gethostname()}"
    worker = DeliveryWorker(
        outbox=services.outbox,
        targets=services.targets,
        payloads=PayloadSource(
            services.pool,
            services.blobs,
            crypto,
            spool=services.config.data_dir / "delivery-spool",
            settings=encode_settings(services.config),
        ),
        transports={
            TargetKind.SFTP: SftpTransport(),
            TargetKind.FTPS: FtpsTransport(),
            TargetKind.WEBHOOK: WebhookTransport(
                signer=await asyncio.to_thread(LinkSigner.from_data_dir, services.config.data_dir),
                public_base=_public_base(services.config),
            ),
        },
        copies=DeliveredCopies(
            services.pool, ErasureService(services.pool, services.blobs, audit=audit, clock=_now), node=node
        ),
        clock=_now,
        node=node,
    )
    report = await worker.run_once(target_id=target_id)
    if args.json:
        emit(report.to_json())
    else:
        print(
            f"enqueued {report.enqueued}, notices {report.notices}; delivered {report.delivered}, "
            f"to retry {report.retried}, dead {report.dead}; our copies erased {report.copies.erased}, "
            f"kept {report.copies.kept}"
        )
        if report.error:
            print(f"hangtar: the pass stopped early: {report.error}", file=sys.stderr)
    return EXIT_FAILURE if report.error or report.dead else EXIT_OK


async def _log(args: argparse.Namespace, services: _Services) -> int:
    recording_id = None
    if args.recording is not None:
        recording_id = (await find_recording(services.pool, ALL_TENANTS, args.recording)).id
    target_id = None if args.target is None else (await _target(args, services)).id
    entries = await services.outbox.log(recording_id=recording_id, target_id=target_id, limit=args.limit)
    if args.json:
        emit([entry.to_json() for entry in entries])
        return EXIT_OK
    for entry in entries:
        result = "running" if entry.result is None else entry.result.value
        detail = entry.error or f"{entry.remote_path} {entry.bytes} bytes sha256 {entry.sha256}"
        print(
            f"{format_timestamp(entry.started_at)}  {entry.reference}  {entry.kind.value:<12} "
            f"{entry.target_name:<16} #{entry.attempt:<2} {result:<9} {detail}"
        )
    return EXIT_OK


async def _dead(args: argparse.Namespace, services: _Services) -> int:
    target_id = None if args.target is None else (await _target(args, services)).id
    items = await services.outbox.items(status=DeliveryStatus.DEAD, target_id=target_id, limit=args.limit)
    if args.json:
        emit([item.to_json() for item in items])
        return EXIT_OK
    for item in items:
        _print_item(item)
    return EXIT_OK


async def _replay(args: argparse.Namespace, services: _Services) -> int:
    item = await services.outbox.replay(args.id, actor=actor_of(args))
    if args.json:
        emit(item.to_json())
    else:
        print(
            f"delivery {item.id} ({item.kind.value} {item.reference}) is pending again; sent with the next pass"
        )
    return EXIT_OK


_HANDLERS: dict[tuple[str, str | None], Handler] = {
    ("targets", "add"): _add,
    ("targets", "list"): _list,
    ("targets", "show"): _show,
    ("targets", "enable"): _enable,
    ("targets", "disable"): _disable,
    ("targets", "remove"): _remove,
    ("run", None): _run,
    ("log", None): _log,
    ("dead", None): _dead,
    ("replay", None): _replay,
}


# -- helpers -------------------------------------------------------------------------------------------------------
async def _target(args: argparse.Namespace, services: _Services) -> DeliveryTarget:
    text = str(args.target).strip()
    try:
        return await services.targets.get(UUID(text))
    except ValueError:
        pass
    if getattr(args, "tenant", None) is None:
        raise ValueError(f"name the tenant (--tenant) of target {text!r}, or give the target's id")
    tenant = await find_tenant(services.pool, args.tenant)
    return await services.targets.find(tenant.id, text)


def _webhook_settings(args: argparse.Namespace, settings: dict[str, Any]) -> int | None:
    """Fill a webhook's settings from the options; an exit code when an option does not fit a webhook."""
    wrong = [
        option
        for option, given in (
            ("--host-key", args.host_key),
            ("--host-key-file", args.host_key_file),
            ("--key-file", args.key_file),
            ("--no-sidecar", args.no_sidecar),
        )
        if given
    ]
    if wrong:
        return fail(f"{', '.join(wrong)}: not for a webhook target", EXIT_USAGE)
    mode = args.mode or "link"
    if mode == "link" and args.delete_after_delivery:
        return fail(
            "refused: a webhook in link mode gives the CRM a link to our copy, so --delete-after-delivery "
            "would break it; use --mode inline to hand over the audio itself",
            EXIT_REFUSED,
        )
    settings.update(mode=mode, format=args.format, name_template=args.template)
    return None


def _public_base(config: Config) -> str | None:
    """Where the API is reached from outside, for webhook download links (none: link mode waits for a node
    that has it)."""
    value = getattr(config, "public_url", None)
    return str(value) if value else None


def _secret(args: argparse.Namespace, kind: TargetKind = TargetKind.SFTP) -> str:
    if args.key_file is not None:
        return str(args.key_file.read_text())
    named = args.password_file if args.password_file is not None else getattr(args, "secret_file", None)
    if named == "-":
        secret = sys.stdin.readline().rstrip("\r\n")
    elif named is not None:
        secret = Path(named).read_text().rstrip("\r\n")
    elif not sys.stdin.isatty():
        raise ValueError(
            "give --key-file, --password-file or --secret-file (no terminal to ask for the secret on)"
        )
    elif kind is TargetKind.WEBHOOK:
        secret = getpass.getpass("signing secret for the webhook (shared with the CRM): ")
    else:
        secret = getpass.getpass("password for the target: ")
    if kind is TargetKind.WEBHOOK and len(secret.strip()) < 16:
        raise ValueError("a webhook's signing secret has at least 16 characters")
    return secret


def _done(args: argparse.Namespace, target: DeliveryTarget, what: str) -> int:
    if args.json:
        emit({**target.to_json(), "result": what})
    else:
        print(f"{target.name}: {what}")
    return EXIT_OK


def _print_target(target: DeliveryTarget) -> None:
    settings = target.settings
    if target.kind is TargetKind.WEBHOOK:
        _print_webhook(target)
        return
    rows = [
        ("name", target.name),
        ("id", str(target.id)),
        ("endpoint", target.endpoint),
        ("state", "enabled" if target.enabled else "disabled"),
        ("login", f"{settings.get('auth')} (stored encrypted)" if target.has_secret else "no secret"),
        ("host key", settings.get("host_key")),
        ("schedule", target.schedule.describe()),
        ("takes", target.filter.describe()),
        ("file names", f"{settings.get('name_template')}.{settings.get('format') or '<as recorded>'}"),
        ("sidecar", "yes" if settings.get("sidecar", True) else "no"),
        ("delete after delivery", "yes" if target.delete_after_delivery else "no"),
        ("max attempts", str(target.max_attempts)),
        ("sends calls finished", f"from {format_timestamp(target.deliver_since)}"),
    ]
    for label, value in rows:
        print(f"{label:<22} {value}")


def _print_webhook(target: DeliveryTarget) -> None:
    settings = target.settings
    mode = str(settings.get("mode"))
    audio = (
        "a signed download link, valid 7 days"
        if mode == "link"
        else f"inline (multipart), {settings.get('format') or 'as recorded'}"
    )
    rows = [
        ("name", target.name),
        ("id", str(target.id)),
        ("endpoint", target.endpoint),
        ("state", "enabled" if target.enabled else "disabled"),
        ("signing", "HMAC-SHA256, secret stored encrypted" if target.has_secret else "no secret"),
        ("audio", audio),
        ("schedule", target.schedule.describe()),
        ("takes", target.filter.describe()),
        ("delete after delivery", "yes" if target.delete_after_delivery else "no"),
        ("max attempts", str(target.max_attempts)),
        ("sends calls finished", f"from {format_timestamp(target.deliver_since)}"),
    ]
    for label, value in rows:
        print(f"{label:<22} {value}")


def _print_item(item: DeliveryItem) -> None:
    print(
        f"{item.id:<8} {item.reference}  {item.kind.value:<12} attempts {item.attempts:<3} "
        f"{format_timestamp(item.next_attempt_at)}  {item.last_error or ''}"
    )
