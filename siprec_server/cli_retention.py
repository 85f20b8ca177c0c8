"""``hangtar retention|holds|consent|erase``: retention periods, the sweeper, legal holds and erasure by hand.

Every command goes through the storage services (the same ones an HTTP API will use), so every rule and audit
entry applies. Exit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 refused by a rule (a hold, a statutory
floor, the two-person rule). ``--json`` prints what a script wants; ``--as USER`` names the person acting
(default ``cli:<os user>``). Whose recordings a command reaches: ``--tenant T`` that tenant's, ``--system`` the
calls no tenant claimed, neither the operator's reach across every tenant (where the command allows it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from uuid import UUID

from storage import FileBlobStore
from storage.audit import AuditLog
from storage.disposal import Disposal
from storage.erasure import ErasureOutcome, ErasureService
from storage.errors import LifecycleError, NotFoundError, StorageError
from storage.holds import HoldFilter, HoldService
from storage.lifecycle_rows import find_recording
from storage.models import format_timestamp
from storage.retention_class import Basis, RetentionClass
from storage.retention_service import RetentionService
from storage.scope import ALL_TENANTS, TenantScope
from storage.sweeper import Sweeper
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
from .config import Config

__all__ = ["add_commands", "parse_time", "run"]

_COMMANDS = ("retention", "holds", "consent", "erase")


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], storage_options: StorageOptions
) -> None:
    def leaf(parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str, **kw: Any) -> Any:
        parser = parent.add_parser(name, **kw)
        storage_options(parser)
        return parser

    retention = commands.add_parser("retention", help="retention periods and the sweeper")
    actions = retention.add_subparsers(dest="action", required=True)
    sweep = leaf(actions, "sweep", help="delete every finished recording whose retention period has ended")
    sweep.add_argument("--dry-run", action="store_true", help="list what would be deleted; change nothing")
    sweep.add_argument("--as-of", type=parse_time, metavar="TIME", help="ISO 8601 with offset (default: now)")
    sweep.add_argument("--batch", type=int, default=100, metavar="N", help="recordings per transaction")
    _common(sweep)
    change = leaf(actions, "set", help="change how long one recording is kept")
    change.add_argument("id", metavar="ID", help="recording id or reference")
    how = change.add_mutually_exclusive_group(required=True)
    how.add_argument("--class", dest="class_code", metavar="CODE", help="move it to this retention class")
    how.add_argument("--days", type=int, metavar="N", help="keep it N days from the start of the call")
    _scope_options(change)
    _common(change)
    classes = actions.add_parser("classes", help="retention classes: the presets and a tenant's own")
    class_actions = classes.add_subparsers(dest="sub", required=True)
    listing = leaf(class_actions, "list", help="the presets, and the tenant's own with --tenant")
    listing.add_argument("--tenant", metavar="T")
    listing.add_argument("--json", action="store_true")
    add = leaf(class_actions, "add", help="define a tenant's own (never statutory) class")
    add.add_argument("--tenant", metavar="T", required=True)
    add.add_argument("code", metavar="CODE", help="a-z, 0-9 and _, e.g. sales_90d")
    add.add_argument("--name", required=True)
    add.add_argument("--days", type=int, required=True, metavar="N", help="0: not kept after hang-up")
    add.add_argument("--basis", choices=[Basis.LEGITIMATE_INTEREST.value, Basis.CONSENT.value])
    add.add_argument("--source", metavar="TEXT", help="the reasoning behind the period")
    _common(add)
    options = actions.add_parser("options", help="the periods a tenant's users may choose from")
    option_actions = options.add_subparsers(dest="sub", required=True)
    show = leaf(option_actions, "show")
    show.add_argument("--tenant", metavar="T", required=True)
    show.add_argument("--json", action="store_true")
    choose = leaf(option_actions, "set", help="the default, then up to four more class codes")
    choose.add_argument("--tenant", metavar="T", required=True)
    choose.add_argument("default", metavar="DEFAULT")
    choose.add_argument("others", metavar="CODE", nargs="*")
    _common(choose)

    holds = commands.add_parser("holds", help="legal holds (GDPR Art. 18 restriction)")
    hold_actions = holds.add_subparsers(dest="action", required=True)
    place = leaf(hold_actions, "place", help="stop every deletion of a recording or of a number's calls")
    target = place.add_mutually_exclusive_group(required=True)
    target.add_argument("--recording", metavar="ID")
    target.add_argument("--number", metavar="N", help="any written form: +36 1 234 5678, 06-1-234-5678")
    place.add_argument("--from", dest="from_at", type=parse_time, metavar="TIME", help="calls started from")
    place.add_argument(
        "--until", dest="until_at", type=parse_time, metavar="TIME", help="calls started before"
    )
    place.add_argument("--reason", required=True, metavar="TEXT")
    _scope_options(place, everyone="the operator's hold, on every tenant's calls")
    _common(place)
    hold_list = leaf(hold_actions, "list", help="active holds, newest first")
    which = hold_list.add_mutually_exclusive_group()
    which.add_argument("--released", action="store_const", dest="which", const=HoldFilter.RELEASED)
    which.add_argument("--all", action="store_const", dest="which", const=HoldFilter.ALL)
    _scope_options(hold_list, everyone="every hold")
    hold_list.add_argument("--json", action="store_true")
    for name, text in (
        ("request-release", "ask for a hold's release (a second person approves)"),
        ("approve-release", "approve a release another person asked for"),
    ):
        release = leaf(hold_actions, name, help=text)
        release.add_argument("hold", metavar="HOLD", type=UUID)
        _scope_options(release, everyone="any hold")
        _common(release)

    consent = commands.add_parser("consent", help="consent withdrawals (GDPR Art. 7(3))")
    consent_actions = consent.add_subparsers(dest="action", required=True)
    withdraw = leaf(consent_actions, "withdraw", help="erase a number's consent-based recordings")
    _scope_options(withdraw, everyone=None)
    withdraw.add_argument("number", metavar="NUMBER")
    _common(withdraw)

    erase = leaf(commands, "erase", help="erase a recording, or all of a number's (GDPR Art. 17)")
    erase.add_argument("id", metavar="ID", nargs="?", help="recording id or reference")
    erase.add_argument("--number", metavar="N", help="needs --tenant or --system")
    _scope_options(erase)
    erase.add_argument("--reason", default="erasure request", metavar="TEXT", help="kept in the audit trail")
    _common(erase)


def _scope_options(
    parser: argparse.ArgumentParser, *, everyone: str | None = "any recording, of every tenant"
) -> None:
    """``--tenant`` or ``--system``; neither is the operator's reach (``everyone``; None: one is required)."""
    scope = parser.add_mutually_exclusive_group(required=everyone is None)
    default = "" if everyone is None else f" (default: {everyone})"
    scope.add_argument("--tenant", metavar="T", help=f"act for this tenant (slug or id) only{default}")
    scope.add_argument("--system", action="store_true", help="act on the calls no tenant claimed only")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--as", dest="as_user", metavar="USER", help="who acts (default cli:<os user>)")


