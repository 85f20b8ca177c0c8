"""One FTPS connection (the standard library's ``ftplib.FTP_TLS``), blocking: used from a worker thread.

:meth:`FtpsClient.open` logs in the only way this product allows, and classifies each way it can fail:

1. TCP to the server and its ``220`` greeting;
2. ``AUTH TLS`` and the TLS handshake (RFC 4217 §4), the certificate verified against the system's trust or the
   target's own CA certificates, and its name against the target's host (:func:`tls_context`). A server that
   does not offer TLS, or a certificate that does not verify, ends it here: no password has been sent;
3. ``USER``/``PASS`` inside TLS, then ``PBSZ 0`` and ``PROT P`` (RFC 4217 §9, §8: data connections encrypted
   too) and ``TYPE I`` (binary: ``SIZE`` counts octets, RFC 3659 §4).

Data connections resume the control connection's TLS session: vsftpd (``require_ssl_reuse``, its default),
FileZilla Server and others refuse one that does not, so that nobody else can connect to the passive port in
our place. Where the server offers ``HASH`` with SHA-256 (draft-bryan-ftpext-hash-02) it is used to check
what it stored; otherwise size alone, and a file is read back when it must be compared.
"""

from __future__ import annotations

import contextlib
import ftplib
import hashlib
import socket
import ssl
from collections.abc import Mapping
from typing import Any, Protocol

from .transport import TransportError

__all__ = ["FtpsClient", "Readable", "hash_algorithm", "parse_features", "parse_hash_reply", "tls_context"]


def tls_context(settings: Mapping[str, Any]) -> ssl.SSLContext:
    """Certificates verified and the host name checked (``check_hostname``), TLS 1.2 or later. The trust is the
    target's ``ca_certificates`` (PEM text) or ``ca_file`` if it has one, else the system's. A certificate the
    target names is an anchor even if a CA issued it (partial chains): the server's own certificate may be given
    in place of its CA's, like a pinned key."""
    pem, path = settings.get("ca_certificates"), settings.get("ca_file")
    try:
        if pem:
            context = ssl.create_default_context(cadata=str(pem))
        elif path:
            context = ssl.create_default_context(cafile=str(path))
        else:
            context = ssl.create_default_context()
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise TransportError(
            f"the target's CA certificates cannot be loaded: {exc}", retryable=False
        ) from None
    if pem or path:
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Ftp(ftplib.FTP_TLS):
    """``FTP_TLS`` whose data connections are always TLS (only used after ``PROT P``) resuming the control
    connection's session, and whose current data connection can be shut down from another thread (an attempt
    cut short)."""

    def __init__(self, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(context=context, timeout=timeout)
        self.data: socket.socket | None = None

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)  # noqa: S321 - wrapped in TLS at once
        session = self.sock.session if isinstance(self.sock, ssl.SSLSocket) else None
        try:
            secured = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        except BaseException:
            conn.close()
            raise
        self.data = secured
        return secured, size


class FtpsClient:
    """A logged-in FTPS connection with ``PROT P``; every method blocks (call it from a thread)."""

    def __init__(self, ftp: _Ftp, *, sha256: bool) -> None:
        self._ftp = ftp
        self._hash = sha256  # the server's HASH computes SHA-256
        self.directories: set[str] = set()  # made (or found) on this connection

    @property
    def offers_hash(self) -> bool:
        return self._hash

    @classmethod
    def open(
        cls,
        settings: Mapping[str, Any],
        password: str,
        *,
        timeout: float,
    ) -> FtpsClient:
        host, port, user = str(settings["host"]), int(settings["port"]), str(settings["username"])
        where = f"{host}:{port}"
        ftp = _Ftp(tls_context(settings), timeout)
        try:
            _connect(ftp, host, port, where)
            _secure(ftp, where)
            _login(ftp, user, password, where)
            sha256 = _select_sha256(ftp)
        except BaseException:
            _close_quietly(ftp)
            raise
        return cls(ftp, sha256=sha256)

    # -- files: paths relative to the login directory, or absolute --
    def size(self, path: str) -> int | None:
        """Octets in the file, or None when there is none (``SIZE``'s 550)."""
        try:
            return self._ftp.size(path)
        except ftplib.error_perm as exc:
            if str(exc).startswith("550"):
                return None
            raise

    def makedirs(self, directory: str) -> None:
        """Each missing directory of ``directory`` made (``MKD``); one that exists answers 550, ignored: a
        directory that truly cannot be used fails the upload with the server's reason."""
        if directory in self.directories or directory in ("", ".", "/"):
            return
        parts = directory.split("/")
        for end in range(1, len(parts) + 1):
            prefix = "/".join(parts[:end])
            if prefix in ("", "."):
                continue
            with contextlib.suppress(ftplib.error_perm):
                self._ftp.mkd(prefix)
        self.directories.add(directory)

    def store(self, path: str, source: Readable, chunk: int) -> None:
        """``STOR``: the whole of ``source`` to ``path``, replacing what is there."""
        try:
            self._ftp.storbinary(f"STOR {path}", source, blocksize=chunk)
        finally:
            self._ftp.data = None

    def sha256_of(self, path: str, chunk: int) -> str:
        """The file's SHA-256: the server's ``HASH`` if it offers one, else read back (``RETR``)."""
        if self._hash:
            stated = parse_hash_reply(self._ftp.sendcmd(f"HASH {path}"))
            if stated is not None:
                return stated
        digest = hashlib.sha256()
        try:
            self._ftp.retrbinary(f"RETR {path}", digest.update, blocksize=chunk)
        finally:
            self._ftp.data = None
        return digest.hexdigest()

    def delete_if_present(self, path: str) -> None:
        with contextlib.suppress(ftplib.error_perm):  # 550: none there (a real refusal shows at STOR)
            self._ftp.delete(path)

    def rename(self, source: str, target: str, *, replace: bool = False) -> None:
        """``RNFR``/``RNTO``. Most servers replace an existing target (POSIX rename); with ``replace`` one that
        refuses gets the target deleted first and is asked again."""
        try:
            self._ftp.rename(source, target)
        except ftplib.error_perm:
            if not replace:
                raise
            self.delete_if_present(target)
            self._ftp.rename(source, target)

    # -- the connection --
    def close(self) -> None:
        """``QUIT`` and close; never raises."""
        with contextlib.suppress(Exception):
            self._ftp.quit()
        _close_quietly(self._ftp)

    def discard(self) -> None:
        """From any thread, without waiting: cut the data and control connections (a call blocked on them in
        another thread fails at once instead of at its timeout) and close them; never raises."""
        for sock in (self._ftp.data, self._ftp.sock):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        _close_quietly(self._ftp)


