"""Operator commands to a running server through PostgreSQL LISTEN/NOTIFY, with a reply.

The CLI (another process, maybe another host) sends ``{"id", "command", ...}`` on ``hangtar_commands``; the server
that holds the call acts and answers ``{"id", "ok", "detail"}`` on ``hangtar_replies``. Servers that do not hold
the call stay silent, so a command reaches whichever node owns it without a cluster protocol of our own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]

__all__ = ["COMMANDS_CHANNEL", "REPLIES_CHANNEL", "CommandListener", "CommandReply", "send_command"]

log = logging.getLogger(__name__)

COMMANDS_CHANNEL = "hangtar_commands"
REPLIES_CHANNEL = "hangtar_replies"

# A handler returns a reply, or None when this node does not hold what the command is about.
Handler = Callable[[Mapping[str, Any]], Awaitable["CommandReply | None"]]


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandReply:
    ok: bool
    detail: str


async def send_command(
    dsn: str, command: str, *, wait: float = 10.0, **arguments: Any
) -> CommandReply | None:
    """Send a command and wait for the first reply; None when no server answered within ``wait`` seconds."""
    command_id = str(uuid.uuid4())
    replies: asyncio.Queue[CommandReply] = asyncio.Queue()

    def on_reply(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            data = json.loads(payload)
        except ValueError:
            return
        if data.get("id") == command_id:
            replies.put_nowait(CommandReply(ok=bool(data.get("ok")), detail=str(data.get("detail", ""))))

    conn = await asyncpg.connect(dsn)
    try:
        await conn.add_listener(REPLIES_CHANNEL, on_reply)
        payload = json.dumps({"id": command_id, "command": command, **arguments})
        await conn.execute("SELECT pg_notify($1, $2)", COMMANDS_CHANNEL, payload)
        try:
            return await asyncio.wait_for(replies.get(), wait)
        except TimeoutError:
            return None
    finally:
        await conn.close()


class CommandListener:
    """The server side: one dedicated connection listening for commands."""

    def __init__(self, dsn: str, handler: Handler) -> None:
        self._dsn = dsn
        self._handler = handler
        self._conn: Any = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._conn = await asyncpg.connect(self._dsn)
        await self._conn.add_listener(COMMANDS_CHANNEL, self._on_command)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    def _on_command(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            data = json.loads(payload)
        except ValueError:
            log.warning("ignored a malformed operator command")
            return
        if not isinstance(data, dict) or "id" not in data:
            return
        task = asyncio.get_running_loop().create_task(self._run(data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, data: dict[str, Any]) -> None:
        try:
            reply = await self._handler(data)
        except Exception as exc:
            log.exception("operator command %s failed", data.get("command"))
            reply = CommandReply(ok=False, detail=f"failed: {exc}")
        if reply is None or self._conn is None:
            return
        answer = json.dumps({"id": data["id"], "ok": reply.ok, "detail": reply.detail})
        await self._conn.execute("SELECT pg_notify($1, $2)", REPLIES_CHANNEL, answer)
