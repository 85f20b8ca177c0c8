"""Configuration precedence and validation: what an operator types must either work or say what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from siprec_server.config import Config, ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hangtar.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_match_the_documented_ones() -> None:
    config = load_config(environ={})
    assert (config.sip_port, config.http_port, config.http_host) == (5060, 8080, "127.0.0.1")
    assert (config.rtp_port_min, config.rtp_port_max) == (20000, 39999)
    assert config.database_dsn == ""
    assert config.data_dir == Path("data")


def test_toml_then_environment_then_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'data_dir = "/srv/rec"\n[sip]\nport = 5070\nhost = "10.1.2.3"\n[rtp]\nports = "30000-30999"\n'
        '[http]\nport = 9000\n[database]\ndsn = "postgresql://db.example/hangtar"\n',
    )
    config = load_config(
        config_file=path,
        environ={"HANGTAR_SIP_PORT": "5080", "HANGTAR_HTTP_PORT": "9100"},
        overrides={"http_port": 9200, "sip_host": None},
    )
    assert config.data_dir == Path("/srv/rec")
    assert config.sip_port == 5080  # environment beats the file
    assert config.http_port == 9200  # the flag beats both
    assert config.sip_host == "10.1.2.3"  # an absent flag (None) changes nothing
    assert (config.rtp_port_min, config.rtp_port_max) == (30000, 30999)
    assert config.database_dsn == "postgresql://db.example/hangtar"
    assert config.sources == ("defaults", str(path), "environment", "command line")


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[recording]\nshutdown_grace = 5\n")
    assert load_config(environ={"HANGTAR_CONFIG": str(path)}).shutdown_grace == 5.0


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"HANGTAR_SIP_PORT": "five"}, "HANGTAR_SIP_PORT: expected int, got 'five'"),
        ({"HANGTAR_SIP_PORT": "70000"}, "sip port 70000 is not a port number"),
        ({"HANGTAR_RTP_PORTS": "30000"}, "expected a range like 20000-39999"),
        ({"HANGTAR_RTP_PORTS": "40000-30000"}, "low end first"),
        ({"HANGTAR_RTP_PORTS": "30000-30002"}, "holds no RTP/RTCP port pair"),
        ({"HANGTAR_SIP_PORT": "20500"}, "inside the RTP port range"),
        ({"HANGTAR_SIP_HOST": "not a host!"}, "is not an IP address or host name"),
        ({"HANGTAR_LOG_LEVEL": "chatty"}, "log level 'chatty'"),
        ({"HANGTAR_RECORDING_REORDER_WINDOW": "60"}, "reorder window"),
        ({"HANGTAR_DELIVERY_INTERVAL": "1"}, "delivery interval must be 0 (off) or between 5 and 86400"),
    ],
)
def test_bad_values_are_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(environ=environ)


def test_unknown_and_malformed_file_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown setting \[sip\] prot"):
        load_config(config_file=write(tmp_path, "[sip]\nprot = 5060\n"), environ={})
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(config_file=write(tmp_path, "[sip\nport=1"), environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(config_file=tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigError, match="expected int, got True"):
        load_config(config_file=write(tmp_path, "[sip]\nport = true\n"), environ={})


def test_advertised_address_is_never_a_wildcard() -> None:
    assert Config(sip_host="0.0.0.0").advertised_host not in ("0.0.0.0", "")
    assert Config(sip_host="127.0.0.1").advertised_host == "127.0.0.1"
    assert Config(sip_host="0.0.0.0", sip_advertised_host="203.0.113.5").advertised_host == "203.0.113.5"


def test_tls_and_srtp_defaults() -> None:
    config = load_config(environ={})
    assert (config.tls_port, config.tls_cert, config.tls_key) == (5061, "", "")
    assert config.tls_cert_path is None and config.tls_key_path is None
    assert (config.sip_srtp, config.tls_srtp) == ("allow", "allow")


def test_tls_and_srtp_from_file_environment_and_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[sip]\nsrtp = "off"\n[tls]\nport = 5071\ncertificate = "~/certs/srs.pem"\nkey = "/etc/hangtar/srs.key"\n'
        'srtp = "Require"\n',
    )
    config = load_config(config_file=path, environ={})
    assert config.tls_port == 5071
    assert config.tls_cert_path == Path("~/certs/srs.pem").expanduser()
    assert config.tls_key_path == Path("/etc/hangtar/srs.key")
    assert (config.sip_srtp, config.tls_srtp) == ("off", "require")  # policy names in any case
    assert (config.srtp_policy("udp"), config.srtp_policy("tcp"), config.srtp_policy("TLS")) == (
        "off",
        "off",
        "require",
    )
    overridden = load_config(
        config_file=path,
        environ={"HANGTAR_TLS_PORT": "5081", "HANGTAR_SIP_SRTP": "allow"},
        overrides={"tls_port": 5091, "tls_cert": "/run/a.pem", "tls_key": "/run/a.key"},
    )
    assert overridden.tls_port == 5091 and overridden.sip_srtp == "allow"
    assert (overridden.tls_cert, overridden.tls_key) == ("/run/a.pem", "/run/a.key")
    assert load_config(environ={"HANGTAR_TLS_PORT": "0"}).tls_port == 0  # TLS off


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"HANGTAR_SIP_SRTP": "maybe"}, "sip srtp 'maybe' is not one of off, allow, require"),
        ({"HANGTAR_TLS_SRTP": "sdes"}, "tls srtp 'sdes' is not one of off, allow, require"),
        ({"HANGTAR_TLS_PORT": "-1"}, "tls port -1 is not a port number"),
        ({"HANGTAR_TLS_PORT": "65536"}, "tls port 65536 is not a port number"),
        ({"HANGTAR_TLS_PORT": "tls"}, "HANGTAR_TLS_PORT: expected int, got 'tls'"),
        ({"HANGTAR_TLS_PORT": "5060"}, "tls port 5060 is already the sip or http port"),
        ({"HANGTAR_TLS_PORT": "8080"}, "tls port 8080 is already the sip or http port"),
        ({"HANGTAR_TLS_PORT": "25000"}, "tls port 25000 lies inside the RTP port range"),
        ({"HANGTAR_TLS_CERTIFICATE": "/etc/srs.pem"}, "tls certificate and tls key must be given together"),
        ({"HANGTAR_TLS_KEY": "/etc/srs.key"}, "tls certificate and tls key must be given together"),
    ],
)
def test_bad_tls_and_srtp_values_are_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(environ=environ)


def test_a_wrongly_typed_tls_setting_in_the_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[tls\] srtp: expected str, got True"):
        load_config(config_file=write(tmp_path, "[tls]\nsrtp = true\n"), environ={})
    with pytest.raises(ConfigError, match=r"unknown setting \[tls\] cert"):
        load_config(config_file=write(tmp_path, '[tls]\ncert = "x.pem"\n'), environ={})


def test_nodes_share_a_recordings_directory_and_name_themselves(tmp_path: Path) -> None:
    default = load_config(environ={"HANGTAR_DATA_DIR": "/var/lib/hangtar"})
    assert default.recordings_dir == Path("/var/lib/hangtar/recordings")
    assert default.node and "." not in default.node  # the host name up to its first dot
    path = write(tmp_path, '[storage]\nrecordings_dir = "/srv/shared/recordings"\n[node]\nname = "rec-2"\n')
    shared = load_config(config_file=path, environ={})
    assert (shared.recordings_dir, shared.node) == (Path("/srv/shared/recordings"), "rec-2")
    with pytest.raises(ConfigError, match="node name"):
        load_config(environ={"HANGTAR_NODE_NAME": "rec 2"})