def parse_time(text: str) -> datetime:
    """ISO 8601 with a UTC offset (``2027-01-28T09:00:00+01:00``, ``...Z``); a bare date is 00:00 UTC."""
    try:
        if len(text.strip()) == 10:
            return datetime.combine(date.fromisoformat(text.strip()), time(), tzinfo=UTC)
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    if value.utcoffset() is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; add Z or +01:00")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Services:
    pool: Any
    retention: RetentionService
    holds: HoldService
    erasure: ErasureService
    sweeper: Sweeper


Handler = Callable[[argparse.Namespace, _Services], Awaitable[int]]


async def run(args: argparse.Namespace, config: Config) -> int | None:
    if args.command not in _COMMANDS:
        return None
    if args.command == "erase" and (args.id is None) == (args.number is None):
        return fail("give a recording ID or --number", EXIT_USAGE)
    if args.command == "erase" and args.number is not None and args.tenant is None and not args.system:
        return fail("--number needs --tenant (or --system)", EXIT_USAGE)
    try:
        async with open_storage(config) as storage:
            return await _dispatch(args, _services(storage.pool, storage.blobs))
    except NotFoundError as exc:
        return fail(str(exc), EXIT_NOT_FOUND)
    except LifecycleError as exc:
        return fail(f"refused: {exc}", EXIT_REFUSED)
    except ValueError as exc:
        return fail(str(exc), EXIT_USAGE)
    except StorageError as exc:
        return fail(str(exc), EXIT_FAILURE)


def _services(pool: Any, blobs: FileBlobStore) -> _Services:
    audit = AuditLog()

    def clock() -> datetime:
        return datetime.now(UTC)

    return _Services(
        pool=pool,
        retention=RetentionService(pool, audit=audit, clock=clock),
        holds=HoldService(pool, audit=audit, clock=clock),
        erasure=ErasureService(pool, blobs, audit=audit, clock=clock),
        sweeper=Sweeper(pool, blobs, audit=audit, clock=clock),
    )