def _connect(ftp: _Ftp, host: str, port: int, where: str) -> None:
    try:
        ftp.connect(host, port)
    except (OSError, EOFError, ftplib.Error) as exc:
        hint = (
            " (port 990 is implicit TLS; Hangtár speaks explicit TLS, usually on port 21)"
            if port == 990
            else ""
        )
        raise TransportError(
            f"cannot reach the FTPS server at {where}: {_reason(exc)}{hint}", retryable=True
        ) from exc


def _secure(ftp: _Ftp, where: str) -> None:
    """RFC 4217 §4: AUTH TLS, then the handshake; the certificate is checked before anything else is sent."""
    try:
        ftp.auth()
    except ssl.SSLCertVerificationError as exc:
        raise TransportError(
            f"the FTPS server at {where} presented a certificate that does not verify "
            f"({exc.verify_message or exc.reason}); nothing was sent, not even the login. If the subscriber's "
            "server has a certificate of its own CA or a self-signed one, give that certificate to the target "
            "(--ca-file); if it is for another name, use that name as the host; otherwise someone may be "
            "intercepting the connection",
            retryable=False,
        ) from None
    except ftplib.error_perm as exc:
        raise TransportError(
            f"the FTP server at {where} does not offer TLS (it answered AUTH TLS with {_reason(exc)!r}); plain "
            "FTP would send the password and the recordings in clear text (GDPR Art. 32), so nothing was sent. "
            "Ask the subscriber to enable explicit FTPS (AUTH TLS), or use an sftp target",
            retryable=False,
        ) from None
    except (OSError, EOFError, ftplib.Error) as exc:
        raise TransportError(
            f"the TLS handshake with {where} failed: {_reason(exc)}", retryable=True
        ) from exc


def _login(ftp: _Ftp, user: str, password: str, where: str) -> None:
    try:
        ftp.login(user, password, secure=True)
    except ftplib.error_perm as exc:
        raise TransportError(
            f"the FTPS server at {where} refused the login of {user!r} ({_reason(exc)}): check the target's "
            "password",
            retryable=False,
        ) from None
    except (OSError, EOFError, ftplib.Error) as exc:
        raise TransportError(f"logging in to {where} failed: {_reason(exc)}", retryable=True) from exc
    try:
        ftp.prot_p()  # PBSZ 0, PROT P
    except ftplib.error_perm as exc:
        raise TransportError(
            f"the FTPS server at {where} will not encrypt data connections (PROT P: {_reason(exc)}); the "
            "recordings are not sent in clear text",
            retryable=False,
        ) from None
    ftp.voidcmd("TYPE I")


def _select_sha256(ftp: _Ftp) -> bool:
    """Whether ``HASH`` computes SHA-256 on this connection, selecting it (``OPTS HASH``) where offered."""
    try:
        offered = hash_algorithm(parse_features(ftp.sendcmd("FEAT")))
    except ftplib.error_perm:  # FEAT is optional (RFC 2389)
        return False
    if offered is None:
        return False
    if offered:
        return True
    try:
        ftp.sendcmd("OPTS HASH SHA-256")
    except ftplib.error_perm:
        return False
    return True


def parse_features(reply: str) -> frozenset[str]:
    """The ``FEAT`` reply (RFC 2389 §3.2) as its feature lines, upper-cased: ``{"SIZE", "HASH SHA-256*;MD5"}``."""
    lines = reply.splitlines()
    return frozenset(line.strip().upper() for line in lines[1:-1] if line.startswith(" ") and line.strip())


def hash_algorithm(features: frozenset[str]) -> bool | None:
    """Whether the server's ``HASH`` (draft-bryan-ftpext-hash-02 §3) computes SHA-256 now (True: it is the
    algorithm marked ``*``, the one in use), could (False: offered, ``OPTS HASH SHA-256`` selects it), or not at
    all (None)."""
    for feature in features:
        name, _, listed = feature.partition(" ")
        if name == "HASH":
            algorithms = listed.split(";")
            if "SHA-256*" in algorithms:
                return True
            return False if "SHA-256" in algorithms else None
    return None


def parse_hash_reply(reply: str) -> str | None:
    """``213 SHA-256 0-49 169cd2...4f filename`` (draft-bryan-ftpext-hash-02 §3.2) as the hex digest; None for
    any other reply (the caller reads the file back instead)."""
    parts = reply.split(" ", 4)
    if len(parts) < 4 or parts[0] != "213" or parts[1].upper() != "SHA-256":
        return None
    digest = parts[3].lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        return None
    return digest


def _close_quietly(ftp: ftplib.FTP) -> None:
    with contextlib.suppress(Exception):
        ftp.close()


def _reason(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__
