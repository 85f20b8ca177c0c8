"""A bounded flood of hostile SIP at an SRS on this machine: malformed datagrams and hostile-XML INVITEs.

    python tests/peers/flood.py 5060 --malformed 10000 --hostile 100 --rate 4000 --max-seconds 30

- ``malformed`` UDP datagrams, paced at ``rate`` per second, cycling through ``MalformedKind``: truncated
  requests, binary junk, bad CSeq, huge headers, missing Via, missing mandatory headers, broken start lines,
  bad Content-Length, control characters, broken Via. None carries a SIPREC body, so even a parser that
  forgives one never opens a recording. Every Via names our own socket, so answers come back to us (counted).
- ``hostile`` SIPREC INVITEs over one TCP connection (a 300 KiB body does not fit a datagram), spread over the
  same time, cycling through ``HostileKind``: entity expansion ("billion laughs"), external entities
  (``file:///etc/passwd`` and an ``http://`` URL on a canary listener of ours), an external DTD by parameter
  entity, and a 300 KiB document. Each is otherwise a valid recording session: an accepted one is ACKed and
  ended with BYE at once, so it holds no media ports.

Everything is bounded: the counts, and ``max_seconds`` overall. The target must be 127.0.0.1: this is a test
tool, never pointed at anything else. The canary counts every connection made to it: an SRS that resolves
external entities shows up there.
"""

from __future__ import annotations

import argparse
import enum
import json
import random
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

__all__ = [
    "HUGE_DOCUMENT_BYTES",
    "LOOPBACK",
    "Flood",
    "FloodReport",
    "HostileKind",
    "MalformedKind",
    "hostile_invite",
    "hostile_metadata",
    "malformed_datagram",
    "malformed_datagrams",
]

LOOPBACK = "127.0.0.1"
HUGE_DOCUMENT_BYTES = 300 * 1024
MAX_DATAGRAM = 65507  # IPv4 UDP payload limit
TICK = 0.005  # pacing granularity, seconds
TRANSACTION_TIMEOUT = 5.0


class MalformedKind(enum.StrEnum):
    TRUNCATED = "truncated"  # cut inside the header section, or shorter than its Content-Length
    BINARY = "binary"  # random bytes, sometimes behind a plausible request line
    BAD_CSEQ = "bad_cseq"  # CSeq not a number, negative, beyond 2**31, method mismatch, missing number
    HUGE_HEADER = "huge_header"  # one 60 KB header value, or thousands of headers
    MISSING_VIA = "missing_via"
    MISSING_HEADER = "missing_header"  # no Call-ID, From, To or CSeq
    BAD_START_LINE = "bad_start_line"  # wrong version, no URI, junk method, a broken status line
    BAD_CONTENT_LENGTH = "bad_content_length"  # negative, not a number, far beyond the datagram
    CONTROL_CHARS = "control_chars"  # NUL and other control bytes in names and values
    BAD_VIA = "bad_via"  # no branch, port out of range, no transport


class HostileKind(enum.StrEnum):
    BILLION_LAUGHS = "billion_laughs"  # nested entity expansion (XML bomb)
    EXTERNAL_ENTITY = "external_entity"  # SYSTEM entities: a local file and our canary URL
    EXTERNAL_DTD = "external_dtd"  # a parameter entity pulling a DTD from our canary URL
    HUGE_DOCUMENT = "huge_document"  # a well-formed RFC 7865 document of 300 KiB


# -- malformed datagrams (pure) --------------------------------------------------------------------------


def _request(
    method: str, *, target_port: int, local_port: int, call_id: str, cseq: str | None = None
) -> list[str]:
    return [
        f"{method} sip:srs@{LOOPBACK}:{target_port} SIP/2.0",
        f"Via: SIP/2.0/UDP {LOOPBACK}:{local_port};branch=z9hG4bK{call_id[:16]};rport",
        "Max-Forwards: 70",
        f"From: <sip:flood@{LOOPBACK}:{local_port}>;tag={call_id[-8:]}",
        f"To: <sip:srs@{LOOPBACK}:{target_port}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq if cseq is not None else '1 ' + method}",
        f"Contact: <sip:flood@{LOOPBACK}:{local_port}>",
    ]


