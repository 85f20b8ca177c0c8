"""Configuration: one TOML file, ``HANGTAR_*`` environment overrides, then command-line flags.

Precedence, lowest first: built-in defaults < TOML file < environment < CLI flags. Every value is validated once
into a frozen :class:`Config`; a bad value raises :class:`ConfigError` naming the source and the key.

TOML layout (all keys optional)::

    data_dir = "/var/lib/hangtar"
    [sip]       host, port, advertised_host, srtp = "allow"   # off | allow | require (UDP and TCP)
    [tls]       port = 5061 (0: off), certificate, key (PEM files; none: a self-signed pair under
                <data_dir>/tls), srtp = "allow"
    [rtp]       host, ports = "20000-39999"
    [http]      host, port, secure_cookies = true  # false only for a portal on plain HTTP other than localhost
                public_url = ""  # this node's API as seen from outside (https://rec.example.hu): CRM download links
    [database]  dsn                       # empty: embedded PostgreSQL under <data_dir>/pg
    [recording] reorder_window, sync_wait, no_media_timeout, shutdown_grace, max_calls,
                format = "flac"       # flac | wav | opus | mp3: renditions are made from the FLAC master
                keep_master = true    # false: the master is removed once the rendition is confirmed
    [transcode] workers = 1, opus_bitrate = 24000 (bit/s for two channels), opus_complexity = 1,
                mp3_bitrate = 32000
    [storage]   key_file              # tenant key-encryption keys; empty: <data_dir>/keys/keys.json
                recordings_dir        # recording files; empty: <data_dir>/recordings (several nodes: one
                                      # shared file system, mounted at the same path on every node)
    [s3]        bucket = ""           # empty: recordings stay on disk; set: uploaded to this S3 bucket on finalise
                endpoint = "", region = "us-east-1", access_key_id, secret_access_key, prefix = "",
                path_style = false, ca_bundle = ""   # see docs/storage-s3.md
    [retention] sweep_interval = 300  # seconds between retention sweeps on this node (0: never)
    [delivery]  interval = 60         # seconds between delivery passes (SFTP, CRM) on this node (0: never)
    [node]      name = ""             # this node in a shared catalogue; empty: the host name
                heartbeat = 10        # seconds between two updates of this node's row (storage.nodes)
    [gc]        freeze_interval = 2   # seconds between freezes of calls' objects out of full collections (0: off)
                idle_reclaim = 600    # with no call up: a full collection of frozen objects at most this often
                reclaim_interval = 3600  # and one at least this often, calls or not (siprec_server.gc_policy)
    [log]       level

Environment variables are ``HANGTAR_<SECTION>_<KEY>`` (``HANGTAR_SIP_PORT``, ``HANGTAR_RTP_PORTS``,
``HANGTAR_DATABASE_DSN``, ``HANGTAR_TLS_CERTIFICATE``) and ``HANGTAR_DATA_DIR`` for the top-level key.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from storage.s3_config import S3Settings

__all__ = ["SRTP_POLICIES", "Config", "ConfigError", "load_config"]

SRTP_POLICIES = ("off", "allow", "require")  # the values of siprec.crypto.SrtpPolicy


_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")  # storage.nodes.valid_node_name


def _host_label() -> str:
    label = socket.gethostname().split(".")[0]
    label = re.sub(r"[^A-Za-z0-9._-]", "-", label)[:63].lstrip("._-")
    return label or "hangtar"


class ConfigError(Exception):
    """A configuration value is missing, malformed or out of range."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    data_dir: Path = Path("data")
    sip_host: str = "0.0.0.0"  # noqa: S104 - an SRS listens for SBCs on every interface by default
    sip_port: int = 5060
    sip_advertised_host: str = ""  # address put in Contact and SDP; empty: derived from sip_host
    sip_srtp: str = "allow"  # SRTP policy for calls over UDP and TCP
    tls_port: int = 5061  # SIP over TLS; 0 turns the listener off
    tls_cert: str = ""  # PEM certificate (chain); empty with tls_key empty: self-signed under data_dir/tls
    tls_key: str = ""  # PEM private key
    tls_srtp: str = "allow"  # SRTP policy for calls over TLS
    rtp_host: str = ""  # empty: same as sip_host
    rtp_port_min: int = 20000
    rtp_port_max: int = 39999
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    secure_cookies: bool = True
    public_url: str = ""
    database_dsn: str = ""
    reorder_window: float = 0.3
    sync_wait: float = 4.0
    store_dtmf_digits: bool = False
    no_media_timeout: float = 10.0
    shutdown_grace: float = 30.0
    max_calls: int = 1000
    log_level: str = "INFO"
    # -- output formats (media.transcode, siprec_server.transcoder) --
    recording_format: str = "flac"  # default per recording; the receive path always writes the FLAC master
    keep_master: bool = True
    transcode_workers: int = 1
    opus_bitrate: int = 24000
    opus_complexity: int = 1
    mp3_bitrate: int = 32000
    # -- GDPR lifecycle (storage.keys, storage.sweeper) --
    key_file: str = ""
    recordings_path: str = ""  # [storage] recordings_dir; empty: <data_dir>/recordings
    sweep_interval: float = 300.0
    delivery_interval: float = 60.0
    # -- several nodes on one catalogue (storage.nodes) --
    node_name: str = ""
    node_heartbeat: float = 10.0
    # -- S3-compatible object store (storage.s3_store); no bucket: recordings stay on disk --
    s3_bucket: str = ""
    s3_endpoint: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = field(default="", repr=False)
    s3_prefix: str = ""
    s3_path_style: bool = False
    s3_ca_bundle: str = ""
    # -- the garbage collector (siprec_server.gc_policy) --
    gc_freeze_interval: float = 2.0
    gc_idle_reclaim: float = 600.0
    gc_reclaim_interval: float = 3600.0
    sources: tuple[str, ...] = field(default=(), compare=False)

    @property
    def media_host(self) -> str:
        return self.rtp_host or self.sip_host

    @property
    def advertised_host(self) -> str:
        """The address peers must use to reach us (SDP ``c=``, Contact)."""
        if self.sip_advertised_host:
            return self.sip_advertised_host
        host = self.media_host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104
            return _primary_address()
        return host

    @property
    def node(self) -> str:
        """This node's name in the catalogue: configured, else the host name up to its first dot."""
        return self.node_name or _host_label()

    @property
    def s3(self) -> S3Settings | None:
        """The object store's settings, None when no bucket is configured."""
        if not self.s3_bucket:
            return None
        return S3Settings(
            endpoint_url=self.s3_endpoint or None,
            bucket=self.s3_bucket,
            access_key_id=self.s3_access_key_id,
            secret_access_key=self.s3_secret_access_key,
            region=self.s3_region,
            prefix=self.s3_prefix,
            path_style=self.s3_path_style,
            ca_bundle=self.s3_ca_bundle or None,
        )

    @property
    def recordings_dir(self) -> Path:
        """Where recording files are kept: ``[storage] recordings_dir``, else ``<data_dir>/recordings``."""
        return (
            Path(self.recordings_path).expanduser() if self.recordings_path else self.data_dir / "recordings"
        )

    @property
    def key_file_path(self) -> Path:
        """The key file holding the tenants' key-encryption keys (storage.keyfile)."""
        return Path(self.key_file).expanduser() if self.key_file else self.data_dir / "keys" / "keys.json"

    @property
    def tls_cert_path(self) -> Path | None:
        return Path(self.tls_cert).expanduser() if self.tls_cert else None

    @property
    def tls_key_path(self) -> Path | None:
        return Path(self.tls_key).expanduser() if self.tls_key else None

    def srtp_policy(self, transport: str) -> str:
        """The SRTP policy of the listener a call came in on (``"udp"``, ``"tcp"`` or ``"tls"``)."""
        return self.tls_srtp if transport.lower() == "tls" else self.sip_srtp


