"""A delivery target's kind and settings, checked before anything is stored: pure rules, no I/O.

Kinds: ``sftp`` (SSH; key or password; the server's host key pinned), ``ftps`` (FTP over explicit TLS, the
certificate verified against the system's trust or the target's own ``ca_certificates``) and ``webhook`` (HTTPS
POST to a CRM). Plain FTP is refused with the reason (:class:`InsecureTargetError`): it sends the password and
the recordings in clear text, which GDPR Art. 32 does not allow for call recordings. An SFTP target without a
pinned host key is refused too: the first connection would otherwise trust whoever answers.

Settings hold nothing secret; the password, private key or webhook secret is passed apart and stored encrypted
(:mod:`storage.delivery_secrets`). File names come from a template over :data:`TEMPLATE_FIELDS`, which must
include ``{reference}`` so that two recordings never share a name.
"""

from __future__ import annotations

import base64
import binascii
import enum
import ipaddress
import re
import ssl
import string
import struct
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import LifecycleError

__all__ = [
    "AUDIO_FORMATS",
    "DEFAULT_NAME_TEMPLATE",
    "TEMPLATE_FIELDS",
    "InsecureTargetError",
    "TargetKind",
    "TargetSettingsError",
    "check_ca_certificates",
    "check_host_key",
    "check_settings",
    "settings_from_url",
]

TEMPLATE_FIELDS = ("date", "time", "reference", "caller", "callee", "direction")
DEFAULT_NAME_TEMPLATE = "{date}_{time}_{reference}"
AUDIO_FORMATS = ("flac", "wav", "opus", "mp3")
_HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-ed448",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*$")
_USERNAME = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._@-]{0,63}$")
_PLAIN_FTP = (
    "plain FTP sends the password and the recordings in clear text, which GDPR Art. 32 does not allow for call "
    "recordings: use an sftp target (SSH, host key pinned) or an ftps one (explicit TLS, certificate verified)"
)
_LOOPBACK_NAMES = ("localhost",)
_PEM_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END CERTIFICATE-----"
)
# url: where to POST; mode: link | inline; format: inline's audio format; name_template: inline's file name
_WEBHOOK_KEYS = ("url", "mode", "format", "name_template")


class InsecureTargetError(LifecycleError):
    """A destination that would move recordings or credentials unprotected (plain FTP, an unpinned host)."""


class TargetSettingsError(ValueError):
    """A target's settings are incomplete or malformed; the message says which and how."""


class TargetKind(enum.StrEnum):
    SFTP = "sftp"
    FTPS = "ftps"
    WEBHOOK = "webhook"

    @classmethod
    def parse(cls, text: str) -> TargetKind:
        name = text.strip().lower()
        if name == "ftp":
            raise InsecureTargetError(_PLAIN_FTP)
        try:
            return cls(name)
        except ValueError:
            raise TargetSettingsError(f"{text!r} is not a delivery kind (sftp, ftps, webhook)") from None


def check_settings(kind: TargetKind, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings completed with their defaults, or :class:`TargetSettingsError` /
    :class:`InsecureTargetError` saying what is wrong."""
    given = dict(settings)
    url = given.get("url")
    if isinstance(url, str) and url.strip().lower().startswith("ftp://"):
        raise InsecureTargetError(_PLAIN_FTP)
    if TargetKind(kind) is TargetKind.WEBHOOK:
        return _webhook(given)
    checked = _file_server(kind, given)
    if kind is TargetKind.SFTP:
        if not given.get("host_key"):
            raise InsecureTargetError(
                "an sftp target needs the server's host key pinned (settings.host_key: the OpenSSH public key "
                "line, e.g. from `ssh-keyscan -t ed25519 HOST`), so that no other server can receive the "
                "recordings in its place"
            )
        checked["host_key"] = check_host_key(str(given["host_key"]))
        if checked["auth"] not in ("key", "password"):
            raise TargetSettingsError("settings.auth is 'key' (a private key) or 'password'")
    else:
        if checked["auth"] != "password":
            raise TargetSettingsError("an ftps target logs in with a password (settings.auth 'password')")
        if given.get("ca_file") is not None and not isinstance(given["ca_file"], str):
            raise TargetSettingsError("settings.ca_file is the path of a PEM file of trusted certificates")
        checked["ca_file"] = given.get("ca_file")
        pem = given.get("ca_certificates")
        if pem is not None and checked["ca_file"] is not None:
            raise TargetSettingsError("give settings.ca_certificates or settings.ca_file, not both")
        checked["ca_certificates"] = None if pem is None else check_ca_certificates(pem)
    return checked


def check_ca_certificates(pem: Any) -> str:
    """PEM text of the certificates an ftps target trusts instead of the system's (the subscriber's own CA, or
    its server's self-signed certificate), checked to load; returned as the certificates alone, one after
    another. The hostname is still checked against the server's certificate."""
    if not isinstance(pem, str):
        raise TargetSettingsError("settings.ca_certificates is PEM text (-----BEGIN CERTIFICATE----- ...)")
    blocks = _PEM_CERTIFICATE.findall(pem)
    if not blocks:
        raise TargetSettingsError(
            "settings.ca_certificates holds no certificate: give the PEM text of the CA certificate "
            "(-----BEGIN CERTIFICATE----- ...), not a private key or a fingerprint"
        )
    text = "\n".join(blocks) + "\n"
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=text)
    except (ssl.SSLError, ValueError) as exc:
        raise TargetSettingsError(f"settings.ca_certificates does not load as certificates: {exc}") from None
    return text


