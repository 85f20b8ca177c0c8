"""A real vsftpd (Debian's) on loopback for the FTPS delivery tests, with nothing of the host system touched.

vsftpd runs in the foreground as root (the test user) in a private mount namespace (``unshare --mount``) where a
copy of ``/etc/passwd`` and ``/etc/shadow`` with one more account is bind-mounted over the real ones. The
account, ``recftp``, is an ordinary user (uid 64123, shell ``/bin/sh``: vsftpd's PAM service wants a shell from
``/etc/shells`` and refuses root) with a known password, checked by PAM itself. Its home, where uploads land, is
under a 0755 scratch directory it owns.

The configuration is what a careful subscriber runs: explicit TLS required for the login and for data
(``force_local_*_ssl``), TLS session reuse on data connections required (vsftpd's default), passive mode on a
private port range, every FTP command and reply logged (``log_ftp_protocol``: the tests read who said what).
``tls=None`` runs it without TLS at all, as a plain FTP server that Hangtár must refuse. ``seccomp_sandbox=NO``:
its sandbox kills the TLS handshake under this kernel.
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

from .certs import Issued
from .daemons import descendants, wait_for_greeting

__all__ = ["USER", "USER_PASSWORD", "VSFTPD", "Vsftpd", "running_vsftpd"]

VSFTPD = Path("/usr/sbin/vsftpd")
USER = "recftp"
USER_PASSWORD = "Oszi-Szel-2026"
UID = 64123
PASSIVE_PORTS = 16


@dataclass(slots=True)
class Vsftpd:
    root: Path  # configuration, certificate, log
    home: Path  # the account's home: uploads land under it
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> str:
        """vsftpd's log: each FTP command and reply (``PASS`` is logged as ``PASS <password>``)."""
        path = self.root / "vsftpd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def commands(self) -> list[str]:
        """The FTP commands clients sent, in order (verbs only): ``["AUTH", "USER", "PASS", ...]``."""
        found = []
        for line in self.log.splitlines():
            _, marker, rest = line.partition('FTP command: Client "127.0.0.1", "')
            if marker:
                found.append(rest.split(" ", 1)[0].rstrip('"').upper())
        return found

    def start(self) -> None:
        if self.process is not None:
            raise RuntimeError("vsftpd is running already")
        script = (
            f"set -e; mount --bind {self.root}/passwd /etc/passwd; mount --bind {self.root}/shadow /etc/shadow; "
            f"exec {VSFTPD} {self.root}/vsftpd.conf"
        )
        with (self.root / "stderr.log").open("ab") as output:
            self.process = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self._wait_listening()

    def stop(self) -> None:
        """The server and the sessions it serves gone (``kill -9``), as a file server switched off."""
        if self.process is None:
            return
        self._signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def freeze(self) -> None:
        """The server and its sessions stopped in their tracks (``SIGSTOP``): connections stay open, nothing
        answers, as a hung server or a dead network path. :meth:`stop` still ends it."""
        self._signal(signal.SIGSTOP)

    def _signal(self, number: signal.Signals) -> None:
        assert self.process is not None
        for pid in [self.process.pid, *descendants(self.process.pid)]:
            with suppress(ProcessLookupError):
                os.kill(pid, number)

    def files(self, directory: str = "incoming") -> dict[str, bytes]:
        """What lies in ``directory`` of the account's home now, by name."""
        folder = self.home / directory
        if not folder.is_dir():
            return {}
        return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}

    def _wait_listening(self) -> None:
        assert self.process is not None
        wait_for_greeting(
            self.process,
            self.port,
            b"220",
            name="vsftpd",
            output=lambda: (self.root / "stderr.log").read_text(errors="replace") + self.log,
        )


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive TCP ports free on 127.0.0.1 now."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + count > 65535:
            continue
        held = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return base
    raise RuntimeError("no block of free ports")


def _config(root: Path, port: int, passive: int, tls: Issued | None) -> str:
    lines = [
        "listen=YES",
        "listen_ipv6=NO",
        "listen_address=127.0.0.1",
        f"listen_port={port}",
        "background=NO",
        "anonymous_enable=NO",
        "local_enable=YES",
        "write_enable=YES",
        "local_umask=022",
        "chroot_local_user=NO",
        "pasv_enable=YES",
        f"pasv_min_port={passive}",
        f"pasv_max_port={passive + PASSIVE_PORTS - 1}",
        "pasv_address=127.0.0.1",
        "connect_from_port_20=NO",
        "seccomp_sandbox=NO",
        f"secure_chroot_dir={root}/empty",
        "pam_service_name=vsftpd",
        "xferlog_enable=YES",
        f"vsftpd_log_file={root}/vsftpd.log",
        "log_ftp_protocol=YES",
        "syslog_enable=NO",
        "use_localtime=NO",
    ]
    if tls is None:
        lines.append("ssl_enable=NO")
    else:
        lines += [
            "ssl_enable=YES",
            "allow_anon_ssl=NO",
            "force_local_logins_ssl=YES",
            "force_local_data_ssl=YES",
            "ssl_tlsv1=YES",
            "ssl_sslv2=NO",
            "ssl_sslv3=NO",
            "require_ssl_reuse=YES",
            "ssl_ciphers=HIGH",
            f"rsa_cert_file={root}/server.crt",
            f"rsa_private_key_file={root}/server.key",
        ]
    return "\n".join(lines) + "\n"


@contextmanager
def running_vsftpd(tls: Issued | None) -> Iterator[Vsftpd]:
    """vsftpd with ``tls`` as its certificate (TLS required), or without TLS (``None``)."""
    if not VSFTPD.exists():
        raise RuntimeError("vsftpd is not installed: run `bash tests/system-packages.sh`")
    root = Path(tempfile.mkdtemp(prefix="hangtar-vsftpd-"))
    try:
        root.chmod(0o755)
        home = root / "home"
        home.mkdir(mode=0o755)
        os.chown(home, UID, UID)
        (root / "empty").mkdir(mode=0o755)
        if tls is not None:
            (root / "server.crt").write_bytes(tls.certificate)
            (root / "server.key").write_bytes(tls.key)
            (root / "server.key").chmod(0o600)
        digest = subprocess.run(
            ["openssl", "passwd", "-6", "-stdin"],
            input=USER_PASSWORD.encode(),
            capture_output=True,
            check=True,
        ).stdout.decode()
        (root / "passwd").write_text(
            Path("/etc/passwd").read_text() + f"{USER}:x:{UID}:{UID}:FTPS test:{home}:/bin/sh\n"
        )
        (root / "shadow").write_text(
            Path("/etc/shadow").read_text() + f"{USER}:{digest.strip()}:20000:0:99999:7:::\n"
        )
        (root / "shadow").chmod(0o600)
        port = _free_ports(1)
        (root / "vsftpd.conf").write_text(_config(root, port, _free_ports(PASSIVE_PORTS), tls))
        server = Vsftpd(root=root, home=home, port=port)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        with suppress(OSError):
            shutil.rmtree(root)