async def _dispatch(args: argparse.Namespace, services: _Services) -> int:
    key = (args.command, getattr(args, "action", None), getattr(args, "sub", None))
    handlers: dict[tuple[str, str | None, str | None], Handler] = {
        ("retention", "sweep", None): _sweep,
        ("retention", "set", None): _set,
        ("retention", "classes", "list"): _classes_list,
        ("retention", "classes", "add"): _classes_add,
        ("retention", "options", "show"): _options_show,
        ("retention", "options", "set"): _options_set,
        ("holds", "place", None): _hold_place,
        ("holds", "list", None): _hold_list,
        ("holds", "request-release", None): _hold_request,
        ("holds", "approve-release", None): _hold_approve,
        ("consent", "withdraw", None): _withdraw,
        ("erase", None, None): _erase,
    }
    return await handlers[key](args, services)


async def _tenant_id(args: argparse.Namespace, services: _Services) -> UUID | None:
    """The ``--tenant`` named, or None (no tenant)."""
    text = getattr(args, "tenant", None)
    return None if text is None else (await find_tenant(services.pool, text)).id


async def _scope(args: argparse.Namespace, services: _Services) -> TenantScope:
    """``--tenant``'s, ``--system``: the unclaimed calls, neither: the operator across every tenant."""
    if getattr(args, "system", False):
        return None
    tenant_id = await _tenant_id(args, services)
    return ALL_TENANTS if tenant_id is None else tenant_id


# -- retention -------------------------------------------------------------------------------------------------
async def _sweep(args: argparse.Namespace, services: _Services) -> int:
    as_of = args.as_of or datetime.now(UTC)
    report = await services.sweeper.sweep(as_of, dry_run=args.dry_run, batch=args.batch, actor=actor_of(args))
    if args.json:
        emit(report.to_json())
    else:
        verb = "would delete" if report.dry_run else "deleted"
        print(
            f"sweep as of {format_timestamp(report.as_of)}: {verb} {len(report.items)}, "
            f"kept by a hold {report.held}, failed {report.failed}"
        )
        for item in report.items:
            print(
                f"  {item.reference}  {item.reason.value:<17} {item.retention_class or '-':<26} "
                f"expired {format_timestamp(item.expires_at) or '-'}"
            )
        if report.error:
            print(f"hangtar: the sweep stopped early: {report.error}", file=sys.stderr)
    return EXIT_FAILURE if report.failed or report.error else EXIT_OK


async def _set(args: argparse.Namespace, services: _Services) -> int:
    scope = await _scope(args, services)
    facts = await find_recording(services.pool, scope, args.id)
    change = await services.retention.change_retention(
        scope, facts.id, actor=actor_of(args), class_code=args.class_code, days=args.days
    )
    if args.json:
        emit(change.to_json())
    else:
        print(
            f"{change.reference}: {change.old_class or '-'} → {change.new_class}, expires "
            f"{format_timestamp(change.old_expires_at) or 'never'} → {format_timestamp(change.new_expires_at)}"
        )
    return EXIT_OK


async def _classes_list(args: argparse.Namespace, services: _Services) -> int:
    classes = await services.retention.classes(await _tenant_id(args, services))
    if args.json:
        emit([item.to_json() for item in classes])
    else:
        _print_classes(classes)
    return EXIT_OK


async def _classes_add(args: argparse.Namespace, services: _Services) -> int:
    tenant_id = await _tenant_id(args, services)
    assert tenant_id is not None
    extra: dict[str, Any] = {}
    if args.basis:
        extra["basis"] = Basis(args.basis)
    if args.source:
        extra["source"] = args.source
    created = await services.retention.create_class(
        tenant_id, code=args.code, name=args.name, days=args.days, actor=actor_of(args), **extra
    )
    if args.json:
        emit(created.to_json())
    else:
        _print_classes([created])
    return EXIT_OK


async def _options_show(args: argparse.Namespace, services: _Services) -> int:
    tenant_id = await _tenant_id(args, services)
    assert tenant_id is not None
    options = await services.retention.options(tenant_id)
    if args.json:
        emit(options.to_json())
    elif options.default is None:
        print("no options chosen: any preset or the tenant's own class may be picked")
    else:
        _print_classes(options.all, marker=options.default.id)
    return EXIT_OK


async def _options_set(args: argparse.Namespace, services: _Services) -> int:
    tenant_id = await _tenant_id(args, services)
    assert tenant_id is not None
    options = await services.retention.set_options(tenant_id, args.default, args.others, actor_of(args))
    if args.json:
        emit(options.to_json())
    else:
        _print_classes(options.all, marker=options.default.id if options.default else None)
    return EXIT_OK


