"""``hangtar nodes``, ``hangtar drain``, ``hangtar recover``: the nodes sharing one catalogue.

- ``nodes`` lists every node that ever started on the catalogue: version, SIP address, started, last seen,
  draining, active calls, and whether it is presumed running (not stopped, seen within three heartbeats).
- ``drain [--node N]`` makes a running node refuse new calls (OPTIONS and INVITE answered 503, so a dispatcher
  probing with OPTIONS sends new calls to the other nodes) while its active calls go on; ``--resume`` undoes it.
  The command travels through PostgreSQL (storage.commands), so it works from any host; the node answers with
  its active call count. SIGTERM drains too, then stops once the calls have ended (or the grace period is over).
- ``recover --node N`` finishes the recordings a dead node left 'recording' as 'interrupted', from this host:
  with the audio when this host reaches that node's recording files (a shared data directory), else from what
  the catalogue knows. A node presumed running is refused: its calls may still be going on.

Exit codes: 0 ok, 1 failure (no node answered), 2 usage, 3 unknown node, 4 refused.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from storage.commands import send_command
from storage.errors import StorageError
from storage.nodes import NodeRegistry, NodeState

from .bootstrap import open_storage
from .cli_policies import EXIT_FAILURE, EXIT_NOT_FOUND, EXIT_OK, EXIT_REFUSED, StorageOptions, emit, fail
from .config import Config

__all__ = ["add_commands", "run"]

_REPLY_WAIT = 10.0


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], storage_options: StorageOptions
) -> None:
    listing = commands.add_parser("nodes", help="the nodes sharing this catalogue")
    storage_options(listing)
    listing.add_argument("--json", action="store_true")
    drain = commands.add_parser("drain", help="make a node refuse new calls while its active calls finish")
    storage_options(drain)
    drain.add_argument("--node", metavar="NAME", help="the node (default: this host's configured node name)")
    drain.add_argument("--resume", action="store_true", help="accept new calls again")
    recover = commands.add_parser(
        "recover", help="finish the recordings a dead node left unfinished, as interrupted"
    )
    storage_options(recover)
    recover.add_argument("--node", metavar="NAME", required=True, help="the dead node")


async def run(args: argparse.Namespace, config: Config) -> int | None:
    if args.command not in ("nodes", "drain", "recover"):
        return None
    try:
        async with open_storage(config) as storage:
            registry = NodeRegistry(storage.pool, clock=_now)
            if args.command == "nodes":
                return _print_nodes(args, await registry.list(), config.node_heartbeat)
            node = args.node or config.node
            state = await registry.get(node)
            if state is None:
                return fail(f"no node named {node!r} has started on this catalogue", EXIT_NOT_FOUND)
            if args.command == "drain":
                return await _drain(storage.dsn, state, resume=args.resume)
            if state.presumed_running(_now(), config.node_heartbeat):
                return fail(
                    f"node {node} is running (seen {_ago(state)} ago): it recovers its own recordings "
                    "when it restarts; stop it first",
                    EXIT_REFUSED,
                )
            from .sealing import RecordingCrypto, Sealer
            from .server import recover_unfinished

            crypto = RecordingCrypto.from_config(config, storage.pool)
            sealer = Sealer(crypto, journal=config.data_dir / "sealing", registry=CollectorRegistry())
            objects = storage.objects
            finished = await recover_unfinished(
                storage.catalogue, storage.blobs, sealer, node=node, upload=objects is not None
            )
            print(f"node {node}: {finished} recording(s) finished as interrupted")
            if objects is not None:
                # Its finished recordings waiting for the object store (files on the shared disk).
                from .uploader import Uploader

                report = await Uploader(storage.pool, objects, storage.blobs, node=node).run_once()
                print(
                    f"node {node}: {report.uploaded} recording(s) uploaded to the object store"
                    + (f", {report.failed} failed (try again)" if report.failed else "")
                )
                if report.failed:
                    return EXIT_FAILURE
            return EXIT_OK
    except StorageError as exc:
        return fail(str(exc), EXIT_FAILURE)


async def _drain(dsn: str, state: NodeState, *, resume: bool) -> int:
    command = "resume" if resume else "drain"
    reply = await send_command(dsn, command, wait=_REPLY_WAIT, node=state.name)
    if reply is None:
        return fail(
            f"node {state.name} did not answer within {_REPLY_WAIT:.0f} s: is it running?", EXIT_FAILURE
        )
    print(reply.detail)
    return EXIT_OK if reply.ok else EXIT_FAILURE


def _print_nodes(args: argparse.Namespace, nodes: list[NodeState], heartbeat: float) -> int:
    now = _now()
    rows: list[dict[str, Any]] = [
        {
            "name": n.name,
            "version": n.version,
            "sip_address": n.sip_address,
            "started_at": n.started_at.isoformat(),
            "seen_at": n.seen_at.isoformat(),
            "running": n.presumed_running(now, heartbeat),
            "draining": n.draining,
            "active_calls": n.active_calls,
            "stopped_at": n.stopped_at.isoformat() if n.stopped_at else None,
        }
        for n in nodes
    ]
    if args.json:
        emit(rows)
        return EXIT_OK
    if not rows:
        print("no node has started on this catalogue")
        return EXIT_OK
    print(f"{'NODE':<20} {'STATE':<10} {'CALLS':>5}  {'SEEN':>8}  {'SIP':<24} VERSION")
    for n, row in zip(nodes, rows, strict=True):
        if n.stopped_at is not None:
            state = "stopped"
        elif not row["running"]:
            state = "silent"
        else:
            state = "draining" if n.draining else "accepting"
        print(f"{n.name:<20} {state:<10} {n.active_calls:>5}  {_ago(n):>8}  {n.sip_address:<24} {n.version}")
    return EXIT_OK


def _ago(state: NodeState) -> str:
    seconds = max(0, int(state.silent_for(_now()).total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _now() -> datetime:
    return datetime.now(UTC)
