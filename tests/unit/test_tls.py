"""SIP over TLS: the certificate the server makes or loads, its TLS context, the driver's TLS listener."""

from __future__ import annotations

import asyncio
import logging
import ssl
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from siprec_server.config import Config
from siprec_server.sip import (
    AckReceived,
    InviteReceived,
    RequestCompleted,
    SipEndpoint,
    SipEvent,
    SipRequest,
    SipResponse,
    StreamFramer,
    parse_message,
)
from siprec_server.tls import (
    CERT_FILE,
    KEY_FILE,
    TlsSetupError,
    client_context,
    fingerprint,
    load_tls,
    self_signed_pair,
    server_context,
)
from siprec_server.transport import SipDriver
from tests.unit.sip.traffic import SIPREC_BODY, request

NOW = datetime(2026, 3, 11, 9, 30, tzinfo=UTC)


def san(certificate: Path) -> tuple[set[str], set[str]]:
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(names.get_values_for_type(x509.DNSName)), {
        str(a) for a in names.get_values_for_type(x509.IPAddress)
    }


# -- the certificate ---------------------------------------------------------------------------------------


def test_self_signed_pair_is_made_once_with_a_private_key(tmp_path: Path) -> None:
    directory = tmp_path / "data" / "tls"
    certificate, key = self_signed_pair(
        directory, hosts=["198.51.100.20", "srs.example.hu", "0.0.0.0"], now=NOW
    )
    assert (certificate, key) == (directory / CERT_FILE, directory / KEY_FILE)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert b"PRIVATE KEY" in key.read_bytes() and b"PRIVATE KEY" not in certificate.read_bytes()
    dns, ips = san(certificate)
    assert dns == {"srs.example.hu", "localhost"}
    assert ips == {"198.51.100.20", "127.0.0.1", "::1"}  # a wildcard names no host
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    assert cert.not_valid_before_utc <= NOW < cert.not_valid_after_utc
    first = fingerprint(certificate.read_bytes())
    # A restart reuses the pair; a later one past its expiry makes a new one.
    assert self_signed_pair(directory, hosts=["198.51.100.20"], now=NOW + timedelta(days=30)) == (
        certificate,
        key,
    )
    assert fingerprint(certificate.read_bytes()) == first
    self_signed_pair(directory, hosts=["198.51.100.20"], now=NOW + timedelta(days=900))
    assert fingerprint(certificate.read_bytes()) != first
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not list(directory.glob("*.tmp"))


def test_an_unreadable_self_signed_certificate_is_replaced(tmp_path: Path) -> None:
    certificate, key = self_signed_pair(tmp_path, hosts=[], now=NOW)
    certificate.write_text("not a certificate")
    self_signed_pair(tmp_path, hosts=[], now=NOW)
    assert x509.load_pem_x509_certificate(certificate.read_bytes()).not_valid_after_utc > NOW
    server_context(certificate, key)  # and the new pair belongs together


def test_fingerprint_is_sha256_of_the_der_certificate(tmp_path: Path) -> None:
    certificate, _ = self_signed_pair(tmp_path, hosts=[], now=NOW)
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    import hashlib

    from cryptography.hazmat.primitives.serialization import Encoding

    digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest().upper()
    text = fingerprint(certificate.read_bytes())
    assert text.replace(":", "") == digest and len(text.split(":")) == 32


def test_load_tls_makes_and_announces_a_self_signed_pair(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="siprec_server.tls")
    setup = load_tls(Config(data_dir=tmp_path, sip_host="127.0.0.1"), now=NOW)
    assert setup.self_signed and setup.certificate == tmp_path / "tls" / CERT_FILE
    assert setup.fingerprint == fingerprint(setup.certificate.read_bytes())
    assert setup.fingerprint in caplog.text
    key_text = setup.key.read_text()
    body = "".join(line for line in key_text.splitlines() if "PRIVATE KEY" not in line)
    assert body[:40] not in caplog.text  # key material is never logged
    assert setup.context.minimum_version is ssl.TLSVersion.TLSv1_2


def test_load_tls_uses_the_configured_pair_and_warns_about_an_open_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    certificate, key = self_signed_pair(tmp_path / "operator", hosts=["srs.example.hu"], now=NOW)
    key.chmod(0o644)
    config = Config(data_dir=tmp_path / "data", tls_cert=str(certificate), tls_key=str(key))
    setup = load_tls(config, now=NOW)
    assert not setup.self_signed and setup.certificate == certificate
    assert not (tmp_path / "data" / "tls").exists()
    assert "can be read by other users" in caplog.text
    caplog.clear()
    load_tls(config, now=NOW + timedelta(days=1000))
    assert "is not valid now" in caplog.text


