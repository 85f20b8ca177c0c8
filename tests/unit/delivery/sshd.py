"""A real OpenSSH sshd on loopback for the SFTP delivery tests, with nothing of the host system touched.

sshd runs as root (the test user) in a private mount namespace (``unshare --mount``) where a copy of
``/etc/passwd`` and ``/etc/shadow`` with one more account is bind-mounted over the real ones, and ``/run`` is a
fresh tmpfs for sshd's privilege-separation directory. The account, ``recsftp``, has uid 0 (the files it writes
belong to the test) and a known password, so both key and password logins are real logins checked by sshd
itself (``UsePAM no``). The host key, the client key and ``authorized_keys`` are generated per server; the
configuration allows only the ``internal-sftp`` subsystem's use that the tests make of it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from .daemons import descendants, wait_for_greeting

__all__ = ["SSHD", "USER", "USER_PASSWORD", "Sshd", "keygen", "running_sshd"]

SSHD = Path("/usr/sbin/sshd")
USER = "recsftp"
USER_PASSWORD = "Ny1tott-Kapu-2026"


@dataclass(slots=True)
class Sshd:
    root: Path  # configuration, keys, logs
    home: Path  # the account's home: uploads land under it
    port: int
    host_key: str  # the OpenSSH public key line to pin
    client_key: str  # the private key authorized for USER (OpenSSH format)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> str:
        path = self.root / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        if self.process is not None:
            raise RuntimeError("sshd is running already")
        script = (
            "set -e; mount -t tmpfs -o mode=0755 tmpfs /run; mkdir -m 0755 /run/sshd; "
            f"mount --bind {self.root}/passwd /etc/passwd; mount --bind {self.root}/shadow /etc/shadow; "
            f"exec {SSHD} -D -e -f {self.root}/sshd_config"
        )
        with (self.root / "sshd.log").open("ab") as log:
            self.process = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_listening()

    def stop(self) -> None:
        """Stop the server (SIGTERM, as a file server being shut down); a session in progress is cut off."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        """``kill -9`` of the server and every session it serves, as a crash or a pulled plug would. (The
        session processes run in sessions of their own, sshd's setsid(): they are found by parentage.)"""
        if self.process is None:
            return
        doomed = [self.process.pid, *descendants(self.process.pid)]
        for pid in doomed:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def files(self, directory: str = "incoming") -> dict[str, bytes]:
        """What lies in ``directory`` of the account's home now, by name."""
        folder = self.home / directory
        if not folder.is_dir():
            return {}
        return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}

    def _wait_listening(self) -> None:
        assert self.process is not None
        wait_for_greeting(self.process, self.port, b"SSH-", name="sshd", output=lambda: self.log)


def keygen(path: Path, comment: str = "") -> str:
    """A new ed25519 key pair at ``path`` / ``path.pub``; returns the public key line without the comment."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return " ".join(path.with_name(path.name + ".pub").read_text().split()[:2])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_sshd() -> Iterator[Sshd]:
    if not SSHD.exists():
        raise RuntimeError("OpenSSH's sshd is not installed: run `bash tests/system-packages.sh`")
    root = Path(tempfile.mkdtemp(prefix="hangtar-sshd-"))
    try:
        root.chmod(0o755)
        home = root / "home"
        home.mkdir(mode=0o755)
        host_key = keygen(root / "host_ed25519", "files.example.hu")
        keygen(root / "client_ed25519", "hangtar@recorder")
        client_key = (root / "client_ed25519").read_text()
        (root / "authorized_keys").write_text((root / "client_ed25519.pub").read_text())
        digest = (
            subprocess.run(
                ["openssl", "passwd", "-6", "-stdin"],
                input=USER_PASSWORD.encode(),
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
        )
        (root / "passwd").write_text(
            Path("/etc/passwd").read_text() + f"{USER}:x:0:0:SFTP test:{home}:/bin/sh\n"
        )
        (root / "shadow").write_text(
            Path("/etc/shadow").read_text() + f"{USER}:{digest}:20000:0:99999:7:::\n"
        )
        (root / "shadow").chmod(0o600)
        port = _free_port()
        (root / "sshd_config").write_text(
            f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {root}/host_ed25519
PidFile {root}/sshd.pid
AuthorizedKeysFile {root}/authorized_keys
AllowUsers {USER}
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding no
X11Forwarding no
MaxStartups 200
MaxSessions 64
Subsystem sftp internal-sftp
LogLevel VERBOSE
"""
        )
        server = Sshd(root=root, home=home, port=port, host_key=host_key, client_key=client_key)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        with suppress(OSError):
            shutil.rmtree(root)