def check_host_key(line: str) -> str:
    """An OpenSSH public key line (``ssh-ed25519 AAAA... [comment]``, as ``ssh-keyscan`` prints it without the
    host name) whose key blob names its own type; returned as ``type base64`` without the comment."""
    parts = line.split()
    if parts and parts[0] not in _HOST_KEY_TYPES and len(parts) >= 3 and parts[1] in _HOST_KEY_TYPES:
        parts = parts[1:]  # a known_hosts / ssh-keyscan line: "host type key"
    if len(parts) < 2 or parts[0] not in _HOST_KEY_TYPES:
        raise TargetSettingsError(
            f"the host key is an OpenSSH public key line starting with one of {', '.join(_HOST_KEY_TYPES)}"
        )
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        named = blob[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise TargetSettingsError("the host key's base64 part does not decode to an SSH public key") from None
    if named != parts[0]:
        raise TargetSettingsError(f"the host key says {parts[0]} but its key data is {named!r}")
    return f"{parts[0]} {parts[1]}"


def settings_from_url(url: str) -> tuple[TargetKind, dict[str, Any]]:
    """``sftp://user@host[:port][/dir]``, ``ftps://user@host[:port][/dir]`` or ``https://...`` (a webhook) as a
    kind and the settings it names; plain ``ftp://`` is :class:`InsecureTargetError`."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme == "ftp":
        raise InsecureTargetError(_PLAIN_FTP)
    if scheme in ("https", "http"):
        return TargetKind.WEBHOOK, {"url": url.strip()}
    if scheme not in ("sftp", "ftps"):
        raise TargetSettingsError(f"{url!r}: the scheme is sftp://, ftps:// or https://")
    if parts.password:
        raise TargetSettingsError("put no password in the URL: it is given apart and stored encrypted")
    if not parts.hostname or not parts.username:
        raise TargetSettingsError(f"{url!r} needs a user and a host: {scheme}://user@host/dir")
    settings: dict[str, Any] = {"host": parts.hostname, "username": unquote(parts.username)}
    if parts.port is not None:
        settings["port"] = parts.port
    directory = unquote(parts.path)
    if directory not in ("", "/"):
        settings["remote_dir"] = directory[3:] if directory.startswith("/~/") else directory
    return TargetKind(scheme), settings


def _file_server(kind: TargetKind, given: dict[str, Any]) -> dict[str, Any]:
    host = given.get("host")
    if not isinstance(host, str) or not _valid_host(host):
        raise TargetSettingsError("settings.host is the server's DNS name or IP address")
    default_port = 22 if kind is TargetKind.SFTP else 21
    port = given.get("port", default_port)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise TargetSettingsError("settings.port is a TCP port, 1-65535")
    username = given.get("username")
    if not isinstance(username, str) or not _USERNAME.match(username):
        raise TargetSettingsError("settings.username is the login name on the server")
    remote_dir = given.get("remote_dir", ".")
    if not isinstance(remote_dir, str) or not remote_dir or "\x00" in remote_dir:
        raise TargetSettingsError("settings.remote_dir is a directory on the server")
    if ".." in remote_dir.split("/"):
        raise TargetSettingsError("settings.remote_dir may not climb out with '..'")
    template = given.get("name_template", DEFAULT_NAME_TEMPLATE)
    _check_template(template)
    sidecar = given.get("sidecar", True)
    if not isinstance(sidecar, bool):
        raise TargetSettingsError("settings.sidecar is true or false")
    return {
        "host": host.lower(),
        "port": port,
        "username": username,
        "remote_dir": remote_dir.rstrip("/") or "/",
        "name_template": template,
        "format": _format(given.get("format")),
        "sidecar": sidecar,
        "auth": given.get("auth", "key" if kind is TargetKind.SFTP else "password"),
    }


def _webhook(given: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(_WEBHOOK_KEYS))
    if unknown:
        raise TargetSettingsError(
            f"a webhook target's settings are {', '.join(_WEBHOOK_KEYS)}; not {', '.join(unknown)} "
            "(its signing secret is given apart and stored encrypted)"
        )
    url = given.get("url")
    if not isinstance(url, str) or not url.strip():
        raise TargetSettingsError("settings.url is the HTTPS address the CRM receives recordings at")
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetSettingsError(f"{url!r} is not a URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.hostname or not _valid_host(parts.hostname):
        raise TargetSettingsError(f"{url!r} is not an https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise TargetSettingsError(
            "put no user or password in the webhook URL: requests are signed with the target's secret"
        )
    if parts.fragment or any(c.isspace() or ord(c) < 0x20 for c in url):
        raise TargetSettingsError(f"{url!r}: a webhook URL has no fragment, spaces or control characters")
    if port == 0:
        raise TargetSettingsError(f"{url!r}: the port is 1-65535")
    if scheme == "http" and not _loopback(parts.hostname):
        raise InsecureTargetError(
            "a webhook over plain http:// sends the recordings and their metadata in clear text (GDPR Art. 32): "
            "use https://. Plain http:// is only for a receiver on this host (localhost, 127.0.0.1, ::1)"
        )
    mode = given.get("mode", "link")
    if mode not in ("link", "inline"):
        raise TargetSettingsError("settings.mode is 'link' (a signed download URL) or 'inline' (multipart)")
    audio_format = _format(given.get("format"))
    if mode == "link" and audio_format is not None:
        raise TargetSettingsError(
            "a webhook in link mode serves the recording as stored: settings.format applies to inline mode only"
        )
    template = given.get("name_template", DEFAULT_NAME_TEMPLATE)
    _check_template(template)
    return {"url": url, "mode": mode, "format": audio_format, "name_template": template}


def _check_template(template: Any) -> None:
    if not isinstance(template, str) or not template.strip():
        raise TargetSettingsError(
            "settings.name_template is a file name template, e.g. " + DEFAULT_NAME_TEMPLATE
        )
    if "/" in template or "\\" in template or ".." in template or "\x00" in template:
        raise TargetSettingsError("settings.name_template names a file: no '/', '\\' or '..'")
    try:
        parsed = [
            (field, spec, conversion) for _, field, spec, conversion in string.Formatter().parse(template)
        ]
    except ValueError as exc:
        raise TargetSettingsError(f"settings.name_template: {exc}") from None
    fields = [field for field, _, _ in parsed if field is not None]
    if any(spec or conversion for field, spec, conversion in parsed if field is not None):
        raise TargetSettingsError("settings.name_template: write fields plainly, as {date}, without a format")
    unknown = sorted({field for field in fields if field not in TEMPLATE_FIELDS})
    if unknown:
        raise TargetSettingsError(
            f"settings.name_template: unknown field(s) {', '.join(unknown)}; "
            f"use {', '.join('{' + name + '}' for name in TEMPLATE_FIELDS)}"
        )
    if "reference" not in fields:
        raise TargetSettingsError(
            "settings.name_template must contain {reference}, so that two recordings never share a name"
        )


def _format(value: Any) -> str | None:
    if value is None:
        return None
    if value not in AUDIO_FORMATS:
        raise TargetSettingsError(f"settings.format is one of {', '.join(AUDIO_FORMATS)} (or absent)")
    return str(value)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOST.match(host))
    return True


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() in _LOOPBACK_NAMES
