"""Secure transport end to end: SIP over TLS (RFC 3261 §26, RFC 5630) and SDES-keyed SRTP (RFC 4568, RFC 3711).

The real server runs with its TLS listener and a self-signed certificate it makes itself; pjsua2 connects over
TLS checking that certificate (the server's ``cert.pem`` is the CA), offers SRTP with SDES keys and sends tones.
The exported recordings are checked by FFT like the plain calls. A hand-made SRC sends SRTP under a key other than
the one it offered: nothing may be recorded, and the server must say so. A listener that requires SRTP refuses a
plain offer with 488 and a Warning naming the policy.
"""

from __future__ import annotations

import json
import random
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from storage import EmbeddedDatabase
from tests.audio import channel_rms, dbfs, peak_frequency, read_audio
from tests.peers.siprec_offer import build_metadata
from tests.peers.srtp_sender import SrtpSender
from tests.pg import cluster_processes, kill_cluster, scratch_dir

from .server import REPO, ServerProcess, free_port, rtp_range
from .sip_probe import UdpProbe, branch, header, request, status_of

PJSUA_SRC = REPO / "tests" / "peers" / "pjsua_src.py"
TONES = (440.0, 1000.0)


@dataclass
class SecureServer:
    process: ServerProcess
    tls_port: int

    @property
    def cert(self) -> Path:
        return self.process.data_dir / "tls" / "cert.pem"

    def target(self, transport: str) -> str:
        if transport == "tls":
            return f"sip:srs@127.0.0.1:{self.tls_port};transport=tls"
        return f"sip:srs@127.0.0.1:{self.process.sip_port}"


def start_server(data_dir: Path, *, tls_port: int, env: dict[str, str] | None = None) -> SecureServer:
    process = ServerProcess(
        data_dir=data_dir, sip_port=free_port(), http_port=free_port(), rtp_ports=rtp_range()
    )
    process.start("--tls-port", str(tls_port), "--log-level", "DEBUG", env=env)
    return SecureServer(process=process, tls_port=tls_port)


def stop_server(server: SecureServer) -> None:
    process = server.process
    try:
        if process.process is not None and process.process.poll() is None:
            process.stop()
    finally:
        pgdata = EmbeddedDatabase(process.data_dir).pgdata
        if cluster_processes(pgdata):
            kill_cluster(pgdata)


@pytest.fixture(scope="module")
def secure() -> Iterator[SecureServer]:
    """The server with its TLS listener on a free port and the default policy (`allow`) everywhere."""
    with scratch_dir() as data_dir:
        server = start_server(data_dir, tls_port=free_port())
        try:
            yield server
        finally:
            stop_server(server)


def pjsua(
    server: SecureServer, tmp_path: Path, name: str, *args: str, transport: str = "udp"
) -> dict[str, Any]:
    """One pjsua2 SRC call (a subprocess: a pjsua2 abort cannot take pytest down); its JSON report."""
    report_file = tmp_path / f"{name}.json"
    command = [sys.executable, str(PJSUA_SRC), "--target", server.target(transport), "--transport", transport]
    if transport == "tls":
        command += ["--tls-ca", str(server.cert)]  # the self-signed certificate must verify, name included
    result = subprocess.run(
        [*command, "--json-out", str(report_file), *args], capture_output=True, text=True, timeout=120
    )
    assert report_file.exists(), f"pjsua2 SRC wrote no report:\n{result.stdout}\n{result.stderr}"
    report: dict[str, Any] = json.loads(report_file.read_text())
    report["returncode"] = result.returncode
    return report


def finished(call_id: str) -> Any:
    return lambda row: row["call_id"] == call_id and row["status"] != "recording"


@dataclass(frozen=True)
class Heard:
    peaks: tuple[float, float]
    levels_db: tuple[float, float]
    duration: float


def recorded_call(
    server: SecureServer, report: dict[str, Any], tmp_path: Path, name: str
) -> tuple[dict[str, Any], Heard]:
    """The catalogue row of a pjsua2 call that went well, and what its exported recording sounds like."""
    assert report["returncode"] == 0, f"{report['outcome']}: {report['error']}\n{server.process.log()}"
    row = server.process.wait_for_recording(finished(report["call_id"]))
    assert row["status"] == "complete", row
    out = tmp_path / f"{name}.flac"
    server.process.cli("recordings", "export", row["reference"], "-o", str(out))
    audio = read_audio(out)
    assert audio.channels == 2
    left, right = audio.channel(0), audio.channel(1)
    levels = channel_rms(audio)
    heard = Heard(
        peaks=(peak_frequency(left, audio.sample_rate), peak_frequency(right, audio.sample_rate)),
        levels_db=(dbfs(levels[0]), dbfs(levels[1])),
        duration=audio.duration,
    )
    print(f"{name}: {heard}")
    assert abs(heard.peaks[0] - TONES[0]) < 5 and abs(heard.peaks[1] - TONES[1]) < 5, heard
    assert abs(heard.duration - report["duration"]) < 0.15, (heard.duration, report["duration"])
    assert abs(heard.duration - row["duration_seconds"]) < 0.001
    return row, heard


