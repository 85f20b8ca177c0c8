"""What a cluster's `postmaster.pid` says, and whether the process it names is really that postmaster.

PostgreSQL writes `<pgdata>/postmaster.pid` while it starts (pid, data directory, start time, port, first
socket directory, listen address, shared memory key, status) and removes it on a clean shutdown. After a crash
the file stays behind. Its pid is then dead, or, after a reboot, reused by an unrelated process; PostgreSQL
cannot tell the latter from a live postmaster and refuses to start, so the caller must clear such a file.
A socket lock file (`.s.PGSQL.<port>.lock` in the socket directory) carries the same pid and the same risk.
"""

from __future__ import annotations

import contextlib
import enum
import os
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PostmasterInfo",
    "ProcessKind",
    "clear_stale_files",
    "probe_process",
    "read_postmaster_pid",
    "socket_accepts",
]

_PID_FILE = "postmaster.pid"
_LINES = 8  # pid, data dir, start time, port, socket dir, listen address, shared memory, status


class ProcessKind(enum.Enum):
    GONE = "gone"  # no such process, or a zombie
    POSTMASTER = "postmaster"  # a postgres process serving this data directory
    OTHER = "other"  # the pid belongs to something else: the pid file is stale


@dataclass(frozen=True, slots=True, kw_only=True)
class PostmasterInfo:
    pid: int
    port: int | None
    socket_dir: Path | None
    status: str | None  # "starting", "ready", "stopping", "standby"; None while the line is not written yet

    @classmethod
    def parse(cls, text: str) -> PostmasterInfo:
        """Parse the file's text; ValueError when even the pid line is unusable (PostgreSQL: "bogus data")."""
        lines = [line.strip() for line in text.splitlines()]
        lines += [""] * (_LINES - len(lines))
        pid = int(lines[0])  # ValueError on garbage, as intended
        if pid <= 0:
            raise ValueError(f"bogus pid {pid} in {_PID_FILE}")
        port = int(lines[3]) if lines[3].isdigit() else None
        return cls(
            pid=pid,
            port=port,
            socket_dir=Path(lines[4]) if lines[4] else None,
            status=lines[7] or None,
        )

    @property
    def socket_path(self) -> Path | None:
        if self.socket_dir is None or self.port is None:
            return None
        return self.socket_dir / f".s.PGSQL.{self.port}"

    @property
    def ready(self) -> bool:
        return self.status == "ready"


def read_postmaster_pid(pgdata: Path) -> PostmasterInfo | None:
    """None when there is no pid file; ValueError when it is garbled."""
    try:
        text = (pgdata / _PID_FILE).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    return PostmasterInfo.parse(text)


def probe_process(pid: int, pgdata: Path) -> ProcessKind:
    """Is `pid` a live postmaster for `pgdata`? Uses /proc where it exists, else only a signal-0 probe."""
    if pid == os.getpid():
        return ProcessKind.OTHER
    proc = Path("/proc") / str(pid)
    if not Path("/proc/self").exists():  # no procfs: existence is all we can learn
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return ProcessKind.GONE
        except PermissionError:
            return ProcessKind.POSTMASTER
        return ProcessKind.POSTMASTER
    try:
        stat = (proc / "stat").read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ProcessKind.GONE
    # "<pid> (<comm>) <state> ...": comm may itself hold parentheses, so split on the last one.
    comm = stat[stat.find("(") + 1 : stat.rfind(")")]
    state = stat[stat.rfind(")") + 2 : stat.rfind(")") + 3]
    if state in {"Z", "X"}:
        return ProcessKind.GONE
    if comm != "postgres":
        return ProcessKind.OTHER
    try:
        argv = (proc / "cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return ProcessKind.GONE
    except PermissionError:
        return ProcessKind.POSTMASTER
    # pg_ctl starts "postgres -D <pgdata> ..."; a postgres without our -D is another cluster's.
    if b"-D" in argv:
        index = argv.index(b"-D")
        if index + 1 < len(argv) and not _same_path(os.fsdecode(argv[index + 1]), pgdata):
            return ProcessKind.OTHER
    return ProcessKind.POSTMASTER


def socket_accepts(path: Path, timeout: float = 1.0) -> bool:
    """True when something listens on the Unix socket (a stale socket file refuses connections)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(os.fspath(path))
        except OSError:
            return False
    return True


def clear_stale_files(pgdata: Path, info: PostmasterInfo) -> None:
    """Remove a dead postmaster's pid file and, if it still names the same pid, its socket lock and socket."""
    (pgdata / _PID_FILE).unlink(missing_ok=True)
    socket_path = info.socket_path
    if socket_path is None:
        return
    lock = socket_path.with_name(socket_path.name + ".lock")
    try:
        owner = lock.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0].strip()
    except (FileNotFoundError, NotADirectoryError):
        return
    if owner == str(info.pid):
        lock.unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()


def _same_path(a: str, b: Path) -> bool:
    try:
        return Path(a).resolve() == b.resolve()
    except OSError:
        return False
