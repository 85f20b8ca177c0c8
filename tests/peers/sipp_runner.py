"""Run SIPp (Debian ``sip-tester``) scenarios as subprocesses and read back what happened.

``SippProcess`` starts one scenario against a target with fresh RFC 7865 ids and free local ports, can
wait for the answered media ports while the call is up (from the ``-trace_logs`` file), and finally
returns a ``SippResult`` with the exit code, the ``<log>`` lines and every SIP message from the
``-trace_msg`` file (with its time stamp, for retransmission checks).

``run_siprec_call`` is the usual two-stream call: SIPp's ``rtp_stream`` sends a tone on m-line 1 and,
because ``rtp_stream`` only feeds the first m-line, an ``RtpSender`` sends the second tone to the port
SIPp captured from the answer for m-line 2. Both are blocking; from async tests use
``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.peers.rtp_sender import PTIME, Codec, Impairments, RtpSender, SendReport, encode, sine
from tests.peers.sipp_trace import (
    Answer,
    SippResult,
    answer_from,
    parse_log_events,
    parse_message_trace,
)
from tests.peers.siprec_offer import CALLEE_AOR, CALLER_AOR, b64_id, local_address_for

__all__ = [
    "SIPP",
    "SIPREC_UAC",
    "SIPREC_UAC_NOACK",
    "Answer",
    "SippError",
    "SippProcess",
    "SippResult",
    "SiprecCallResult",
    "free_port",
    "run_sipp",
    "run_siprec_call",
    "siprec_keys",
    "write_tone_file",
]

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
SCENARIOS = Path(__file__).parent / "sipp"
SIPREC_UAC = SCENARIOS / "siprec_uac.xml"
SIPREC_UAC_NOACK = SCENARIOS / "siprec_uac_noack.xml"
CALLER_TONE_FILE = "caller_tone.pcmu"  # fixed name: rtp_stream takes no keywords (see siprec_uac.xml)
CALLER_TONE_FILES = {Codec.PCMU: CALLER_TONE_FILE, Codec.PCMA: "caller_tone.pcma"}
POLL = 0.01


class SippError(RuntimeError):
    """SIPp could not be run, or ended before giving what was waited for."""


def free_port(host: str = "127.0.0.1", *, kind: socket.SocketKind = socket.SOCK_DGRAM, block: int = 1) -> int:
    """A port with ``block`` consecutive free ports from it (UDP or TCP), found by binding them."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind((host, 0))
            base = int(probe.getsockname()[1]) & ~1  # even, as RTP likes it
        if base + block > 65535:
            continue
        held: list[socket.socket] = []
        try:
            for offset in range(block):
                sock = socket.socket(socket.AF_INET, kind)
                held.append(sock)
                sock.bind((host, base + offset))
            return base
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise SippError(f"no block of {block} free ports on {host}")


def siprec_keys(*, labels: tuple[str, str] = ("1", "2"), stream2_port: int = 0) -> dict[str, str]:
    """The -key values the SIPREC scenarios need, with fresh RFC 7865 ids."""
    return {
        "label1": labels[0],
        "label2": labels[1],
        "stream2_port": str(stream2_port),
        "group_id": b64_id(),
        "session_id": b64_id(),
        "caller_id": b64_id(),
        "callee_id": b64_id(),
        "stream1_id": b64_id(),
        "stream2_id": b64_id(),
        "start_time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "caller_aor": CALLER_AOR,
        "callee_aor": CALLEE_AOR,
    }


def write_tone_file(path: Path, frequency: float, seconds: float, codec: Codec = Codec.PCMU) -> None:
    """Raw G.711 bytes, as SIPp's rtp_stream reads them."""
    path.write_bytes(encode(codec, sine(frequency, seconds)).tobytes())