def answer_sdp_profiles(report: dict[str, Any]) -> list[str]:
    return re.findall(r"^m=audio \d+ (\S+) ", report["answer_sdp"], flags=re.MULTILINE)


def test_pjsua2_over_tls_records_a_verified_stereo_call(secure: SecureServer, tmp_path: Path) -> None:
    report = pjsua(secure, tmp_path, "tls", "--duration", "4", transport="tls")
    row, _ = recorded_call(secure, report, tmp_path, "tls")
    assert row["source_address"].startswith("tls:127.0.0.1:"), row["source_address"]
    # The dialog lives on TLS: our Contact names the TLS port, so the ACK and the SRC's BYE come back over it.
    assert f"<sip:127.0.0.1:{secure.tls_port};transport=tls>" in report["answer"], report["answer"]
    assert report["bye_status"] == 200
    assert [s["proto"] for s in report["streams"]] == ["RTP/AVP", "RTP/AVP"]
    for stream in row["streams"]:
        assert stream["packets"] >= 190 and stream["lost"] == 0, stream


def test_sdes_srtp_calls_record_the_same_audio_as_a_plain_call(secure: SecureServer, tmp_path: Path) -> None:
    plain_report = pjsua(secure, tmp_path, "plain", "--duration", "4")
    plain_row, plain = recorded_call(secure, plain_report, tmp_path, "plain")
    calls = {
        "srtp_udp_sha1_32": pjsua(
            secure,
            tmp_path,
            "udp32",
            "--duration",
            "4",
            "--srtp",
            "sdes",
            "--srtp-suites",
            "AES_CM_128_HMAC_SHA1_32,AES_CM_128_HMAC_SHA1_80",  # the first one offered is taken
        ),
        "srtp_tls_sha1_80": pjsua(
            secure, tmp_path, "tls80", "--duration", "4", "--srtp", "sdes", transport="tls"
        ),
    }
    for name, report in calls.items():
        assert answer_sdp_profiles(report) == ["RTP/SAVP", "RTP/SAVP"], report["answer_sdp"]
        suite = "AES_CM_128_HMAC_SHA1_32" if name.endswith("32") else "AES_CM_128_HMAC_SHA1_80"
        # One crypto line per stream: the offered tag and suite, our own key (RFC 4568 §7.1.2).
        answered = re.findall(r"^a=crypto:(\d+) (\S+) inline:(\S+)", report["answer_sdp"], flags=re.MULTILINE)
        offered = re.findall(r"^a=crypto:(\d+) (\S+) inline:(\S+)", report["offer_sdp"], flags=re.MULTILINE)
        assert [(tag, s) for tag, s, _ in answered] == [("1", suite), ("1", suite)], answered
        assert not {key for *_, key in answered} & {key for *_, key in offered}
        assert [s["proto"] for s in report["streams"]] == ["RTP/SAVP", "RTP/SAVP"]
        row, heard = recorded_call(secure, report, tmp_path, name)
        # Decrypted, the audio is what the plain call gave: same tones, same levels, every packet in place.
        assert all(abs(a - b) < 0.5 for a, b in zip(heard.levels_db, plain.levels_db, strict=True)), (
            heard,
            plain,
        )
        assert abs(heard.duration - plain.duration) < 0.2, (heard, plain)
        for stream, plain_stream in zip(row["streams"], plain_row["streams"], strict=True):
            assert stream["codec"] == plain_stream["codec"] == "PCMU"
            assert stream["lost"] == 0 and abs(stream["packets"] - plain_stream["packets"]) <= 10, stream
    # Key material never reaches the log, at DEBUG level either.
    log = secure.process.log()
    for report in calls.values():
        for key in re.findall(r"inline:([A-Za-z0-9+/=]+)", report["offer_sdp"] + report["answer_sdp"]):
            assert key not in log


# -- an SRC that keys its SRTP with another key than it offered --------------------------------------------------


def multipart(sdp: str, metadata: str, boundary: str = "srtp-boundary-7") -> tuple[bytes, str]:
    body = (
        f"--{boundary}\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n"
        f"--{boundary}\r\nContent-Type: application/rs-metadata+xml\r\n"
        f"Content-Disposition: recording-session\r\n\r\n{metadata}\r\n--{boundary}--\r\n"
    )
    return body.encode(), f"multipart/mixed;boundary={boundary}"