# (section, key) in TOML/env -> Config attribute
_KEYS: dict[tuple[str, str], str] = {
    ("", "data_dir"): "data_dir",
    ("sip", "host"): "sip_host",
    ("sip", "port"): "sip_port",
    ("sip", "advertised_host"): "sip_advertised_host",
    ("sip", "srtp"): "sip_srtp",
    ("tls", "port"): "tls_port",
    ("tls", "certificate"): "tls_cert",
    ("tls", "key"): "tls_key",
    ("tls", "srtp"): "tls_srtp",
    ("rtp", "host"): "rtp_host",
    ("rtp", "ports"): "rtp_ports",
    ("http", "host"): "http_host",
    ("http", "port"): "http_port",
    ("http", "secure_cookies"): "secure_cookies",
    ("http", "public_url"): "public_url",
    ("database", "dsn"): "database_dsn",
    ("recording", "reorder_window"): "reorder_window",
    ("recording", "sync_wait"): "sync_wait",
    ("recording", "store_dtmf_digits"): "store_dtmf_digits",
    ("recording", "no_media_timeout"): "no_media_timeout",
    ("recording", "shutdown_grace"): "shutdown_grace",
    ("recording", "max_calls"): "max_calls",
    ("log", "level"): "log_level",
    ("recording", "format"): "recording_format",
    ("recording", "keep_master"): "keep_master",
    ("transcode", "workers"): "transcode_workers",
    ("transcode", "opus_bitrate"): "opus_bitrate",
    ("transcode", "opus_complexity"): "opus_complexity",
    ("transcode", "mp3_bitrate"): "mp3_bitrate",
    ("storage", "key_file"): "key_file",
    ("storage", "recordings_dir"): "recordings_path",
    ("retention", "sweep_interval"): "sweep_interval",
    ("delivery", "interval"): "delivery_interval",
    ("node", "name"): "node_name",
    ("node", "heartbeat"): "node_heartbeat",
    ("s3", "bucket"): "s3_bucket",
    ("s3", "endpoint"): "s3_endpoint",
    ("s3", "region"): "s3_region",
    ("s3", "access_key_id"): "s3_access_key_id",
    ("s3", "secret_access_key"): "s3_secret_access_key",
    ("s3", "prefix"): "s3_prefix",
    ("s3", "path_style"): "s3_path_style",
    ("s3", "ca_bundle"): "s3_ca_bundle",
    ("gc", "freeze_interval"): "gc_freeze_interval",
    ("gc", "idle_reclaim"): "gc_idle_reclaim",
    ("gc", "reclaim_interval"): "gc_reclaim_interval",
}


