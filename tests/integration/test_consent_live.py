"""Consent decided during the call, end to end: a real server, the project's own SRC, the CLI as the operator.

The tenant "acme" has a consent policy (answer window 5 s, keys 1 yes / 2 no / 9 stop). Each call is inbound to
one of its numbers, so the caller is asked, and the caller's stream carries the key presses: RFC 4733 events
when the offer has telephone-event, the Q.23 tones in the audio when it has not. The SRC is
:class:`load_tests.loadgen.sip_uac.SiprecUac` on a UDP socket of this module; the RTP of both legs is sent from
here, paced in real time. While the call is still up (before the SRC's BYE) the catalogue is read straight
from the server's database (a CLI run takes two seconds); after the call, through the CLI, as an operator
would.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import numpy as np
import numpy.typing as npt
import pytest

from load_tests.loadgen.metadata import parties, recording_metadata
from load_tests.loadgen.sdp_answer import parse_answer
from load_tests.loadgen.sip_uac import Answered, Datagram, Finished, Outcome, SiprecUac
from siprec_server.sip import SipParseError, SipRequest, parse_message
from storage import EmbeddedDatabase
from tests.peers.rtp_sender import rtp_packet, ulaw_encode
from tests.pg import scratch_dir

from .server import ServerProcess, running_server

WINDOW = 5
CALL = 10.0
TE = 101
RATE = 8000
PTIME = 0.02
KEYS = {"1": (697.0, 1209.0), "2": (697.0, 1336.0), "9": (852.0, 1477.0)}


@dataclass(frozen=True, slots=True)
class Key:
    at: float  # seconds after the first RTP packet
    key: str


@dataclass
class ConsentCall:
    """One SIPREC call with two legs; the caller presses ``keys``. ``run()`` blocks; ``start()`` uses a thread."""

    server: ServerProcess
    index: int  # the call's parties: loadgen.metadata.parties(index)
    keys: tuple[Key, ...] = ()
    telephone_event: bool = True
    seconds: float = CALL
    call_id: str = field(default_factory=lambda: f"consent-{random.getrandbits(48):012x}@src.example.hu")
    answered_at: float | None = None  # monotonic, when the 200 OK came
    bye_at: float | None = None  # monotonic, when we sent the BYE
    outcome: Outcome | None = None
    srs_requests: list[str] = field(default_factory=list)  # requests the SRS sent us in the dialog
    error: BaseException | None = None
    _thread: threading.Thread | None = None

    def start(self) -> ConsentCall:
        self._thread = threading.Thread(target=self._guarded, name="consent-src", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float = 40.0) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the call did not end"
        if self.error is not None:
            raise self.error

    @property
    def up(self) -> bool:
        return self.answered_at is not None and self.bye_at is None

    def _guarded(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # handed to wait()
            self.error = exc

    def run(self) -> None:
        sip, caller, callee = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3))
        try:
            for sock in (sip, caller, callee):
                sock.bind(("127.0.0.1", 0))
            sip.settimeout(0.005)
            body, content_type = self._offer(caller.getsockname()[1], callee.getsockname()[1])
            uac = SiprecUac(
                call_id=self.call_id,
                local=sip.getsockname(),
                srs=("127.0.0.1", self.server.sip_port),
                body=body,
                content_type=content_type,
                rng=random.Random(self.index),
            )
            self._send(sip, uac.invite(time.monotonic()))
            plan: list[tuple[float, socket.socket, tuple[str, int], bytes]] = []
            sent = 0
            while True:
                now = time.monotonic()
                try:
                    data, source = sip.recvfrom(65535)
                except TimeoutError:
                    pass
                else:
                    try:
                        message = parse_message(data)
                    except SipParseError:
                        message = None
                    if message is not None:
                        if isinstance(message, SipRequest) and message.method != "ACK":
                            self.srs_requests.append(message.method)
                        self._send(sip, uac.receive(message, source, now))
                self._send(sip, uac.handle_timer(now))
                while (event := uac.next_event()) is not None:
                    if isinstance(event, Answered):
                        self.answered_at = now
                        answer = parse_answer(event.sdp)
                        plan = self._media(
                            (caller, answer.destination("1", 0)), (callee, answer.destination("2", 0))
                        )
                    elif isinstance(event, Finished):
                        self.outcome = event.outcome
                        return
                if self.answered_at is not None:
                    elapsed = now - self.answered_at
                    while sent < len(plan) and plan[sent][0] <= elapsed:
                        _, sock, destination, packet = plan[sent]
                        sock.sendto(packet, destination)
                        sent += 1
                    if elapsed >= self.seconds and self.bye_at is None:
                        self.bye_at = now
                        self._send(sip, uac.hang_up(now))
        finally:
            for sock in (sip, caller, callee):
                sock.close()

    @staticmethod
    def _send(sock: socket.socket, datagrams: list[Datagram]) -> None:
        for datagram in datagrams:
            sock.sendto(datagram.data, datagram.destination)

    def _offer(self, caller_port: int, callee_port: int) -> tuple[bytes, str]:
        """SDP of two sendonly PCMU streams labelled 1 (caller) and 2 (callee), then RFC 7865 metadata."""
        lines = ["v=0", "o=- 4711 4711 IN IP4 127.0.0.1", "s=SIPREC", "c=IN IP4 127.0.0.1", "t=0 0"]
        for label, port in (("1", caller_port), ("2", callee_port)):
            formats = f"0 {TE}" if self.telephone_event else "0"
            lines += [f"m=audio {port} RTP/AVP {formats}", "a=rtpmap:0 PCMU/8000"]
            if self.telephone_event:
                lines += [f"a=rtpmap:{TE} telephone-event/8000", f"a=fmtp:{TE} 0-15"]
            lines += ["a=ptime:20", f"a=label:{label}", "a=sendonly"]
        sdp = "\r\n".join(lines) + "\r\n"
        # Fresh RFC 7865 ids per call (the parties follow the index).
        metadata = recording_metadata(self.index, now=datetime.now(UTC), rng=random.Random(self.call_id))
        boundary = "consent-src-7f3a"
        body = (
            f"--{boundary}\r\nContent-Type: application/sdp\r\n\r\n{sdp}"
            f"--{boundary}\r\nContent-Type: application/rs-metadata+xml\r\n"
            f"Content-Disposition: recording-session\r\n\r\n{metadata.replace(chr(10), chr(13) + chr(10))}"
            f"--{boundary}--\r\n"
        )
        return body.encode(), f"multipart/mixed;boundary={boundary}"

    def _media(
        self, caller: tuple[socket.socket, tuple[str, int]], callee: tuple[socket.socket, tuple[str, int]]
    ) -> list[tuple[float, socket.socket, tuple[str, int], bytes]]:
        """Every datagram of both legs with its send time: 20 ms PCMU, and the caller's key presses."""
        rng = np.random.default_rng(self.index)
        count = round(self.seconds / PTIME)
        t = np.arange(count * 160) / RATE
        voice = 1500 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 25, t.size)  # the caller, quietly talking
        if not self.telephone_event:
            for key in self.keys:
                add_tone(voice, key)
        plan = _leg(caller, pcm(voice), ssrc=0xCA11E7, events=self.keys if self.telephone_event else ())
        agent = 1500 * np.sin(2 * np.pi * 1000 * t) + rng.normal(0, 25, t.size)
        plan += _leg(callee, pcm(agent), ssrc=0xA6E47, events=())
        return sorted(plan, key=lambda item: item[0])


