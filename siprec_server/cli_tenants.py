"""``hangtar tenants|numbers|sources|policies``: who the subscribers are, which numbers and SBCs are theirs,
and what is recorded on which legal basis. Every change goes through the storage services (audited, announced
to running servers). The policy commands live in `cli_policies`; this module is the entry point.

Exit codes: 0 ok, 1 failure (also a number, hint or network already taken), 2 usage or an unreadable value,
3 not found, 4 refused by a data-protection rule.
"""

from __future__ import annotations

import argparse

from storage.audit import AuditLog
from storage.errors import CatalogueError, ConflictError, LifecycleError, NotFoundError
from storage.policies import PolicyStore
from storage.tenant_models import NumberKind, Tenant
from storage.tenants import TenantStore

from .bootstrap import open_storage
from .cli_policies import (
    EXIT_FAILURE,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    POLICY_HANDLERS,
    CliContext,
    Handler,
    StorageOptions,
    actor_of,
    add_policy_commands,
    emit,
    fail,
    leaf,
    print_policies,
)
from .config import Config

__all__ = ["COMMANDS", "add_commands", "run"]

COMMANDS = frozenset({"tenants", "numbers", "sources", "policies"})


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], storage_options: StorageOptions
) -> None:
    _tenant_commands(commands, storage_options)
    _number_commands(commands, storage_options)
    _source_commands(commands, storage_options)
    add_policy_commands(commands, storage_options)


def _tenant_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], opts: StorageOptions
) -> None:
    tenants = commands.add_parser("tenants", help="VPBX subscribers, the controllers of their recordings")
    actions = tenants.add_subparsers(dest="action", required=True)
    create = leaf(actions, "create", "add a tenant", opts, changes=True)
    create.add_argument("slug", metavar="SLUG", help="short name: lowercase letters, digits, '-'")
    create.add_argument("--name", required=True, help="the subscriber's name, as announced to callers")
    create.add_argument("--region", default="HU", help="where numbers without a country code are read (HU)")
    create.add_argument(
        "--hint",
        dest="hints",
        action="append",
        default=[],
        metavar="HINT",
        help="a vendor tenant hint naming it (BroadWorks 'provider/group'); repeatable",
    )
    leaf(actions, "list", "every tenant", opts)
    show = leaf(actions, "show", "a tenant with its numbers, sources and current policies", opts)
    show.add_argument("slug", metavar="SLUG")
    update = leaf(actions, "update", "rename a tenant or change its hints", opts, changes=True)
    update.add_argument("slug", metavar="SLUG")
    update.add_argument("--name")
    update.add_argument("--add-hint", action="append", default=[], metavar="HINT")
    update.add_argument("--remove-hint", action="append", default=[], metavar="HINT")
    update.add_argument("--clear-hints", action="store_true")
    delete = leaf(actions, "delete", "delete a tenant that has no recordings", opts, changes=True)
    delete.add_argument("slug", metavar="SLUG")


def _number_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], opts: StorageOptions
) -> None:
    numbers = commands.add_parser("numbers", help="a tenant's DIDs, DID ranges and extensions")
    actions = numbers.add_subparsers(dest="action", required=True)
    add = leaf(actions, "add", "add a number (any written form)", opts, changes=True)
    add.add_argument("--tenant", required=True, metavar="SLUG")
    add.add_argument(
        "number", metavar="NUMBER", help="+36 1 234 5678, 06-1-234-5678; a range: +36 1 234 56xx"
    )
    kind = add.add_mutually_exclusive_group()
    kind.add_argument(
        "--range",
        dest="kind",
        action="store_const",
        const=NumberKind.RANGE,
        help="a block of DIDs: +36 1 234 56xx or +3612345600-+3612345699",
    )
    kind.add_argument(
        "--extension",
        dest="kind",
        action="store_const",
        const=NumberKind.EXTENSION,
        help="an internal extension (digits, * and #)",
    )
    add.add_argument("--label", help="a note for people, e.g. 'customer service line'")
    remove = leaf(actions, "remove", "remove a number", opts, changes=True)
    remove.add_argument("--tenant", required=True, metavar="SLUG")
    remove.add_argument("number", metavar="NUMBER", help="as added, in any written form")
    listing = leaf(actions, "list", "a tenant's numbers", opts)
    listing.add_argument("--tenant", required=True, metavar="SLUG")


