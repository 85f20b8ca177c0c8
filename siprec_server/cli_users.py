"""``hangtar users|api-keys``: a tenant's accounts of the portal and the API, from the operator's shell.

``users create`` prints a one-time password (the first admin of a tenant is made this way); the user must
change it at first login. ``api-keys create`` prints the key once. Both are stored only hashed. Every change
is audited with the operator as actor (``--as`` to name someone else).

Exit codes: 0 ok, 1 failure (also an e-mail or key name already taken, or the last admin), 2 usage,
3 not found.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from storage.api_keys import ApiKey, ApiKeyStore
from storage.audit import Actor, AuditLog
from storage.errors import CatalogueError, ConflictError, NotFoundError
from storage.login_limit import LoginLimiter
from storage.passwords import Passwords
from storage.principal import Role
from storage.tenant_lookup import find_tenant
from storage.tenant_models import Tenant
from storage.users import User, UserStore

from .bootstrap import open_storage
from .cli_policies import (
    EXIT_FAILURE,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    StorageOptions,
    actor_of,
    emit,
    fail,
    leaf,
)
from .config import Config

__all__ = ["COMMANDS", "add_commands", "run"]

COMMANDS = frozenset({"users", "api-keys"})
_ROLES = [role.value for role in Role]


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], storage_options: StorageOptions
) -> None:
    users = commands.add_parser("users", help="a tenant's users of the portal and the API")
    actions = users.add_subparsers(dest="action", required=True)
    create = leaf(actions, "create", "add a user; prints a one-time password", storage_options, changes=True)
    create.add_argument("--tenant", required=True, metavar="SLUG")
    create.add_argument("--email", required=True, metavar="EMAIL")
    create.add_argument("--role", required=True, choices=_ROLES)
    listing = leaf(actions, "list", "a tenant's users", storage_options)
    listing.add_argument("--tenant", required=True, metavar="SLUG")
    role = leaf(actions, "set-role", "change a user's role", storage_options, changes=True)
    role.add_argument("--tenant", required=True, metavar="SLUG")
    role.add_argument("--email", required=True, metavar="EMAIL")
    role.add_argument("--role", required=True, choices=_ROLES)
    disable = leaf(
        actions, "disable", "disable a user; their sessions end at once", storage_options, changes=True
    )
    disable.add_argument("--tenant", required=True, metavar="SLUG")
    disable.add_argument("--email", required=True, metavar="EMAIL")

    keys = commands.add_parser("api-keys", help="a tenant's API keys for machines")
    key_actions = keys.add_subparsers(dest="action", required=True)
    new = leaf(key_actions, "create", "add an API key; prints it once", storage_options, changes=True)
    new.add_argument("--tenant", required=True, metavar="SLUG")
    new.add_argument("--name", required=True, help="what uses it, e.g. 'CRM integration'")
    new.add_argument("--role", required=True, choices=_ROLES)
    key_list = leaf(key_actions, "list", "a tenant's API keys, revoked ones too", storage_options)
    key_list.add_argument("--tenant", required=True, metavar="SLUG")
    revoke = leaf(key_actions, "revoke", "revoke an API key at once", storage_options, changes=True)
    revoke.add_argument("--tenant", required=True, metavar="SLUG")
    revoke.add_argument("key", metavar="KEY", help="the key's id or prefix (as listed)")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Context:
    args: argparse.Namespace
    tenant: Tenant
    users: UserStore
    keys: ApiKeyStore
    actor: Actor

    @property
    def json(self) -> bool:
        return bool(self.args.json)


async def run(args: argparse.Namespace, config: Config) -> int | None:
    """Run the command if it is one of ours; None otherwise."""
    if getattr(args, "command", None) not in COMMANDS:
        return None
    try:
        async with open_storage(config) as storage:
            audit = AuditLog()
            context = _Context(
                args=args,
                tenant=await find_tenant(storage.pool, args.tenant),
                users=UserStore(
                    storage.pool, audit, passwords=Passwords(), limiter=LoginLimiter(storage.pool)
                ),
                keys=ApiKeyStore(storage.pool, audit),
                actor=actor_of(args),
            )
            return await _HANDLERS[(args.command, args.action)](context)
    except NotFoundError as exc:
        return fail(str(exc), EXIT_NOT_FOUND)
    except ConflictError as exc:
        return fail(str(exc), EXIT_FAILURE)
    except ValueError as exc:
        return fail(str(exc), EXIT_USAGE)
    except CatalogueError as exc:
        return fail(str(exc), EXIT_FAILURE)


# -- users --------------------------------------------------------------------------------------------------------
async def _users_create(ctx: _Context) -> int:
    a = ctx.args
    user, password = await ctx.users.create(ctx.tenant.id, a.email, Role(a.role), ctx.actor)
    if ctx.json:
        emit({"user": user.to_json(), "one_time_password": password})
        return EXIT_OK
    print(f"created user {user.email} ({user.role.value}) in tenant {ctx.tenant.slug}, id {user.id}")
    print(f"one-time password: {password}")
    print("(shown once: the user sets a new password at first login)")
    return EXIT_OK


async def _users_list(ctx: _Context) -> int:
    users = await ctx.users.list(ctx.tenant.id)
    if ctx.json:
        emit([user.to_json() for user in users])
        return EXIT_OK
    print(f"{'EMAIL':<36} {'ROLE':<11} {'STATE':<16} LAST LOGIN (UTC)")
    for user in users:
        print(f"{user.email:<36} {user.role.value:<11} {_state(user):<16} {_when(user.last_login_at)}")
    return EXIT_OK


async def _users_set_role(ctx: _Context) -> int:
    user = await ctx.users.find(ctx.tenant.id, ctx.args.email)
    changed = await ctx.users.set_role(ctx.tenant.id, user.id, Role(ctx.args.role), ctx.actor)
    if ctx.json:
        emit(changed.to_json())
    else:
        print(f"{changed.email}: {user.role.value} → {changed.role.value}")
    return EXIT_OK


async def _users_disable(ctx: _Context) -> int:
    user = await ctx.users.find(ctx.tenant.id, ctx.args.email)
    disabled = await ctx.users.disable(ctx.tenant.id, user.id, ctx.actor)
    if ctx.json:
        emit(disabled.to_json())
    else:
        print(f"disabled user {disabled.email} in tenant {ctx.tenant.slug}; their sessions have ended")
    return EXIT_OK


def _state(user: User) -> str:
    if not user.active:
        return "disabled"
    return "must set password" if user.must_change_password else "active"


# -- API keys -----------------------------------------------------------------------------------------------------
async def _keys_create(ctx: _Context) -> int:
    a = ctx.args
    key, secret = await ctx.keys.create(ctx.tenant.id, a.name, Role(a.role), ctx.actor)
    if ctx.json:
        emit({"api_key": key.to_json(), "secret": secret})
        return EXIT_OK
    print(f"created API key {key.name!r} ({key.role.value}) in tenant {ctx.tenant.slug}, id {key.id}")
    print(f"key: {secret}")
    print("(shown once: send it as 'Authorization: Bearer <key>')")
    return EXIT_OK


async def _keys_list(ctx: _Context) -> int:
    keys = await ctx.keys.list(ctx.tenant.id)
    if ctx.json:
        emit([key.to_json() for key in keys])
        return EXIT_OK
    print(f"{'PREFIX':<15} {'NAME':<28} {'ROLE':<11} {'STATE':<8} {'CREATED (UTC)':<20} LAST USED (UTC)")
    for key in keys:
        state = "active" if key.active else "revoked"
        print(
            f"htk_{key.prefix}_… {key.name:<28} {key.role.value:<11} {state:<8} "
            f"{_when(key.created_at):<20} {_when(key.last_used_at)}"
        )
    return EXIT_OK


async def _keys_revoke(ctx: _Context) -> int:
    key: ApiKey = await ctx.keys.find(ctx.tenant.id, ctx.args.key)
    revoked = await ctx.keys.revoke(ctx.tenant.id, key.id, ctx.actor)
    if ctx.json:
        emit(revoked.to_json())
    else:
        print(f"revoked API key {revoked.name!r} (htk_{revoked.prefix}_…) of tenant {ctx.tenant.slug}")
    return EXIT_OK


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


_HANDLERS: dict[tuple[str, str], Callable[[_Context], Awaitable[int]]] = {
    ("users", "create"): _users_create,
    ("users", "list"): _users_list,
    ("users", "set-role"): _users_set_role,
    ("users", "disable"): _users_disable,
    ("api-keys", "create"): _keys_create,
    ("api-keys", "list"): _keys_list,
    ("api-keys", "revoke"): _keys_revoke,
}