_LOWERCASE = frozenset({"sip_srtp", "tls_srtp", "recording_format"})
_TRUE, _FALSE = frozenset({"true", "yes", "on", "1"}), frozenset({"false", "no", "off", "0"})


def load_config(
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the effective configuration. ``overrides`` holds CLI flags by attribute name (None = not given)."""
    environ = os.environ if environ is None else environ
    values: dict[str, tuple[Any, str]] = {}
    sources: list[str] = ["defaults"]

    path = config_file
    if path is None and environ.get("HANGTAR_CONFIG"):
        path = Path(environ["HANGTAR_CONFIG"])
    if path is not None:
        values.update(_from_toml(path))
        sources.append(str(path))

    env_values = _from_environ(environ)
    if env_values:
        sources.append("environment")
    values.update(env_values)

    cli_values = {k: (v, f"--{k.replace('_', '-')}") for k, v in (overrides or {}).items() if v is not None}
    if cli_values:
        sources.append("command line")
    values.update(cli_values)

    config = Config(sources=tuple(sources))
    for attr, (raw, origin) in values.items():
        config = _apply(config, attr, raw, origin)
    _validate(config)
    return config


def _from_toml(path: Path) -> dict[str, tuple[Any, str]]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    values: dict[str, tuple[Any, str]] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                attr = _KEYS.get((key, sub))
                if attr is None:
                    raise ConfigError(f"{path}: unknown setting [{key}] {sub}")
                values[attr] = (subvalue, f"{path} [{key}] {sub}")
        else:
            attr = _KEYS.get(("", key))
            if attr is None:
                raise ConfigError(f"{path}: unknown setting {key}")
            values[attr] = (value, f"{path} {key}")
    return values


def _from_environ(environ: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    values: dict[str, tuple[Any, str]] = {}
    for (section, key), attr in _KEYS.items():
        name = "HANGTAR_" + (f"{section}_{key}" if section else key).upper()
        if name in environ:
            values[attr] = (environ[name], name)
    return values


def _apply(config: Config, attr: str, raw: Any, origin: str) -> Config:
    if attr == "rtp_ports":
        low, high = parse_port_range(raw, origin)
        return replace(config, rtp_port_min=low, rtp_port_max=high)
    kinds = {f.name: f.type for f in fields(Config)}
    kind = kinds[attr]
    try:
        value: Any
        if kind == "Path":
            value = Path(str(raw)).expanduser()
        elif kind == "int":
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            value = int(raw)
        elif kind == "bool":  # TOML booleans; "true"/"false", "yes"/"no", "1"/"0" from the environment
            text = str(raw).strip().lower()
            if not isinstance(raw, bool | str) or text not in _TRUE | _FALSE:
                raise ValueError
            value = text in _TRUE
        elif kind == "float":
            if isinstance(raw, bool):
                raise ValueError
            value = float(raw)
        else:
            if not isinstance(raw, str):
                raise ValueError
            value = raw.strip().lower() if attr in _LOWERCASE else raw.strip()
    except (TypeError, ValueError):
        raise ConfigError(f"{origin}: expected {kind.lower()}, got {raw!r}") from None
    return replace(config, **{attr: value})


def parse_port_range(raw: Any, origin: str = "rtp ports") -> tuple[int, int]:
    """``"20000-39999"`` → (20000, 39999); RTP takes even ports with RTCP on the odd one above (RFC 3550 §11)."""
    text = str(raw).strip()
    low_text, sep, high_text = text.partition("-")
    if not sep:
        raise ConfigError(f"{origin}: expected a range like 20000-39999, got {text!r}")
    try:
        low, high = int(low_text), int(high_text)
    except ValueError:
        raise ConfigError(f"{origin}: expected a range like 20000-39999, got {text!r}") from None
    if not 1024 <= low < high <= 65535:
        raise ConfigError(f"{origin}: range {text!r} must lie within 1024-65535 with the low end first")
    if high - low < 3:
        raise ConfigError(f"{origin}: range {text!r} holds no RTP/RTCP port pair")
    return low, high


def _validate(config: Config) -> None:
    for name in ("sip_port", "http_port"):
        port = getattr(config, name)
        if not 1 <= port <= 65535:
            raise ConfigError(f"{name.replace('_', ' ')} {port} is not a port number (1-65535)")
    for name in ("sip_host", "http_host", "rtp_host", "sip_advertised_host"):
        host = getattr(config, name)
        if host and not _valid_host(host):
            raise ConfigError(f"{name.replace('_', ' ')} {host!r} is not an IP address or host name")
    if config.sip_port in range(config.rtp_port_min, config.rtp_port_max + 1):
        raise ConfigError(f"sip port {config.sip_port} lies inside the RTP port range")
    _validate_tls(config)
    _validate_formats(config)
    if config.node_name and not _NODE_NAME.match(config.node_name):
        raise ConfigError(f"node name {config.node_name!r}: use letters, digits, '.', '_' or '-' (1-63)")
    if not 1 <= config.node_heartbeat <= 300:
        raise ConfigError("node heartbeat must be between 1 and 300 seconds")
    try:
        config.s3  # noqa: B018 (validates the [s3] settings)
    except ValueError as exc:
        raise ConfigError(f"[s3]: {exc}") from None
    for name in ("reorder_window", "no_media_timeout", "shutdown_grace"):
        if getattr(config, name) < 0:
            raise ConfigError(f"{name.replace('_', ' ')} must not be negative")
    if not 0.02 <= config.reorder_window <= 5:
        raise ConfigError("reorder window must lie between 0.02 and 5 seconds")
    if not 0 <= config.sync_wait <= 8:
        raise ConfigError("sync wait must lie between 0 and 8 seconds (audio reaches disk that much later)")
    if config.max_calls < 1:
        raise ConfigError("max calls must be at least 1")
    if config.sweep_interval != 0 and not 10 <= config.sweep_interval <= 86400:
        raise ConfigError("retention sweep_interval must be 0 (off) or between 10 and 86400 seconds")
    if config.delivery_interval != 0 and not 5 <= config.delivery_interval <= 86400:
        raise ConfigError("delivery interval must be 0 (off) or between 5 and 86400 seconds")
    if config.gc_freeze_interval != 0 and not 0.5 <= config.gc_freeze_interval <= 60:
        raise ConfigError("gc freeze_interval must be 0 (off) or between 0.5 and 60 seconds")
    if not 1 <= config.gc_idle_reclaim <= 86400:
        raise ConfigError("gc idle_reclaim must be between 1 and 86400 seconds")
    if not 60 <= config.gc_reclaim_interval <= 7 * 86400:
        raise ConfigError("gc reclaim_interval must be between 60 seconds and 7 days")
    if config.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"log level {config.log_level!r} is not one of DEBUG, INFO, WARNING, ERROR")


def _validate_tls(config: Config) -> None:
    for name in ("sip_srtp", "tls_srtp"):
        if getattr(config, name) not in SRTP_POLICIES:
            raise ConfigError(
                f"{name.replace('_', ' ')} {getattr(config, name)!r} is not one of {', '.join(SRTP_POLICIES)}"
            )
    if bool(config.tls_cert) != bool(config.tls_key):
        raise ConfigError(
            "tls certificate and tls key must be given together (or neither, for a self-signed pair)"
        )
    if config.tls_port == 0:
        return
    if not 1 <= config.tls_port <= 65535:
        raise ConfigError(f"tls port {config.tls_port} is not a port number (1-65535, or 0 to turn TLS off)")
    if config.tls_port in (config.sip_port, config.http_port):
        raise ConfigError(f"tls port {config.tls_port} is already the sip or http port")
    if config.tls_port in range(config.rtp_port_min, config.rtp_port_max + 1):
        raise ConfigError(f"tls port {config.tls_port} lies inside the RTP port range")


RECORDING_FORMATS = ("flac", "wav", "opus", "mp3")  # media.transcode.OutputFormat


def _validate_formats(config: Config) -> None:
    if config.recording_format not in RECORDING_FORMATS:
        raise ConfigError(
            f"recording format {config.recording_format!r} is not one of {', '.join(RECORDING_FORMATS)}"
        )
    if not 1 <= config.transcode_workers <= 64:
        raise ConfigError("transcode workers must lie between 1 and 64")
    if not 6000 <= config.opus_bitrate <= 512000:
        raise ConfigError(f"transcode opus_bitrate {config.opus_bitrate} is outside 6000-512000 bit/s")
    if not 0 <= config.opus_complexity <= 10:
        raise ConfigError(f"transcode opus_complexity {config.opus_complexity} is outside 0-10")
    if config.mp3_bitrate // 1000 not in _MP3_KBITS or config.mp3_bitrate % 1000:
        raise ConfigError(f"transcode mp3_bitrate {config.mp3_bitrate} is not an MP3 bit rate (e.g. 32000)")


_MP3_KBITS = frozenset((8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 192, 224, 256, 320))


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        labels = host.rstrip(".").split(".")
        return all(label and len(label) <= 63 and label.replace("-", "").isalnum() for label in labels)
    return True


def _primary_address() -> str:
    """A non-loopback IPv4 address of this host, for SDP when we listen on a wildcard address."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return "127.0.0.1"
    for info in infos:
        address = str(info[4][0])
        if not address.startswith("127."):
            return address
    return "127.0.0.1"