def _source_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], opts: StorageOptions
) -> None:
    sources = commands.add_parser("sources", help="networks of SBCs/PBXes that carry only one tenant's calls")
    actions = sources.add_subparsers(dest="action", required=True)
    for name, text in (("add", "add a source network"), ("remove", "remove a source network")):
        parser = leaf(actions, name, text, opts, changes=True)
        parser.add_argument("--tenant", required=True, metavar="SLUG")
        parser.add_argument("network", metavar="CIDR", help="192.0.2.0/28, 2001:db8::/64 or one address")
    listing = leaf(actions, "list", "a tenant's source networks", opts)
    listing.add_argument("--tenant", required=True, metavar="SLUG")


async def run(args: argparse.Namespace, config: Config) -> int | None:
    """Run the command if it is one of ours; None otherwise."""
    if getattr(args, "command", None) not in COMMANDS:
        return None
    try:
        async with open_storage(config) as storage:
            audit = AuditLog()
            context = CliContext(
                args=args,
                tenants=TenantStore(storage.pool, audit),
                policies=PolicyStore(storage.pool, audit),
                actor=actor_of(args),
            )
            handler = (
                _HANDLERS.get((args.command, args.action)) or POLICY_HANDLERS[(args.command, args.action)]
            )
            return await handler(context)
    except NotFoundError as exc:
        return fail(str(exc), EXIT_NOT_FOUND)
    except LifecycleError as exc:
        return fail(f"refused: {exc}", EXIT_REFUSED)
    except ConflictError as exc:
        owner = f" (owned by tenant {exc.owner_slug!r})" if exc.owner_slug else ""
        return fail(f"{exc}{owner}", EXIT_FAILURE)
    except ValueError as exc:
        return fail(str(exc), EXIT_USAGE)
    except CatalogueError as exc:
        return fail(str(exc), EXIT_FAILURE)


# -- tenants ----------------------------------------------------------------------------------------------------
async def _tenants_create(ctx: CliContext) -> int:
    a = ctx.args
    tenant = await ctx.tenants.create(
        slug=a.slug, name=a.name, region=a.region, hints=a.hints, actor=ctx.actor
    )
    if ctx.json:
        emit(tenant.to_json())
    else:
        print(f"created tenant {tenant.slug} ({tenant.name}), id {tenant.id}, region {tenant.region}")
        _print_hints(tenant)
    return EXIT_OK


async def _tenants_list(ctx: CliContext) -> int:
    tenants = await ctx.tenants.list()
    if ctx.json:
        emit([tenant.to_json() for tenant in tenants])
        return EXIT_OK
    print(f"{'SLUG':<24} {'REGION':<6} {'NAME':<32} HINTS")
    for tenant in tenants:
        print(f"{tenant.slug:<24} {tenant.region:<6} {tenant.name:<32} {'; '.join(tenant.hints)}")
    return EXIT_OK


async def _tenants_show(ctx: CliContext) -> int:
    tenant = await ctx.tenant(ctx.args.slug)
    numbers = await ctx.tenants.numbers(tenant.id)
    sources = await ctx.tenants.sources(tenant.id)
    policies = await ctx.policies.list_current(tenant.id)
    if ctx.json:
        emit(
            tenant.to_json()
            | {
                "numbers": [number.to_json() for number in numbers],
                "sources": [source.to_json() for source in sources],
                "policies": [policy.to_json() for policy in policies],
            }
        )
        return EXIT_OK
    for key, value in (
        ("slug", tenant.slug),
        ("name", tenant.name),
        ("id", tenant.id),
        ("region", tenant.region),
    ):
        print(f"{key:<10} {value}")
    _print_hints(tenant)
    for number in numbers:
        print(
            f"{'number':<10} {number.kind.value:<9} {number.display}"
            + (f"  ({number.label})" if number.label else "")
        )
    for source in sources:
        print(f"{'source':<10} {source.network}")
    if policies:
        print_policies(policies, {n.id: n for n in numbers})
    else:
        print("policies   none of its own: the system policy applies")
    return EXIT_OK