def _encode(lines: list[str], body: bytes = b"", *, length: int | None = None) -> bytes:
    head = "\r\n".join([*lines, f"Content-Length: {len(body) if length is None else length}"])
    return head.encode() + b"\r\n\r\n" + body


def malformed_datagram(
    kind: MalformedKind, rng: random.Random, *, target_port: int, local_port: int
) -> bytes:
    """One malformed SIP datagram of ``kind``; the variant within the kind is drawn from ``rng``."""
    call_id = f"{rng.getrandbits(64):016x}{rng.getrandbits(32):08x}@flood.invalid"
    method = rng.choice(("INVITE", "OPTIONS", "BYE", "REGISTER", "ACK", "UPDATE"))
    base = _request(method, target_port=target_port, local_port=local_port, call_id=call_id)
    variant = rng.randrange(4)
    if kind is MalformedKind.TRUNCATED:
        whole = _encode(base)
        if variant < 2:  # cut inside the header section: no end of headers at all
            return whole[: rng.randrange(8, len(whole) - 4)]
        return _encode(base, b"v=0\r\no=- 1 1 IN IP4", length=400)  # body far shorter than announced
    if kind is MalformedKind.BINARY:
        junk = rng.randbytes(rng.randrange(1, 1400))
        return f"{method} sip:srs@{LOOPBACK} SIP/2.0\r\n".encode() + junk if variant == 0 else junk
    if kind is MalformedKind.BAD_CSEQ:
        cseq = ("abc " + method, "-5 " + method, f"99999999999 {method}", f"1 {method}X", method)[
            rng.randrange(5)
        ]
        return _encode(
            _request(method, target_port=target_port, local_port=local_port, call_id=call_id, cseq=cseq)
        )
    if kind is MalformedKind.HUGE_HEADER:
        if variant < 2:
            return _encode([*base, "Subject: " + "A" * 60_000])
        return _encode(base + [f"X-Flood-{i}: {i}" for i in range(4000)])[:MAX_DATAGRAM]
    if kind is MalformedKind.MISSING_VIA:
        return _encode([line for line in base if not line.startswith("Via:")])
    if kind is MalformedKind.MISSING_HEADER:
        missing = ("Call-ID:", "From:", "To:", "CSeq:")[variant]
        return _encode([line for line in base if not line.startswith(missing)])
    if kind is MalformedKind.BAD_START_LINE:
        start = (
            f"{method} sip:srs@{LOOPBACK} SIP/3.0",
            f"{method}",
            f"{method}  SIP/2.0",
            "SIP/2.0 9x9 Whatever",
        )[variant]
        return _encode([start, *base[1:]])
    if kind is MalformedKind.BAD_CONTENT_LENGTH:
        length = ("-1", "abc", "99999999999999")[variant % 3]
        return ("\r\n".join([*base, f"Content-Length: {length}"]) + "\r\n\r\nxyz").encode()
    if kind is MalformedKind.CONTROL_CHARS:
        return _encode([*base[:3], "X-\x00Bad\x01: value\x00with\x07controls", *base[3:]]).replace(
            b"Max-Forwards", b"Max\x00Forwards" if variant % 2 else b"Max-Forwards\x0b"
        )
    via = (
        f"Via: SIP/2.0/UDP {LOOPBACK}:{local_port}",  # no branch
        f"Via: SIP/2.0/UDP {LOOPBACK}:99999;branch=z9hG4bKflood",
        f"Via: SIP/2.0 {LOOPBACK}:{local_port};branch=z9hG4bKflood",
        "Via: ;;;===",
    )[variant]
    return _encode([via if line.startswith("Via:") else line for line in base])


