"""An ftps target's settings: what its URL names, and the CA certificates it may trust instead of the system's."""

from __future__ import annotations

import pytest

from storage.delivery_settings import (
    InsecureTargetError,
    TargetKind,
    TargetSettingsError,
    check_settings,
    settings_from_url,
)

from .certs import Authority, self_signed


def ftps(**overrides: object) -> dict[str, object]:
    kind, settings = settings_from_url("ftps://rec@files.example.hu/~/incoming")
    assert kind is TargetKind.FTPS
    return check_settings(kind, {**settings, **overrides})


def test_an_ftps_url_names_an_explicit_tls_server_on_port_21_with_system_trust() -> None:
    settings = ftps()
    assert (settings["host"], settings["port"], settings["username"]) == ("files.example.hu", 21, "rec")
    assert (settings["remote_dir"], settings["auth"]) == ("incoming", "password")
    assert settings["ca_certificates"] is None and settings["ca_file"] is None


def test_ca_certificates_keep_the_certificates_only() -> None:
    authority, server = Authority(), self_signed("files.example.hu")
    # As an operator pastes it: `openssl x509 -text` output around the PEM, two certificates, CRLF line ends.
    pasted = (
        "Certificate:\n    Data:\n        Version: 3 (0x2)\n"
        + authority.pem.replace("\n", "\r\n")
        + "subject=CN = files.example.hu\n"
        + server.certificate_text
    )
    kept = str(ftps(ca_certificates=pasted)["ca_certificates"])
    assert kept.count("-----BEGIN CERTIFICATE-----") == 2
    assert "Version: 3" not in kept and "subject=" not in kept
    assert server.certificate_text.strip() in kept


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        (self_signed("files.example.hu").key.decode(), "holds no certificate"),
        ("SHA256 Fingerprint=3B:5D:3C:7D:20:7E", "holds no certificate"),
        (
            "-----BEGIN CERTIFICATE-----\nTUlJQnBUQ0NBVXVnQXdJQkFnSVVkZWZhdWx0\n-----END CERTIFICATE-----\n",
            "does not load as certificates",
        ),
        (["-----BEGIN CERTIFICATE-----"], "is PEM text"),
    ],
)
def test_ca_certificates_that_are_not_certificates_are_refused(value: object, complaint: str) -> None:
    with pytest.raises(TargetSettingsError, match=complaint):
        ftps(ca_certificates=value)


def test_one_source_of_trust_and_a_password_login() -> None:
    with pytest.raises(TargetSettingsError, match="not both"):
        ftps(ca_certificates=Authority().pem, ca_file="/etc/hangtar/acme-ca.pem")
    with pytest.raises(TargetSettingsError, match="logs in with a password"):
        ftps(auth="key")


def test_plain_ftp_is_refused_with_the_reason() -> None:
    with pytest.raises(InsecureTargetError, match=r"GDPR Art\. 32"):
        settings_from_url("ftp://rec@files.example.hu/incoming")