def pcm(signal: npt.NDArray[np.float64]) -> npt.NDArray[np.int16]:
    return np.clip(np.round(signal), -32768, 32767).astype(np.int16)


def add_tone(signal: npt.NDArray[np.float64], key: Key) -> None:
    """The key's two ITU-T Q.23 tones at -7 dBm0 each for 80 ms (then 80 ms of nothing), as a phone sends them."""
    amplitude = 32768.0 * 10 ** ((-7.0 - 3.17) / 20)
    first = round(key.at * RATE)
    t = np.arange(640) / RATE
    low, high = KEYS[key.key]
    signal[first : first + 640] += amplitude * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))


def _leg(
    target: tuple[socket.socket, tuple[str, int]],
    audio: npt.NDArray[np.int16],
    *,
    ssrc: int,
    events: tuple[Key, ...],
) -> list[tuple[float, socket.socket, tuple[str, int], bytes]]:
    """One leg's datagrams with their send times: 20 ms PCMU and RFC 4733 events, numbered in sending order
    (events share the stream's sequence numbers, RFC 4733 §2.1)."""
    sock, destination = target
    codes = ulaw_encode(audio)
    ts0, seq0 = 160_000, 4_000
    # (send time, payload type, RTP timestamp, payload, marker)
    items = [
        (i * PTIME, 0, ts0 + i * 160, codes[i * 160 : (i + 1) * 160].tobytes(), i == 0)
        for i in range(len(codes) // 160)
    ]
    for key in events:  # RFC 4733 §2.5.1: a 120 ms press, start and updates every 50 ms, three end packets
        ts, code = ts0 + round(key.at * RATE), int(key.key)
        reports = [(key.at + step * 0.05, False, 400 * (step + 1)) for step in range(3)]
        reports += [(key.at + 0.12 + repeat * 0.02, True, 960) for repeat in range(3)]
        for k, (at, end, duration) in enumerate(reports):
            payload = bytes([code, (0x80 if end else 0) | 10]) + duration.to_bytes(2, "big")
            items.append((at + 0.001, TE, ts, payload, k == 0))
    items.sort(key=lambda item: item[0])
    return [
        (
            at,
            sock,
            destination,
            rtp_packet(
                payload_type=pt, seq=seq0 + n, timestamp=ts, ssrc=ssrc, payload=payload, marker=marker
            ),
        )
        for n, (at, pt, ts, payload, marker) in enumerate(items)
    ]


class Rows:
    """Reads the server's catalogue rows straight from its database, in a few milliseconds."""

    def __init__(self, data_dir: Path) -> None:
        database = EmbeddedDatabase(data_dir)
        self._dsn = database.start()  # joins the server's running cluster
        database.stop()  # forgets it; the server's keeps running

    def of(self, call_id: str) -> dict[str, Any] | None:
        async def fetch() -> dict[str, Any] | None:
            conn = await asyncpg.connect(self._dsn)
            try:
                row = await conn.fetchrow(
                    "SELECT id::text, reference, status, basis, consent_state, file_path FROM recordings"
                    " WHERE call_id = $1",
                    call_id,
                )
            finally:
                await conn.close()
            return None if row is None else dict(row)

        return asyncio.run(fetch())


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """A server of its own with the consent policy in force (its policy book reloaded)."""
    with scratch_dir() as data_dir, running_server(data_dir) as process:
        process.cli("tenants", "create", "acme", "--name", "Acme Kft.")
        for index in range(1, 10):
            process.cli(
                "numbers", "add", "--tenant", "acme", parties(index)[1].number, "--as", "admin@acme.hu"
            )
        process.cli(
            "policies", "set", "--tenant", "acme", "--basis", "consent", "--purpose", "quality assurance",
            "--retention", "consent", "--consent-window", str(WINDOW), "--as", "dpo@acme.hu",
        )  # fmt: skip
        _wait_for_the_policy(process, Rows(data_dir))
        yield process


@pytest.fixture(scope="module")
def rows(server: ServerProcess) -> Rows:
    return Rows(server.data_dir)


def _wait_for_the_policy(server: ServerProcess, rows: Rows) -> None:
    """The server reloads its policies on the change's NOTIFY: place calls until one is decided by it."""
    deadline = time.monotonic() + 60
    while True:
        probe = ConsentCall(server, 9, seconds=3.0).start()
        call_id = probe.call_id
        row = _poll(probe, lambda wanted=call_id: rows.of(wanted))
        probe.wait()
        if row is not None and row["basis"] == "consent":
            return
        assert time.monotonic() < deadline, "the consent policy never reached the server"


def _row(rows: list[dict[str, Any]], call_id: str) -> dict[str, Any] | None:
    return next((row for row in rows if row["call_id"] == call_id), None)


def _poll(call: ConsentCall, found: Callable[[], Any]) -> Any:
    """Read until ``found`` returns something, while the call is up (reads 0.1 s apart); None if it never
    did before the hang-up."""
    while call.answered_at is None and call.error is None:
        time.sleep(0.05)  # the SRC's thread has not been answered yet; nothing to read before
    while call.up:
        result = found()
        if result:
            return result
        time.sleep(0.1)
    return None


def _audit(server: ServerProcess, recording_id: str) -> list[dict[str, Any]]:
    out = server.cli("audit", "list", "--object-id", recording_id, "--json").stdout
    return sorted(json.loads(out), key=lambda entry: entry["seq"])


@dataclass(frozen=True, slots=True)
class Seen:
    row: dict[str, Any]  # the recording's row while it was pending
    gone_at: float  # monotonic: when the catalogue no longer had it


def _refused_while_up(server: ServerProcess, rows: Rows, call: ConsentCall) -> Seen:
    """The recording appears (consent pending), then disappears with its file, all before the BYE."""
    row = _poll(call, lambda: rows.of(call.call_id))
    assert row is not None, server.log()
    assert (row["basis"], row["consent_state"], row["status"]) == ("consent", "pending", "recording")
    gone = _poll(call, lambda: rows.of(call.call_id) is None and time.monotonic())
    assert gone, f"still in the catalogue at the hang-up:\n{server.log()}"
    assert not Path(row["file_path"]).exists()  # the partial file went with the row
    return Seen(row=row, gone_at=gone)


def _after_the_call(server: ServerProcess, call: ConsentCall, seen: Seen) -> None:
    call.wait()
    assert call.bye_at is not None and seen.gone_at < call.bye_at  # the read that saw it gone ended before
    # The SRC saw nothing of it: no BYE or re-INVITE from the recorder; our BYE was answered.
    assert call.srs_requests == [] and call.outcome is Outcome.COMPLETED
    assert _row(server.recordings(), call.call_id) is None  # nothing came back at the hang-up
    assert not Path(seen.row["file_path"]).exists()
    assert f"call {call.call_id}: recording {seen.row['reference']} ended" in server.log()


def test_a_refusal_three_seconds_in_deletes_the_recording_while_the_call_goes_on(
    server: ServerProcess, rows: Rows
) -> None:
    refused = server.metric("hangtar_consent_outcomes_total", outcome="refused", when="call")
    call = ConsentCall(server, 1, keys=(Key(3.0, "2"),)).start()
    seen = _refused_while_up(server, rows, call)
    _after_the_call(server, call, seen)
    assert call.answered_at is not None and seen.gone_at - call.answered_at > 3.0
    actions = [
        (e["action"], e["details"].get("digit"), e["details"].get("reason"))
        for e in _audit(server, seen.row["id"])
    ]
    assert actions == [
        ("consent.refused", "2", None),
        ("recording.erase", None, "consent_refused"),
    ]
    assert server.metric("hangtar_consent_outcomes_total", outcome="refused", when="call") == refused + 1
    assert server.metric("hangtar_consent_discards_total", result="discarded") >= 1
    assert (
        f"call {call.call_id}: recording {seen.row['reference']}: consent refused (a key at 3.0"
        in server.log()
    )


def test_yes_then_the_stop_key_records_until_the_stop_then_deletes_it(
    server: ServerProcess, rows: Rows
) -> None:
    call = ConsentCall(server, 2, keys=(Key(2.0, "1"), Key(7.0, "9"))).start()
    given = _poll(
        call, lambda: (row := rows.of(call.call_id)) is not None and row["consent_state"] == "given" and row
    )
    assert given, server.log()
    file = Path(given["file_path"])
    size = file.stat().st_size
    # Consent given: the recording goes on, its file grows (a write every second) until the stop key.
    assert _poll(call, lambda: file.exists() and file.stat().st_size > size), "the recording stopped growing"
    seen = Seen(row=given, gone_at=_poll(call, lambda: rows.of(call.call_id) is None and time.monotonic()))
    assert seen.gone_at, server.log()
    assert not file.exists()
    _after_the_call(server, call, seen)
    actions = [
        (e["action"], e["details"].get("digit"), e["details"].get("reason"))
        for e in _audit(server, given["id"])
    ]
    assert actions == [
        ("consent.given", "1", None),
        ("consent.stopped", "9", None),
        ("recording.erase", None, "consent_withdrawn"),
    ]


def test_silence_past_the_window_deletes_the_recording_at_the_windows_end(
    server: ServerProcess, rows: Rows
) -> None:
    call = ConsentCall(server, 3).start()
    seen = _refused_while_up(server, rows, call)
    _after_the_call(server, call, seen)
    assert call.answered_at is not None
    # The window runs from the recording's first audio (our first packet, sent on the answer). It is judged
    # once every press up to its end could have been reported (0.8 s with telephone events: the reorder
    # window and a media tick), at the once-a-second check: never before, and soon after.
    elapsed = seen.gone_at - call.answered_at
    assert WINDOW + 0.8 <= elapsed < WINDOW + 0.8 + 1.0 + 1.5, elapsed
    actions = [(e["action"], e["details"].get("reason")) for e in _audit(server, seen.row["id"])]
    assert actions == [("consent.no_answer", None), ("recording.erase", "consent_refused")]


def test_an_in_band_refusal_without_telephone_event_deletes_the_recording(
    server: ServerProcess, rows: Rows
) -> None:
    call = ConsentCall(server, 4, keys=(Key(3.0, "2"),), telephone_event=False).start()
    seen = _refused_while_up(server, rows, call)
    _after_the_call(server, call, seen)
    actions = [
        (e["action"], e["details"].get("digit"), e["details"].get("reason"))
        for e in _audit(server, seen.row["id"])
    ]
    assert actions == [("consent.refused", "2", None), ("recording.erase", None, "consent_refused")]


def test_under_a_legal_hold_a_refusal_stops_the_capture_and_keeps_what_was_recorded(
    server: ServerProcess, rows: Rows
) -> None:
    caller = parties(5)[0].number
    server.cli(
        "holds", "place", "--number", caller, "--reason", "complaint 2026/118", "--tenant", "acme",
        "--as", "dpo@acme.hu",
    )  # fmt: skip
    call = ConsentCall(server, 5, keys=(Key(3.0, "2"),)).start()
    refused = _poll(
        call, lambda: (row := rows.of(call.call_id)) and row["consent_state"] == "refused" and row
    )
    assert refused, server.log()
    file = Path(refused["file_path"])
    size = file.stat().st_size
    later = time.monotonic() + 2.0  # two writes' worth of audio, had the capture gone on
    assert _poll(call, lambda: time.monotonic() >= later), "the call ended too early to tell"
    assert file.stat().st_size == size  # nothing written since the refusal
    call.wait()
    shown = json.loads(server.cli("recordings", "show", refused["reference"], "--json").stdout)
    assert shown["consent_state"] == "refused" and shown["status"] == "complete"
    assert 2.0 < shown["duration_seconds"] < 8.0  # up to the refusal, not the 10 s of the call
    assert Path(shown["file_path"]).exists()
    assert server.metric("hangtar_consent_discards_total", result="held") == 1
    assert (
        f"call {call.call_id}: recording kept by a legal hold, not discarded (consent_refused)"
        in server.log()
    )
