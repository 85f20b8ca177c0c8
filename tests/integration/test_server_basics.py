"""The running server as an SBC's health probe and a hostile network see it: OPTIONS, junk, non-SIPREC calls."""

from __future__ import annotations

import json
import socket

from .server import ServerProcess
from .sip_probe import UdpProbe, header, request, status_of

SDP = (
    b"v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 30000 RTP/AVP 0\r\na=sendrecv\r\n"
)


def test_options_keepalive_advertises_siprec(server: ServerProcess) -> None:
    probe = UdpProbe()
    try:
        probe.send(request("OPTIONS", port=server.sip_port, local_port=probe.port), server.sip_port)
        response = probe.final_response()
    finally:
        probe.close()
    assert status_of(response) == 200
    assert "siprec" in (header(response, "Supported") or "")
    assert "INVITE" in (header(response, "Allow") or "")
    assert "application/rs-metadata+xml" in (header(response, "Accept") or "")


def test_options_over_tcp_with_content_length_framing(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.sip_port), timeout=5) as sock:
        local_port = sock.getsockname()[1]
        message = request("OPTIONS", port=server.sip_port, local_port=local_port, transport="TCP")
        # Two requests in one segment, the second split across two writes: framing is by Content-Length.
        second = request("OPTIONS", port=server.sip_port, local_port=local_port, transport="TCP")
        sock.sendall(b"\r\n\r\n" + message + second[:40])
        sock.sendall(second[40:])
        data = b""
        while data.count(b"SIP/2.0 200") < 2:
            chunk = sock.recv(65536)
            assert chunk, "connection closed before both answers"
            data += chunk
    assert data.count(b"SIP/2.0 200") == 2


def test_tcp_keepalive_ping_gets_a_pong(server: ServerProcess) -> None:
    # RFC 5626 §3.5.1: an SBC pings idle TCP connections with CRLFCRLF and expects CRLF back.
    with socket.create_connection(("127.0.0.1", server.sip_port), timeout=5) as sock:
        sock.sendall(b"\r\n\r\n")
        assert sock.recv(16) == b"\r\n"


def test_plain_invite_is_refused_with_a_warning(server: ServerProcess) -> None:
    probe = UdpProbe()
    try:
        probe.send(
            request(
                "INVITE",
                port=server.sip_port,
                local_port=probe.port,
                body=SDP,
                content_type="application/sdp",
            ),
            server.sip_port,
        )
        response = probe.final_response()
    finally:
        probe.close()
    assert status_of(response) == 488
    assert "SIPREC" in (header(response, "Warning") or "")
    assert server.metric("hangtar_calls_rejected_total", reason="not_siprec") >= 1


def test_malformed_sip_is_answered_or_dropped_and_counted(server: ServerProcess) -> None:
    before_400 = server.metric("hangtar_sip_malformed_total", outcome="400")
    before_drop = server.metric("hangtar_sip_malformed_total", outcome="dropped")
    probe = UdpProbe()
    try:
        broken = request("OPTIONS", port=server.sip_port, local_port=probe.port).replace(
            b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS"
        )
        probe.send(broken, server.sip_port)
        response = probe.final_response()
        probe.send(b"\x16\x03\x01 definitely not SIP \x00\xff", server.sip_port)
        # The server keeps serving after junk.
        probe.send(request("OPTIONS", port=server.sip_port, local_port=probe.port), server.sip_port)
        after = probe.final_response()
    finally:
        probe.close()
    assert status_of(response) == 400
    assert status_of(after) == 200
    assert server.metric("hangtar_sip_malformed_total", outcome="400") == before_400 + 1
    assert server.metric("hangtar_sip_malformed_total", outcome="dropped") == before_drop + 1


def test_health_and_metrics(server: ServerProcess) -> None:
    status, body = server.http_get("/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "ok", "database": "ok", "active_calls": 0}
    status, text = server.http_get("/metrics")
    assert status == 200
    for name in (
        "hangtar_sip_requests_total",
        "hangtar_active_calls",
        "hangtar_rtp_packets_total",
        "hangtar_event_loop_lag_seconds_bucket",
    ):
        assert name in text
    assert server.metric("hangtar_sip_requests_total", method="OPTIONS") >= 1