# -- holds -----------------------------------------------------------------------------------------------------
async def _hold_place(args: argparse.Namespace, services: _Services) -> int:
    scope = await _scope(args, services)
    actor = actor_of(args)
    if args.recording is not None:
        if args.from_at or args.until_at:
            return fail("--from and --until go with --number", EXIT_USAGE)
        facts = await find_recording(services.pool, scope, args.recording)
        placement = await services.holds.place_on_recording(scope, facts.id, reason=args.reason, actor=actor)
    else:
        if scope is None:
            return fail(
                "a hold on a number is a tenant's (--tenant) or the operator's on every tenant's calls "
                "(neither option); --system goes with --recording",
                EXIT_USAGE,
            )
        placement = await services.holds.place_on_number(
            scope,
            args.number,
            reason=args.reason,
            actor=actor,
            from_at=args.from_at,
            until_at=args.until_at,
        )
    if args.json:
        emit(placement.to_json())
    else:
        print(placement.hold.describe())
        print(f"restricts {len(placement.covered)} recording(s) now")
    return EXIT_OK


async def _hold_list(args: argparse.Namespace, services: _Services) -> int:
    holds = await services.holds.list(await _scope(args, services), which=args.which or HoldFilter.ACTIVE)
    if args.json:
        emit([hold.to_json() for hold in holds])
    else:
        for hold in holds:
            print(f"[{hold.state.value}] {hold.describe()}")
    return EXIT_OK


async def _hold_request(args: argparse.Namespace, services: _Services) -> int:
    hold = await services.holds.request_release(await _scope(args, services), args.hold, actor_of(args))
    if args.json:
        emit(hold.to_json())
    else:
        print(
            f"release of hold {hold.id} requested by {hold.release_requested_by}; another person approves it"
        )
    return EXIT_OK


async def _hold_approve(args: argparse.Namespace, services: _Services) -> int:
    release = await services.holds.approve_release(await _scope(args, services), args.hold, actor_of(args))
    if args.json:
        emit(release.to_json())
    else:
        print(
            f"hold {release.hold.id} released by {release.hold.released_by} "
            f"(asked by {release.hold.release_requested_by}); {len(release.unrestricted)} recording(s) "
            f"no longer restricted"
        )
    return EXIT_OK


# -- consent and erasure ---------------------------------------------------------------------------------------
async def _withdraw(args: argparse.Namespace, services: _Services) -> int:
    withdrawal = await services.erasure.withdraw_consent(
        await _scope(args, services), args.number, actor_of(args)
    )
    if args.json:
        emit(withdrawal.to_json())
    else:
        print(
            f"consent of {withdrawal.number} withdrawn: {len(withdrawal.erased)} recording(s) erased, "
            f"{len(withdrawal.held)} kept by a legal hold (erased once released), "
            f"{len(withdrawal.in_progress)} still in progress (erased when the call ends)"
        )
        _print_disposals(withdrawal.erased)
    return EXIT_OK


async def _erase(args: argparse.Namespace, services: _Services) -> int:
    scope = await _scope(args, services)
    actor = actor_of(args)
    if args.id is not None:
        facts = await find_recording(services.pool, scope, args.id)
        disposal = await services.erasure.erase(scope, facts.id, actor, args.reason)
        if args.json:
            emit(disposal.to_json())
        else:
            _print_disposals([disposal])
        return EXIT_OK
    report = await services.erasure.erase_number(scope, args.number, actor, args.reason)
    if args.json:
        emit(report.to_json())
    else:
        print(
            f"{report.number}: {report.count(ErasureOutcome.ERASED)} erased, "
            f"{report.count(ErasureOutcome.REFUSED)} refused, {report.count(ErasureOutcome.FAILED)} failed"
        )
        for result in report.results:
            print(f"  {result.reference}  {result.outcome.value}  {result.message}".rstrip())
    if report.count(ErasureOutcome.FAILED):
        return EXIT_FAILURE
    return EXIT_REFUSED if report.count(ErasureOutcome.REFUSED) else EXIT_OK


# -- output ----------------------------------------------------------------------------------------------------
def _print_classes(classes: Sequence[RetentionClass], *, marker: int | None = None) -> None:
    for item in classes:
        flags = ", ".join(
            flag
            for flag, on in (
                ("default", item.id == marker),
                ("statutory", item.statutory),
                (f"up to {item.max_days} days on request", item.max_days is not None),
                ("own", not item.preset),
            )
            if on
        )
        print(
            f"{item.code:<26} {item.days:>5} d  {item.name}  [{item.basis.value}; {item.source}] {flags}".rstrip()
        )


def _print_disposals(disposals: Sequence[Disposal]) -> None:
    for disposal in disposals:
        print(
            f"erased {disposal.reference} ({disposal.reason.value}): key destroyed, {disposal.files} file(s), "
            f"{disposal.bytes} bytes removed"
        )