def malformed_datagrams(
    count: int, *, target_port: int, local_port: int, seed: int = 0
) -> Iterator[tuple[MalformedKind, bytes]]:
    """``count`` datagrams, cycling through every ``MalformedKind`` in turn; the same for the same seed."""
    rng = random.Random(seed)
    kinds = list(MalformedKind)
    for index in range(count):
        kind = kinds[index % len(kinds)]
        yield kind, malformed_datagram(kind, rng, target_port=target_port, local_port=local_port)


# -- hostile INVITEs (pure) -----------------------------------------------------------------------------

_RS_NS = "urn:ietf:params:xml:ns:recording:1"


def hostile_metadata(kind: HostileKind, *, canary_url: str) -> str:
    """An RFC 7865 metadata document that attacks the parser that reads it."""
    if kind is HostileKind.BILLION_LAUGHS:
        entities = ['  <!ENTITY lol0 "lol">'] + [
            f'  <!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
        ]
        doctype = "<!DOCTYPE recording [\n" + "\n".join(entities) + "\n]>\n"
        name = "&lol9;"
    elif kind is HostileKind.EXTERNAL_ENTITY:
        doctype = (
            "<!DOCTYPE recording [\n"
            '  <!ENTITY secret SYSTEM "file:///etc/passwd">\n'
            f'  <!ENTITY remote SYSTEM "{canary_url}/entity">\n'
            "]>\n"
        )
        name = "&secret;&remote;"
    elif kind is HostileKind.EXTERNAL_DTD:
        doctype = f'<!DOCTYPE recording [\n  <!ENTITY % dtd SYSTEM "{canary_url}/dtd">\n  %dtd;\n]>\n'
        name = "Eve"
    else:
        return _huge_document()
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"{doctype}"
        f'<recording xmlns="{_RS_NS}">\n'
        "  <datamode>complete</datamode>\n"
        '  <participant participant_id="cDE=">\n'
        f'    <nameID aor="sip:eve@attacker.invalid"><name>{name}</name></nameID>\n'
        "  </participant>\n"
        "</recording>\n"
    )