def test_bad_certificate_settings_are_named(tmp_path: Path) -> None:
    certificate, key = self_signed_pair(tmp_path / "a", hosts=[], now=NOW)
    other_cert, _ = self_signed_pair(tmp_path / "b", hosts=[], now=NOW)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    cases = [
        (tmp_path / "missing.pem", key, "cannot read tls certificate"),
        (certificate, tmp_path / "missing.key", "cannot read tls key"),
        (garbage, key, "is not a PEM certificate"),
        (other_cert, key, "are not a usable PEM pair"),
    ]
    for cert_path, key_path, message in cases:
        config = Config(data_dir=tmp_path, tls_cert=str(cert_path), tls_key=str(key_path))
        with pytest.raises(TlsSetupError, match=message) as caught:
            load_tls(config, now=NOW)
        assert isinstance(caught.value, OSError)  # `hangtar serve` reports it as "cannot start"


# -- the TLS context on the wire ------------------------------------------------------------------------------


@dataclass
class Pair:
    certificate: Path
    key: Path


@pytest.fixture
def pair(tmp_path: Path) -> Pair:
    certificate, key = self_signed_pair(tmp_path / "srs", hosts=["127.0.0.1"], now=datetime.now(UTC))
    return Pair(certificate, key)


async def handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> str | None:
    """Connect ``client`` to a loopback server using ``server``; the negotiated version, None if refused."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server)
    port = listener.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname=hostname)
    except (ssl.SSLError, ConnectionError):
        return None
    finally:
        listener.close()
    version = writer.get_extra_info("ssl_object").version()
    writer.close()
    await writer.wait_closed()
    await listener.wait_closed()
    return str(version)


async def test_clients_verify_the_self_signed_certificate_by_address_and_name(pair: Pair) -> None:
    context = server_context(pair.certificate, pair.key)
    for name in ("127.0.0.1", "localhost"):
        client = ssl.create_default_context(cafile=pair.certificate)  # hostname checked
        assert await handshake(context, client, name) == "TLSv1.3"
    tls12 = ssl.create_default_context(cafile=pair.certificate)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    assert await handshake(context, tls12, "127.0.0.1") == "TLSv1.2"
    wrong_name = ssl.create_default_context(cafile=pair.certificate)
    assert await handshake(context, wrong_name, "srs.other.example") is None


async def test_key_exchange_without_forward_secrecy_is_refused(pair: Pair) -> None:
    client = ssl.create_default_context(cafile=pair.certificate)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    client.set_ciphers("AES128-GCM-SHA256")  # static RSA key exchange
    assert await handshake(server_context(pair.certificate, pair.key), client, "127.0.0.1") is None


# -- the driver's TLS listener --------------------------------------------------------------------------------

SDP_ANSWER = b"v=0\r\no=hangtar 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"


@dataclass
class Running:
    driver: SipDriver
    events: asyncio.Queue[SipEvent]
    port: int

    async def event(self, kind: type[SipEvent]) -> SipEvent:
        async with asyncio.timeout(5):
            while True:
                event = await self.events.get()
                if isinstance(event, kind):
                    return event


@pytest.fixture
async def running(pair: Pair) -> AsyncIterator[Running]:
    events: asyncio.Queue[SipEvent] = asyncio.Queue()
    endpoint = SipEndpoint(host="127.0.0.1", port=5060)
    driver = SipDriver(endpoint, events.put_nowait)
    await driver.listen_tls(
        "127.0.0.1",
        0,
        server_context(pair.certificate, pair.key),
        client_context=client_context(cafile=pair.certificate),  # the test SRC below uses the same pair
    )
    assert driver.tls_port is not None
    try:
        yield Running(driver, events, driver.tls_port)
    finally:
        driver.close()


def invite(local_port: int, *, call_id: str = "tls-1@127.0.0.1", contact_host: str = "127.0.0.1") -> bytes:
    return request(
        "INVITE",
        "sip:srs@127.0.0.1;transport=tls",
        [
            ("Via", f"SIP/2.0/TLS 127.0.0.1:{local_port};branch=z9hG4bKtls1;rport"),
            ("Max-Forwards", "70"),
            ("From", "<sip:src@127.0.0.1>;tag=src-tag"),
            ("To", "<sip:srs@127.0.0.1>"),
            ("Call-ID", call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<sip:src@{contact_host}:{local_port};transport=tls>;+sip.src"),
            ("Require", "siprec"),
            ("Content-Type", "multipart/mixed;boundary=unique-boundary-1"),
        ],
        SIPREC_BODY,
    )


async def read_message(reader: asyncio.StreamReader, framer: StreamFramer) -> SipRequest | SipResponse:
    async with asyncio.timeout(5):
        while True:
            messages = framer.feed(await reader.read(65536))
            if messages:
                return parse_message(messages[0])


async def final_response(reader: asyncio.StreamReader, framer: StreamFramer) -> SipResponse:
    while True:
        message = await read_message(reader, framer)
        if isinstance(message, SipResponse) and message.status >= 200:
            return message


async def test_invite_over_tls_is_answered_on_its_connection(running: Running, pair: Pair) -> None:
    client = ssl.create_default_context(cafile=pair.certificate)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", running.port, ssl=client, server_hostname="127.0.0.1"
    )
    local_port = writer.get_extra_info("sockname")[1]
    writer.write(invite(local_port))
    received = await running.event(InviteReceived)
    assert isinstance(received, InviteReceived)
    assert (received.source.transport, received.source.port) == ("tls", local_port)
    assert running.driver.stream_connections == 1
    endpoint = running.driver.endpoint
    endpoint.respond(
        received.request_id, 200, now=running.driver.now(), body=SDP_ANSWER, content_type="application/sdp"
    )
    running.driver.flush()
    framer = StreamFramer()
    answer = await final_response(reader, framer)
    assert answer.status == 200 and answer.body == SDP_ANSWER
    assert "transport=tls" in (answer.headers.get("Contact") or "")
    writer.close()
    await writer.wait_closed()


async def test_a_plaintext_client_is_dropped_and_the_listener_keeps_serving(
    running: Running, pair: Pair
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    writer.write(invite(writer.get_extra_info("sockname")[1]))
    async with asyncio.timeout(5):
        assert await reader.read() == b""  # no TLS handshake: closed, nothing answered
    writer.close()
    await writer.wait_closed()
    assert running.events.empty()
    client = ssl.create_default_context(cafile=pair.certificate)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", running.port, ssl=client, server_hostname="localhost"
    )
    writer.write(invite(writer.get_extra_info("sockname")[1], call_id="tls-2@127.0.0.1"))
    assert isinstance(await running.event(InviteReceived), InviteReceived)
    writer.close()
    await writer.wait_closed()


async def test_bye_opens_a_tls_connection_to_the_src_contact(running: Running, pair: Pair) -> None:
    # The SRC connects from 127.0.0.1 but its Contact (where it listens for TLS) is 127.0.0.2: our BYE opens a
    # new TLS connection there (RFC 3261 §18.1.1), as it does when the SRC's own connection has closed.
    byes: asyncio.Queue[SipRequest] = asyncio.Queue()

    async def src_listener(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        message = await read_message(reader, StreamFramer())
        assert isinstance(message, SipRequest)
        byes.put_nowait(message)
        response = (
            f"SIP/2.0 200 OK\r\nVia: {message.headers.get('Via')}\r\nFrom: {message.headers.get('From')}\r\n"
            f"To: {message.headers.get('To')}\r\nCall-ID: {message.headers.get('Call-ID')}\r\n"
            f"CSeq: {message.headers.get('CSeq')}\r\nContent-Length: 0\r\n\r\n"
        )
        writer.write(response.encode())
        await writer.drain()
        await reader.read()  # until the server hangs up
        writer.close()

    src_server = await asyncio.start_server(
        src_listener, "127.0.0.2", 0, ssl=server_context(pair.certificate, pair.key)
    )
    src_port = src_server.sockets[0].getsockname()[1]
    try:
        client = ssl.create_default_context(cafile=pair.certificate)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", running.port, ssl=client, server_hostname="127.0.0.1"
        )
        writer.write(invite(src_port, contact_host="127.0.0.2"))
        received = await running.event(InviteReceived)
        assert isinstance(received, InviteReceived)
        endpoint, driver = running.driver.endpoint, running.driver
        dialog = endpoint.respond(
            received.request_id, 200, now=driver.now(), body=SDP_ANSWER, content_type="application/sdp"
        )
        driver.flush()
        answer = await final_response(reader, StreamFramer())
        to = answer.headers.get("To") or ""
        ack = request(
            "ACK",
            f"sip:127.0.0.1:{driver.endpoint.port};transport=tls",
            [
                ("Via", f"SIP/2.0/TLS 127.0.0.1:{src_port};branch=z9hG4bKtlsack;rport"),
                ("Max-Forwards", "70"),
                ("From", "<sip:src@127.0.0.1>;tag=src-tag"),
                ("To", to),
                ("Call-ID", "tls-1@127.0.0.1"),
                ("CSeq", "1 ACK"),
            ],
        )
        writer.write(ack)
        assert isinstance(await running.event(AckReceived), AckReceived)
        assert dialog is not None
        request_id = endpoint.send_request(dialog, "BYE", now=driver.now())
        driver.flush()
        async with asyncio.timeout(5):
            bye = await byes.get()
        assert bye.method == "BYE" and (bye.headers.get("Via") or "").startswith("SIP/2.0/TLS")
        completed = await running.event(RequestCompleted)
        assert isinstance(completed, RequestCompleted)
        assert (completed.request_id, completed.status) == (request_id, 200)
        assert driver.stream_connections == 2  # the SRC's connection and ours to its Contact
        writer.close()
        await writer.wait_closed()
    finally:
        src_server.close()
        running.driver.close()
        await src_server.wait_closed()