async def _tenants_update(ctx: CliContext) -> int:
    a = ctx.args
    tenant = await ctx.tenant(a.slug)
    hints: list[str] | None = None
    if a.clear_hints or a.add_hint or a.remove_hint:
        removed = {hint.strip().casefold() for hint in a.remove_hint}
        missing = removed - {hint.casefold() for hint in tenant.hints}
        if missing:
            raise NotFoundError(f"tenant {tenant.slug!r} has no hint {sorted(missing)[0]!r}")
        kept = [] if a.clear_hints else [h for h in tenant.hints if h.casefold() not in removed]
        hints = kept + list(a.add_hint)
    if a.name is None and hints is None:
        return fail("nothing to change: give --name, --add-hint, --remove-hint or --clear-hints", EXIT_USAGE)
    updated = await ctx.tenants.update(tenant.id, name=a.name, hints=hints, actor=ctx.actor)
    if ctx.json:
        emit(updated.to_json())
    else:
        print(f"updated tenant {updated.slug} ({updated.name})")
        _print_hints(updated)
    return EXIT_OK


async def _tenants_delete(ctx: CliContext) -> int:
    tenant = await ctx.tenant(ctx.args.slug)
    await ctx.tenants.delete(tenant.id, actor=ctx.actor)
    if ctx.json:
        emit({"deleted": tenant.to_json()})
    else:
        print(f"deleted tenant {tenant.slug} ({tenant.name}) with its numbers, sources and policies")
    return EXIT_OK


def _print_hints(tenant: Tenant) -> None:
    print(f"{'hints':<10} {'; '.join(tenant.hints) if tenant.hints else '(none)'}")


# -- numbers and sources ----------------------------------------------------------------------------------------
async def _numbers_add(ctx: CliContext) -> int:
    a = ctx.args
    tenant = await ctx.tenant()
    kind = a.kind or NumberKind.NUMBER
    number = await ctx.tenants.add_number(tenant.id, a.number, kind=kind, label=a.label, actor=ctx.actor)
    if ctx.json:
        emit(number.to_json())
    else:
        print(f"added {number.kind.value} {number.display} to {tenant.slug}")
    return EXIT_OK


async def _numbers_remove(ctx: CliContext) -> int:
    tenant = await ctx.tenant()
    number = await ctx.tenants.find_number(tenant.id, ctx.args.number)
    await ctx.tenants.remove_number(tenant.id, number.id, actor=ctx.actor)
    if ctx.json:
        emit({"removed": number.to_json()})
    else:
        print(f"removed {number.kind.value} {number.display} from {tenant.slug}")
    return EXIT_OK


async def _numbers_list(ctx: CliContext) -> int:
    tenant = await ctx.tenant()
    numbers = await ctx.tenants.numbers(tenant.id)
    if ctx.json:
        emit([number.to_json() for number in numbers])
        return EXIT_OK
    print(f"{'KIND':<10} {'NUMBER':<20} LABEL")
    for number in numbers:
        print(f"{number.kind.value:<10} {number.display:<20} {number.label or ''}".rstrip())
    return EXIT_OK


async def _sources_add(ctx: CliContext) -> int:
    tenant = await ctx.tenant()
    source = await ctx.tenants.add_source(tenant.id, ctx.args.network, actor=ctx.actor)
    if ctx.json:
        emit(source.to_json())
    else:
        print(f"added source network {source.network} to {tenant.slug}")
    return EXIT_OK


async def _sources_remove(ctx: CliContext) -> int:
    tenant = await ctx.tenant()
    source = await ctx.tenants.remove_source(tenant.id, ctx.args.network, actor=ctx.actor)
    if ctx.json:
        emit({"removed": source.to_json()})
    else:
        print(f"removed source network {source.network} from {tenant.slug}")
    return EXIT_OK


async def _sources_list(ctx: CliContext) -> int:
    tenant = await ctx.tenant()
    sources = await ctx.tenants.sources(tenant.id)
    if ctx.json:
        emit([source.to_json() for source in sources])
    else:
        for source in sources:
            print(source.network)
    return EXIT_OK


_HANDLERS: dict[tuple[str, str], Handler] = {
    ("tenants", "create"): _tenants_create,
    ("tenants", "list"): _tenants_list,
    ("tenants", "show"): _tenants_show,
    ("tenants", "update"): _tenants_update,
    ("tenants", "delete"): _tenants_delete,
    ("numbers", "add"): _numbers_add,
    ("numbers", "remove"): _numbers_remove,
    ("numbers", "list"): _numbers_list,
    ("sources", "add"): _sources_add,
    ("sources", "remove"): _sources_remove,
    ("sources", "list"): _sources_list,
}