def _huge_document() -> str:
    """Well-formed RFC 7865 metadata (Appendix A shape) grown to ``HUGE_DOCUMENT_BYTES`` with participants."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<recording xmlns="{_RS_NS}">\n'
        "  <datamode>complete</datamode>\n"
        '  <session session_id="Zmxvb2Qtc2Vzc2lvbg==">\n'
        "    <start-time>2026-01-01T00:00:00Z</start-time>\n"
        "  </session>\n"
        '  <stream stream_id="Zmxvb2Qtc3RyZWFt" session_id="Zmxvb2Qtc2Vzc2lvbg==">\n'
        "    <label>1</label>\n"
        "  </stream>\n"
    ]
    size = len(parts[0])
    index = 0
    while size < HUGE_DOCUMENT_BYTES:
        participant = (
            f'  <participant participant_id="Zmxvb2Qt{index:08d}">\n'
            f'    <nameID aor="sip:+36{index:09d}@flood.invalid"><name>Participant {index}</name></nameID>\n'
            "  </participant>\n"
        )
        parts.append(participant)
        size += len(participant)
        index += 1
    return "".join(parts) + "</recording>\n"


def hostile_invite(
    kind: HostileKind,
    *,
    target_port: int,
    local_port: int,
    canary_url: str,
    media_port: int,
    call_id: str,
) -> bytes:
    """A SIPREC INVITE over TCP (one sendonly PCMU m-line) carrying ``hostile_metadata(kind)``."""
    boundary = "flood-boundary-42"
    sdp = (
        f"v=0\r\no=flood 1 1 IN IP4 {LOOPBACK}\r\ns=-\r\nc=IN IP4 {LOOPBACK}\r\nt=0 0\r\n"
        f"m=audio {media_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=label:1\r\na=sendonly\r\n"
    )
    body = (
        f"--{boundary}\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n"
        f"--{boundary}\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n"
        f"{hostile_metadata(kind, canary_url=canary_url)}\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    lines = [
        f"INVITE sip:srs@{LOOPBACK}:{target_port};transport=tcp SIP/2.0",
        f"Via: SIP/2.0/TCP {LOOPBACK}:{local_port};branch=z9hG4bK{call_id[:20]}",
        "Max-Forwards: 70",
        f"From: <sip:flood@{LOOPBACK}:{local_port}>;tag={call_id[-8:]}",
        f"To: <sip:srs@{LOOPBACK}:{target_port}>",
        f"Call-ID: {call_id}",
        "CSeq: 1 INVITE",
        f"Contact: <sip:flood@{LOOPBACK}:{local_port};transport=tcp>;+sip.src",
        "Require: siprec",
        "MIME-Version: 1.0",
        f"Content-Type: multipart/mixed;boundary={boundary}",
    ]
    return _encode(lines, body)


def _in_dialog(
    method: str, invite: bytes, response: bytes, *, cseq: int, local_port: int, target_port: int
) -> bytes:
    """ACK (for the 2xx) or BYE in the dialog the INVITE and its 2xx made."""
    head = invite.split(b"\r\n\r\n", 1)[0].decode()
    to = _header(response, "To") or ""
    call_id = _header(invite, "Call-ID") or ""
    from_ = next(line for line in head.split("\r\n") if line.startswith("From:"))
    contact = re.search(r"<([^>]+)>", _header(response, "Contact") or "")
    uri = contact.group(1) if contact else f"sip:srs@{LOOPBACK}:{target_port};transport=tcp"
    return _encode(
        [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/TCP {LOOPBACK}:{local_port};branch=z9hG4bK{method.lower()}{call_id[:16]}",
            "Max-Forwards: 70",
            from_,
            f"To: {to}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
        ]
    )


def _header(message: bytes, name: str) -> str | None:
    for line in message.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def _status(message: bytes) -> int | None:
    match = re.match(rb"SIP/2\.0 (\d{3}) ", message)
    return int(match.group(1)) if match else None


# -- the run -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FloodReport:
    malformed_sent: int
    malformed_by_kind: Mapping[str, int]
    udp_responses: Mapping[int, int]  # status code -> answers received to the malformed datagrams
    hostile_sent: int
    hostile_answers: Mapping[str, tuple[int, ...]]  # kind -> final status of each INVITE (0: none in time)
    bye_answers: tuple[int, ...]  # final status of the BYE ending each accepted INVITE (0: none in time)
    canary_hits: int  # connections to the external-entity canary: must stay 0
    malformed_seconds: float  # first to last malformed datagram
    elapsed: float
    stopped_early: bool  # max_seconds ran out before the counts were reached

    @property
    def malformed_rate(self) -> float:
        return self.malformed_sent / self.malformed_seconds if self.malformed_seconds > 0 else 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "malformed_sent": self.malformed_sent,
            "malformed_by_kind": dict(self.malformed_by_kind),
            "malformed_rate": round(self.malformed_rate, 1),
            "udp_responses": {str(k): v for k, v in sorted(self.udp_responses.items())},
            "hostile_sent": self.hostile_sent,
            "hostile_answers": {k: list(v) for k, v in self.hostile_answers.items()},
            "bye_answers": list(self.bye_answers),
            "canary_hits": self.canary_hits,
            "elapsed": round(self.elapsed, 3),
            "stopped_early": self.stopped_early,
        }


@dataclass(kw_only=True)
class Flood:
    """One flood at ``127.0.0.1:port``. ``run()`` blocks; ``start()``/``wait()`` use a thread."""

    port: int
    host: str = LOOPBACK
    malformed: int = 10_000
    hostile: int = 100
    rate: float = 4000.0  # malformed datagrams per second
    max_seconds: float = 60.0
    seed: int = 0
    _stop: threading.Event = field(init=False, repr=False, default_factory=threading.Event)
    _thread: threading.Thread | None = field(init=False, repr=False, default=None)
    _report: FloodReport | None = field(init=False, repr=False, default=None)
    _error: BaseException | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if self.host != LOOPBACK:
            raise ValueError(f"the flood only targets {LOOPBACK}, not {self.host!r}")
        if not 0 < self.port < 65536:
            raise ValueError("port out of range")
        if self.malformed < 0 or self.hostile < 0 or self.rate <= 0 or self.max_seconds <= 0:
            raise ValueError("counts must be >= 0, rate and max_seconds positive")

    def run(self) -> FloodReport:
        started = time.monotonic()
        deadline = started + self.max_seconds
        with _Canary() as canary:
            hostile: dict[str, list[int]] = {}
            byes: list[int] = []
            spread = self.malformed / self.rate if self.malformed else 1.0
            worker = threading.Thread(
                target=self._send_hostile,
                args=(canary.url, spread, deadline, hostile, byes),
                name="flood-hostile",
                daemon=True,
            )
            worker.start()
            sent, by_kind, responses, first, last = self._send_malformed(deadline)
            worker.join(max(0.0, deadline - time.monotonic()) + TRANSACTION_TIMEOUT)
            hits = canary.hits
        hostile_sent = sum(len(v) for v in hostile.values())
        report = FloodReport(
            malformed_sent=sent,
            malformed_by_kind=dict(by_kind),
            udp_responses=dict(responses),
            hostile_sent=hostile_sent,
            hostile_answers={k: tuple(v) for k, v in hostile.items()},
            bye_answers=tuple(byes),
            canary_hits=hits,
            malformed_seconds=max(0.0, last - first),
            elapsed=time.monotonic() - started,
            stopped_early=sent < self.malformed or hostile_sent < self.hostile,
        )
        self._report = report
        return report

    def _send_malformed(self, deadline: float) -> tuple[int, Counter[str], Counter[int], float, float]:
        by_kind: Counter[str] = Counter()
        responses: Counter[int] = Counter()
        sent = 0
        first = last = 0.0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((LOOPBACK, 0))
            sock.setblocking(False)
            datagrams = malformed_datagrams(
                self.malformed, target_port=self.port, local_port=sock.getsockname()[1], seed=self.seed
            )
            base = time.perf_counter()
            for kind, datagram in datagrams:
                if self._stop.is_set() or time.monotonic() > deadline:
                    break
                wait = base + sent / self.rate - time.perf_counter()
                if wait > TICK:
                    time.sleep(wait)  # pacing to the requested rate
                    _drain(sock, responses)
                try:
                    sock.sendto(datagram, (self.host, self.port))
                except BlockingIOError:
                    time.sleep(TICK)  # our send buffer is full: let it empty, then go on
                    sock.sendto(datagram, (self.host, self.port))
                now = time.perf_counter()
                first = first or now
                last = now
                sent += 1
                by_kind[kind.value] += 1
            settle = time.monotonic() + 0.5  # late answers to the last datagrams
            while time.monotonic() < settle:
                time.sleep(TICK)
                _drain(sock, responses)
        return sent, by_kind, responses, first, last

    def _send_hostile(
        self, canary_url: str, spread: float, deadline: float, answers: dict[str, list[int]], byes: list[int]
    ) -> None:
        if not self.hostile:
            return
        interval = spread / self.hostile
        kinds = list(HostileKind)
        with (
            socket.create_connection((self.host, self.port), timeout=TRANSACTION_TIMEOUT) as sock,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as media,
        ):
            media.bind((LOOPBACK, 0))  # the offered (never used) media port
            local_port = sock.getsockname()[1]
            reader = _TcpReader(sock)
            base = time.monotonic()
            for index in range(self.hostile):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                wait = base + index * interval - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # pacing: spread over the malformed stream
                kind = kinds[index % len(kinds)]
                call_id = f"flood-{index:04d}-{random.getrandbits(48):012x}@flood.invalid"
                invite = hostile_invite(
                    kind,
                    target_port=self.port,
                    local_port=local_port,
                    canary_url=canary_url,
                    media_port=media.getsockname()[1],
                    call_id=call_id,
                )
                sock.sendall(invite)
                response = reader.final_response("INVITE", call_id)
                status = _status(response) if response else None
                answers.setdefault(kind.value, []).append(status or 0)
                if response is None or status is None or not 200 <= status < 300:
                    continue
                for method, cseq in (("ACK", 1), ("BYE", 2)):
                    sock.sendall(
                        _in_dialog(
                            method, invite, response, cseq=cseq, local_port=local_port, target_port=self.port
                        )
                    )
                bye = reader.final_response("BYE", call_id)
                byes.append((_status(bye) or 0) if bye else 0)

    def start(self) -> Flood:
        if self._thread is not None:
            raise RuntimeError("flood already started")

        def target() -> None:
            try:
                self.run()
            except BaseException as exc:  # handed to wait()
                self._error = exc

        self._thread = threading.Thread(target=target, name="flood", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> FloodReport:
        if self._thread is None:
            raise RuntimeError("flood not started")
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("flood still running")
        if self._error is not None:
            raise self._error
        assert self._report is not None
        return self._report


def _drain(sock: socket.socket, responses: Counter[int]) -> None:
    while True:
        try:
            data = sock.recv(65535)
        except (BlockingIOError, ConnectionRefusedError):
            return
        responses[_status(data) or 0] += 1


class _TcpReader:
    """SIP messages from a TCP stream, framed by Content-Length (RFC 3261 §18.3)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    def final_response(self, method: str, call_id: str) -> bytes | None:
        """The next final response to ``method`` in dialog ``call_id``; anything else is skipped."""
        deadline = time.monotonic() + TRANSACTION_TIMEOUT
        while True:
            message = self._next(deadline)
            if message is None:
                return None
            status = _status(message)
            cseq = _header(message, "CSeq") or ""
            if (
                status is not None
                and status >= 200
                and cseq.split()[-1:] == [method]
                and _header(message, "Call-ID") == call_id
            ):
                return message

    def _next(self, deadline: float) -> bytes | None:
        while True:
            self._buffer = self._buffer.lstrip(b"\r\n")  # keep-alive CRLFs between messages
            head, separator, rest = self._buffer.partition(b"\r\n\r\n")
            if separator:
                length = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
                size = int(length.group(1)) if length else 0
                if len(rest) >= size:
                    self._buffer = rest[size:]
                    return head + separator + rest[:size]
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                return None
            self._buffer += chunk


class _Canary:
    """A TCP listener on 127.0.0.1 that counts connections: the target of the external entities."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((LOOPBACK, 0))
        self._sock.listen()
        self._sock.settimeout(0.1)
        self.hits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="flood-canary", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.hits += 1
            connection.close()

    def __enter__(self) -> _Canary:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Flood a local SRS with malformed SIP and hostile XML.")
    parser.add_argument("port", type=int, help=f"SIP port of the SRS on {LOOPBACK} (UDP and TCP)")
    parser.add_argument("--malformed", type=int, default=10_000)
    parser.add_argument("--hostile", type=int, default=100)
    parser.add_argument("--rate", type=float, default=4000.0, help="malformed datagrams per second")
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    flood = Flood(
        port=args.port,
        malformed=args.malformed,
        hostile=args.hostile,
        rate=args.rate,
        max_seconds=args.max_seconds,
        seed=args.seed,
    )
    sys.stdout.write(json.dumps(flood.run().as_json()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
