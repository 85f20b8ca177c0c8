"""What the test servers (sshd, vsftpd) share: waiting until a daemon greets, and finding its children."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["descendants", "wait_for_greeting"]


def wait_for_greeting(
    process: subprocess.Popen[bytes] | subprocess.Popen[str],
    port: int,
    greeting: bytes,
    *,
    name: str,
    output: Callable[[], str],
    timeout: float = 10.0,
) -> None:
    """Poll ``127.0.0.1:port`` until the daemon sends its ``greeting`` (its banner: it serves);
    ``RuntimeError`` with ``output()`` if it exits or stays silent for ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{output()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as probe:
                probe.settimeout(2.0)
                if probe.recv(len(greeting)).startswith(greeting):
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} is not listening on {port}:\n{output()}") from None
            time.sleep(0.05)  # polling for the port, not waiting in its place


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (a daemon's per-connection children), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rfind(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found
