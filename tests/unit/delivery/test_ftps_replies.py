"""FTP replies the FTPS transport reads: ``FEAT`` (RFC 2389) and ``HASH`` (draft-bryan-ftpext-hash-02), as
servers in the field send them (ftplib hands over a multi-line reply joined with newlines, CRLF removed)."""

from __future__ import annotations

import pytest

from siprec_server.delivery.ftps_client import hash_algorithm, parse_features, parse_hash_reply

VSFTPD_FEAT = (
    "211-Features:\n AUTH TLS\n EPRT\n EPSV\n MDTM\n PASV\n PBSZ\n PROT\n REST STREAM\n SIZE\n TVFS\n211 End"
)
# ProFTPD 1.3.8 with mod_digest: SHA-256 offered, SHA-1 selected.
PROFTPD_FEAT = (
    "211-Features:\n LANG en-US*\n MFMT\n AUTH TLS\n PBSZ\n PROT\n HASH SHA-1*;MD5;SHA-256;SHA-512\n"
    " MFF modify;UNIX.group;UNIX.mode;\n REST STREAM\n SIZE\n211 End"
)
# A server whose HASH computes SHA-256 already (marked *), lower-case as some send it.
SELECTED_FEAT = "211-Extensions supported:\n hash sha-1;sha-256*;sha-512;md5\n size\n mdtm\n211 End"
DIGEST = "3b5d3c7d207e37dceeedd301e35e2e58e6a1b8aa1a5f3c4e5b5ac3b0e5e2f1d4"


@pytest.mark.parametrize(
    ("reply", "sha256"),
    [(VSFTPD_FEAT, None), (PROFTPD_FEAT, False), (SELECTED_FEAT, True), ("211 No features", None)],
)
def test_whether_hash_computes_sha256(reply: str, sha256: bool | None) -> None:
    assert hash_algorithm(parse_features(reply)) is sha256


def test_features_are_the_indented_lines_only() -> None:
    assert parse_features(VSFTPD_FEAT) == {
        "AUTH TLS",
        "EPRT",
        "EPSV",
        "MDTM",
        "PASV",
        "PBSZ",
        "PROT",
        "REST STREAM",
        "SIZE",
        "TVFS",
    }


@pytest.mark.parametrize(
    ("reply", "digest"),
    [
        (f"213 SHA-256 0-1046713 {DIGEST} incoming/2026-11-28_140307_HT-7K3M-Q9RX.flac.part", DIGEST),
        (f"213 SHA-256 0-49 {DIGEST.upper()} name with spaces.flac", DIGEST),
        (f"213 SHA-1 0-49 {DIGEST[:40]} a.flac", None),  # another algorithm: not ours to compare
        ("213 SHA-256 0-49 169cd22282da7f147cb491e559e9dd a.flac", None),  # truncated
        (f"213 SHA-256 0-49 {DIGEST[:-1]}g a.flac", None),  # not hex
        ("504 Unknown algorithm", None),
        ("213", None),
    ],
)
def test_a_hash_reply_gives_its_digest_or_nothing(reply: str, digest: str | None) -> None:
    assert parse_hash_reply(reply) == digest
