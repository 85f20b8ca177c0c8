"""SIP over TLS (RFC 3261 §26.2, RFC 5630 §3): the listener's TLS context and its certificate.

The operator's certificate (chain) and key come from ``[tls] certificate`` / ``[tls] key`` (PEM). Without them a
self-signed RSA pair is generated once under ``<data_dir>/tls/`` (key file mode 0600) and reused on later starts
until it expires; its SHA-256 fingerprint is logged and announced so that an SBC can pin it. Delete the directory
to get a new pair (for instance after the advertised address changed: the pair names it).

The context accepts TLS 1.2 and 1.3 only, forward-secret key exchange only, AEAD suites first; the CBC suites
with ECDHE stay for SBCs whose TLS 1.2 stack predates GCM. SRCs are not asked for a client certificate.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .config import Config

__all__ = [
    "TlsSetup",
    "TlsSetupError",
    "client_context",
    "fingerprint",
    "load_tls",
    "self_signed_pair",
    "server_context",
]

log = logging.getLogger(__name__)

CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES:!aNULL:!eNULL:!MD5:!DSS:!RC4:!3DES"
SELF_SIGNED_DAYS = 825
CERT_FILE, KEY_FILE = "cert.pem", "key.pem"
_ALWAYS_NAMED = ("localhost", "127.0.0.1", "::1")


class TlsSetupError(OSError):
    """The TLS listener cannot be set up; the message names the setting or file at fault."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsSetup:
    """The listener's context and what an operator needs to know about its certificate."""

    context: ssl.SSLContext
    certificate: Path
    key: Path
    fingerprint: str  # SHA-256 of the leaf certificate (DER), colon-separated hex
    self_signed: bool
    not_after: datetime  # when the leaf certificate expires (UTC)


def load_tls(config: Config, *, now: datetime) -> TlsSetup:
    """The TLS setup for ``config``: its certificate and key, or the self-signed pair under the data dir."""
    now = _utc(now)
    certificate, key = config.tls_cert_path, config.tls_key_path
    self_signed = certificate is None or key is None
    if certificate is None or key is None:
        hosts = [config.advertised_host, config.sip_host, socket.gethostname()]
        certificate, key = self_signed_pair(config.data_dir / "tls", hosts=hosts, now=now)
    pem = _read(certificate, "tls certificate")
    _read(key, "tls key")
    try:
        leaf = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise TlsSetupError(f"tls certificate {certificate} is not a PEM certificate") from None
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        log.warning(
            "TLS certificate %s is not valid now (valid %s to %s): SRCs that check it will refuse to connect",
            certificate,
            leaf.not_valid_before_utc.isoformat(),
            leaf.not_valid_after_utc.isoformat(),
        )
    if not self_signed and key.stat().st_mode & 0o077:
        log.warning("TLS key %s can be read by other users; restrict it to mode 0600", key)
    setup = TlsSetup(
        context=server_context(certificate, key),
        certificate=certificate,
        key=key,
        fingerprint=fingerprint(pem),
        self_signed=self_signed,
        not_after=leaf.not_valid_after_utc,
    )
    kind = "self-signed certificate" if self_signed else "certificate"
    log.info("SIP over TLS uses the %s %s (SHA-256 %s)", kind, certificate, setup.fingerprint)
    return setup


def server_context(certificate: Path, key: Path) -> ssl.SSLContext:
    """A server context for SIP over TLS with the given PEM certificate (chain) and private key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    try:
        context.load_cert_chain(certificate, key)
    except ssl.SSLError as exc:
        raise TlsSetupError(
            f"tls certificate {certificate} and tls key {key} are not a usable PEM pair: {exc.reason or exc}"
        ) from None
    except OSError as exc:
        raise TlsSetupError(f"cannot read tls certificate {certificate} or key {key}: {exc}") from None
    return context


def client_context(cafile: Path | None = None) -> ssl.SSLContext:
    """For connections we open to an SRC (an in-dialog request after its connection closed, RFC 3261 §18.1.1).

    The chain is checked against the system's CAs (or ``cafile``); the name is not, since we connect to the
    address in the SRC's Contact without DNS.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.check_hostname = False
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def self_signed_pair(directory: Path, *, hosts: Iterable[str], now: datetime) -> tuple[Path, Path]:
    """``directory``/cert.pem and key.pem: reused while both exist and the certificate is valid, else made anew."""
    now = _utc(now)
    certificate, key = directory / CERT_FILE, directory / KEY_FILE
    if certificate.is_file() and key.is_file():
        try:
            existing = x509.load_pem_x509_certificate(certificate.read_bytes())
        except (OSError, ValueError) as exc:
            log.warning(
                "self-signed TLS certificate %s is unreadable (%s); making a new pair", certificate, exc
            )
        else:
            if existing.not_valid_after_utc > now + timedelta(days=1):
                return certificate, key
            log.warning("self-signed TLS certificate %s has expired; making a new pair", certificate)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # RSA: every SBC takes it
    names = _subject_alt_names(hosts)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Hangtar SRS {names[0].value}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(private_key.public_key()), critical=False)
        .sign(private_key, hashes.SHA256())
    )
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(key, key_pem, 0o600)
    _write(certificate, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    log.info(
        "made a self-signed TLS certificate %s for %s", certificate, ", ".join(str(n.value) for n in names)
    )
    return certificate, key


def fingerprint(certificate_pem: bytes) -> str:
    """SHA-256 of the first certificate in ``certificate_pem``, as SBCs show it: ``AB:CD:…``."""
    digest = x509.load_pem_x509_certificate(certificate_pem).fingerprint(hashes.SHA256())
    return ":".join(f"{octet:02X}" for octet in digest)


def _subject_alt_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in (*hosts, *_ALWAYS_NAMED):
        host = host.strip().strip("[]")
        if not host or host in ("0.0.0.0", "::"):  # noqa: S104 - wildcards name no host
            continue
        name: x509.GeneralName
        try:
            name = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            try:
                name = x509.DNSName(host.encode("idna").decode("ascii").lower())
            except UnicodeError:
                continue
        if name not in names:
            names.append(name)
    return names


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsSetupError(f"cannot read {setting} {path}: {exc.strerror or exc}") from None


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write through a temporary file created with ``mode``, so a key is never readable by others, not even briefly."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