@dataclass(kw_only=True)
class SippProcess:
    """One SIPp run. ``target`` is ``host:port``; ``duration`` sets -d (the scenario's default pause)."""

    scenario: Path
    target: str
    workdir: Path
    transport: str = "udp"
    duration: float = 5.0
    keys: Mapping[str, str] = field(default_factory=dict)
    sets: Mapping[str, str] = field(default_factory=dict)  # -set, for <Global> variables
    service: str = "srs"
    calls: int = 1
    local_ip: str | None = None
    local_port: int | None = None
    media_port: int | None = None
    caller_tone: float = 440.0
    caller_codec: Codec = Codec.PCMU  # of the tone file rtp_stream plays (caller_tone.pcmu / .pcma)
    call_seconds: float | None = None  # whole call, when the scenario pauses beyond -d; sizes the tone file
    timeout: float = 60.0
    extra_args: Sequence[str] = ()
    _process: subprocess.Popen[bytes] | None = field(init=False, default=None, repr=False)
    _started: float = field(init=False, default=0.0, repr=False)
    _command: tuple[str, ...] = field(init=False, default=(), repr=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / "sipp_logs.log"

    @property
    def message_path(self) -> Path:
        return self.workdir / "sipp_messages.log"

    @property
    def error_path(self) -> Path:
        return self.workdir / "sipp_errors.log"

    @property
    def output_path(self) -> Path:
        return self.workdir / "sipp_output.txt"

    @property
    def global_timeout(self) -> float:
        """SIPp's -timeout: ``timeout``, but never shorter than the call plus 30 s."""
        return max(self.timeout, max(self.duration, self.call_seconds or 0.0) + 30)

    def command(self) -> list[str]:
        if self.transport not in ("udp", "tcp"):
            raise ValueError("transport is udp or tcp")
        host, _, port = self.target.rpartition(":")
        ip = self.local_ip or local_address_for(host, int(port or 5060))
        kind = socket.SOCK_STREAM if self.transport == "tcp" else socket.SOCK_DGRAM
        sip_port = self.local_port or free_port(ip, kind=kind)
        media_port = self.media_port or free_port(ip, block=4)  # SIPp binds -mp and -mp+2 (audio, video)
        keys = {**siprec_keys(stream2_port=media_port + 2), **self.keys}
        args = [
            SIPP,
            self.target,
            "-sf",
            str(self.scenario),
            "-m",
            str(self.calls),
            "-d",
            str(round(self.duration * 1000)),
            "-s",
            self.service,
            "-t",
            "t1" if self.transport == "tcp" else "u1",
            "-i",
            ip,
            "-mi",
            ip,
            "-p",
            str(sip_port),
            "-mp",
            str(media_port),
            "-nostdin",
            "-trace_logs",
            "-log_file",
            str(self.log_path),
            "-trace_msg",
            "-message_file",
            str(self.message_path),
            "-trace_err",
            "-error_file",
            str(self.error_path),
            "-timeout",
            f"{math.ceil(self.global_timeout)}s",
            "-timeout_error",
        ]
        for name, value in keys.items():
            args += ["-key", name, value]
        for name, value in self.sets.items():
            args += ["-set", name, value]
        return [*args, *self.extra_args]

    def start(self) -> Self:
        if self._process is not None:
            raise SippError("already started")
        if not Path(SIPP).exists():
            raise SippError(f"SIPp not found at {SIPP}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        # SIPp appends to its trace files: a previous run's answer would be read as this call's.
        for trace in (self.log_path, self.message_path, self.error_path):
            trace.unlink(missing_ok=True)
        # rtp_stream loops this file; longer than the call so the loop never clicks.
        seconds = math.ceil(max(self.duration, self.call_seconds or 0.0)) + 1
        tone_file = self.workdir / CALLER_TONE_FILES[self.caller_codec]
        write_tone_file(tone_file, self.caller_tone, seconds, self.caller_codec)
        self._command = tuple(self.command())
        with self.output_path.open("wb") as output:
            self._process = subprocess.Popen(
                self._command,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self._started = time.monotonic()
        return self

    def wait_for_answer(self, timeout: float = 10.0) -> Answer:
        """The answered media ports, as soon as the scenario has logged them."""
        process = self._require_started()
        deadline = time.monotonic() + timeout
        while True:
            answer = answer_from(parse_log_events(_read(self.log_path)))
            if answer is not None:
                return answer
            if process.poll() is not None:
                raise SippError(
                    f"SIPp exited ({process.returncode}) before the answer:\n{_read(self.error_path)}"
                )
            if time.monotonic() >= deadline:
                raise SippError(f"no answer within {timeout:g} s")
            time.sleep(POLL)  # polling a file SIPp appends to; returns as soon as the line is there

    def wait(self, timeout: float | None = None) -> SippResult:
        process = self._require_started()
        limit = self.global_timeout + 10 if timeout is None else timeout
        timed_out = False
        try:
            process.wait(max(0.0, self._started + limit - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            self.kill()
        return SippResult(
            returncode=process.returncode,
            timed_out=timed_out,
            command=self._command,
            workdir=self.workdir,
            output=_read(self.output_path),
            errors=_read(self.error_path),
            log=_read(self.log_path),
            messages=tuple(parse_message_trace(_read(self.message_path))),
        )

    def kill(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _require_started(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise SippError("not started")
        return self._process

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def run_sipp(
    scenario: Path,
    target: str,
    *,
    workdir: Path,
    transport: str = "udp",
    duration: float = 5.0,
    keys: Mapping[str, str] | None = None,
    sets: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    extra_args: Sequence[str] = (),
) -> SippResult:
    """Run a scenario to its end; ``keys`` override the fresh ``siprec_keys()``."""
    process = SippProcess(
        scenario=scenario,
        target=target,
        workdir=workdir,
        transport=transport,
        duration=duration,
        keys=keys or {},
        sets=sets or {},
        timeout=timeout,
        extra_args=extra_args,
    )
    with process:
        return process.wait()


@dataclass(frozen=True, slots=True, kw_only=True)
class SiprecCallResult:
    sipp: SippResult
    answer: Answer | None
    stream2: SendReport | None  # the helper sender's report for m-line 2 (None if never answered)


def run_siprec_call(
    target: str,
    *,
    workdir: Path,
    duration: float = 5.0,
    transport: str = "udp",
    caller_tone: float = 440.0,
    callee_tone: float = 1000.0,
    labels: tuple[str, str] = ("1", "2"),
    impairments: Impairments | None = None,
    answer_timeout: float = 10.0,
    timeout: float = 60.0,
    send_stream2: bool = True,
) -> SiprecCallResult:
    """One SIPREC call: SIPp sends ``caller_tone`` on m-line 1, an RtpSender ``callee_tone`` on m-line 2
    (with ``impairments``), from the port offered for m-line 2 in the INVITE; with ``send_stream2`` false,
    m-line 2 stays silent (a one-way call)."""
    host, _, port = target.rpartition(":")
    ip = local_address_for(host, int(port or 5060))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp_socket:
        rtp_socket.bind((ip, 0))
        stream2_port = int(rtp_socket.getsockname()[1])
        sipp = SippProcess(
            scenario=SIPREC_UAC,
            target=target,
            workdir=workdir,
            transport=transport,
            duration=duration,
            keys={**siprec_keys(labels=labels, stream2_port=stream2_port)},
            local_ip=ip,
            caller_tone=caller_tone,
            timeout=timeout,
        )
        with sipp:
            try:
                answer = sipp.wait_for_answer(answer_timeout)
            except SippError:
                return SiprecCallResult(sipp=sipp.wait(), answer=None, stream2=None)
            if not send_stream2:
                return SiprecCallResult(sipp=sipp.wait(), answer=answer, stream2=None)
            sender = RtpSender(
                destination=(answer.ip, answer.port2),
                duration=max(PTIME, duration - 0.05),  # ends just before SIPp's BYE
                tone_hz=callee_tone,
                ssrc=int.from_bytes(uuid.uuid4().bytes[:4], "big"),
                impairments=impairments or Impairments(),
                sock=rtp_socket,
            ).start()
            result = sipp.wait()
            sender.stop()
            return SiprecCallResult(sipp=result, answer=answer, stream2=sender.wait(5.0))
