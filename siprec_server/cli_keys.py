"""``hangtar keys``: the tenant key-encryption keys in the key file — list, rotate, re-wrap.

``keys list`` shows every version of a tenant's key and how many live data keys each wraps; ``keys rotate``
adds a new version that wraps from then on (``--rewrap`` also moves the older data keys to it); ``keys rewrap``
moves them later. The server picks a rotation up without a restart (it re-reads the key file when it changes).
``--tenant T`` acts on that tenant's key, ``--system`` on the key of the calls no tenant claims; one is required.
Exit codes: 0 ok, 1 failure (including data keys that would not unwrap), 2 usage, 3 unknown tenant.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any
from uuid import UUID

from storage.errors import KeyUnavailableError, NotFoundError, StorageError
from storage.key_rotation import KeyRotation
from storage.keyfile import KeyFileProvider
from storage.tenant_lookup import find_tenant

from .bootstrap import open_storage
from .cli_policies import EXIT_FAILURE, EXIT_NOT_FOUND, EXIT_OK, StorageOptions, actor_of, emit, fail
from .config import Config

__all__ = ["add_commands", "run"]


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], storage_options: StorageOptions
) -> None:
    keys = commands.add_parser("keys", help="tenant key-encryption keys: list, rotate, re-wrap")
    actions = keys.add_subparsers(dest="action", required=True)
    for name, text in (
        ("list", "every version of the key and the data keys it wraps"),
        ("rotate", "add a new key version that wraps new recordings from now on"),
        ("rewrap", "move data keys wrapped by older versions to the current one"),
    ):
        parser = actions.add_parser(name, help=text)
        storage_options(parser)
        scope = parser.add_mutually_exclusive_group(required=True)
        scope.add_argument("--tenant", metavar="T", help="the tenant's key (slug or id)")
        scope.add_argument("--system", action="store_true", help="the key of the calls no tenant claimed")
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--as", dest="as_user", metavar="USER", help="who acts (default cli:<os user>)")
        if name == "rotate":
            parser.add_argument("--rewrap", action="store_true", help="also re-wrap the older data keys")
        if name != "list":
            parser.add_argument(
                "--batch", type=int, default=200, metavar="N", help="data keys per transaction"
            )


async def run(args: argparse.Namespace, config: Config) -> int | None:
    if args.command != "keys":
        return None
    try:
        async with open_storage(config) as storage:
            tenant_id = None if args.system else (await find_tenant(storage.pool, args.tenant)).id
            rotation = KeyRotation(storage.pool, KeyFileProvider(config.key_file_path))
            if args.action == "list":
                return _print_usage(args, await rotation.usage(tenant_id))
            actor = actor_of(args)
            report: dict[str, Any] = {}
            if args.action == "rotate":
                report["key_ref"] = await rotation.rotate(tenant_id, actor)
            if args.action == "rewrap" or args.rewrap:
                result = await rotation.rewrap(tenant_id, actor, batch=args.batch)
                report.update(result.to_json())
            return _print_report(args, tenant_id, report)
    except NotFoundError as exc:
        return fail(str(exc), EXIT_NOT_FOUND)
    except ValueError as exc:
        return fail(str(exc), 2)
    except (KeyUnavailableError, StorageError) as exc:
        return fail(str(exc), EXIT_FAILURE)


def _print_usage(args: argparse.Namespace, usage: list[Any]) -> int:
    if args.json:
        emit([version.to_json() for version in usage])
        return EXIT_OK
    if not usage:
        print("no key yet: one is made with the first recording")
        return EXIT_OK
    for version in usage:
        mark = "current" if version.current else ""
        print(f"{version.key_ref:<40} {version.data_keys:>8} data keys  {mark}".rstrip())
    return EXIT_OK


def _print_report(args: argparse.Namespace, tenant_id: UUID | None, report: dict[str, Any]) -> int:
    failed = report.get("failed", [])
    if args.json:
        emit(report)
    else:
        whose = f"tenant {tenant_id}" if tenant_id else "the unclaimed calls"
        if args.action == "rotate":
            print(f"{whose}: new key {report['key_ref']} wraps new recordings from now on")
        if "rewrapped" in report:
            print(f"{whose}: {report['rewrapped']} data keys re-wrapped under {report['key_ref']}")
        for recording in failed:
            print(f"recording {recording}: its data key does not unwrap; left as it was", file=sys.stderr)
    return EXIT_FAILURE if failed else EXIT_OK