def in_dialog(method: str, invite: bytes, answer: bytes, cseq: int, local_port: int) -> bytes:
    """ACK or BYE in the dialog the 200 OK set up (RFC 3261 §12.2.1.1: to its Contact, with its To tag)."""
    contact = header(answer, "Contact") or ""
    target = contact[contact.index("<") + 1 : contact.index(">")]
    lines = [
        f"{method} {target} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch()};rport",
        "Max-Forwards: 70",
        f"From: {header(invite, 'From')}",
        f"To: {header(answer, 'To')}",
        f"Call-ID: {header(invite, 'Call-ID')}",
        f"CSeq: {cseq} {method}",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_srtp_under_a_wrong_key_records_nothing_and_says_so(secure: SecureServer) -> None:
    offered = [random.randbytes(30), random.randbytes(30)]
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in offered]
    probe = UdpProbe()
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        # The offer carries these keys; the packets will be protected with others (another 30 random octets).
        media = ""
        for index, (sock, key) in enumerate(zip(sockets, offered, strict=True)):
            crypto = SrtpSender(destination=("127.0.0.1", 9), duration=0.02, key_salt=key).crypto_attribute(
                tag=1
            )
            media += (
                f"m=audio {sock.getsockname()[1]} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
                f"a=crypto:{crypto}\r\na=label:{index + 1}\r\na=sendonly\r\n"
            )
        sdp = "v=0\r\no=- 20 20 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" + media
        body, content_type = multipart(sdp, build_metadata(("1", "2")))
        port = secure.process.sip_port
        invite = request(
            "INVITE",
            port=port,
            local_port=probe.port,
            body=body,
            content_type=content_type,
            extra="Require: siprec",
        )
        probe.send(invite, port)
        answer = probe.final_response()
        assert status_of(answer) == 200, answer
        answered = [int(p) for p in re.findall(rb"^m=audio (\d+) RTP/SAVP ", answer, flags=re.MULTILINE)]
        assert len(answered) == 2 and all(answered), answer
        probe.send(in_dialog("ACK", invite, answer, 1, probe.port), port)
        senders = [
            SrtpSender(
                destination=("127.0.0.1", rtp_port),
                sock=sock,
                duration=2.0,
                tone_hz=tone,
                key_salt=random.randbytes(30),
                ssrc=0x5EC0 + index,
            ).start()
            for index, (sock, rtp_port, tone) in enumerate(zip(sockets, answered, TONES, strict=True))
        ]
        sent = [sender.wait(30).datagrams_sent for sender in senders]
        assert sent == [100, 100]
        probe.send(in_dialog("BYE", invite, answer, 2, probe.port), port)
        assert status_of(probe.final_response()) == 200
    finally:
        probe.close()
        for sock in sockets:
            sock.close()
    call_id = header(invite, "Call-ID") or ""
    row = secure.process.wait_for_recording(finished(call_id))
    assert row["status"] == "no_media", row
    assert [s["packets"] for s in row["streams"]] == [0, 0]
    log = secure.process.log()
    assert re.search(rf"call {re.escape(call_id)}: recording {row['reference']} no_media", log), log[-3000:]
    # The packets that failed SRTP authentication are counted per stream (RFC 3711 §3.3).
    failures = re.findall(r"srtp failures\): \[\(0, 0, 0, (\d+)\), \(0, 0, 0, (\d+)\)\]", log)
    assert failures and all(int(n) >= 90 for n in failures[-1]), log[-3000:]


# -- policy ----------------------------------------------------------------------------------------------------


def test_require_policy_refuses_a_plain_offer_with_488_naming_the_policy(tmp_path: Path) -> None:
    with scratch_dir() as data_dir:
        server = start_server(data_dir, tls_port=0, env={"HANGTAR_SIP_SRTP": "require"})
        try:
            assert "SIP   tls" not in server.process.log()  # --tls-port 0: no TLS listener
            plain = pjsua(server, tmp_path, "plain", "--duration", "1")
            assert plain["status"] == 488 and plain["outcome"] == "rejected", plain
            warning = header(plain["answer"].encode(), "Warning") or ""
            assert warning.startswith("399 ") and "SRTP policy require" in warning, plain["answer"]
            assert "plain RTP/AVP offered where SRTP is required" in warning
            assert server.process.metric("hangtar_calls_rejected_total", reason="srtp_policy") == 1
            # The same listener takes the SRTP offer of the same SRC.
            srtp = pjsua(server, tmp_path, "srtp", "--duration", "2", "--srtp", "sdes")
            row, _ = recorded_call(server, srtp, tmp_path, "srtp")
            assert row["status"] == "complete"
        finally:
            stop_server(server)
