"""SIPREC interop calls: one SIPp scenario per SRC dialect or mid-call case (issue 3), run as a real call.

Each ``*_call`` function runs its scenario from ``tests/peers/sipp/`` against ``target`` (``host:port``) with
fresh identifiers and returns an ``InteropCall``: what SIPp exchanged, the answered ports and the reports of
the helper RTP senders. SIPp's ``rtp_stream`` feeds only the first m-line; every further m-line gets an
``RtpSender`` sending from the port offered for it in the INVITE to the port the SRS answered. All of it is
blocking; from async tests use ``asyncio.to_thread``.

| function                  | scenario                       | case                                              |
|---------------------------|--------------------------------|---------------------------------------------------|
| ``avaya_update_call``     | siprec_avaya_update.xml        | placeholder participant, then metadata-only UPDATE |
| ``broadworks_hold_call``  | siprec_broadworks_hold.xml     | BroadWorks dialect, mixed m-line, c=0.0.0.0 hold   |
| ``third_part_call``       | siprec_third_part.xml          | SDP + application/gtd + draft-namespace metadata   |
| ``conference_call``       | siprec_conference.xml          | four m-lines, four participants                    |
| ``session_refresh_call``  | siprec_session_refresh.xml     | RFC 4028 refresh re-INVITEs, refresher=uac         |
"""

from __future__ import annotations

import datetime as dt
import socket
import uuid
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from tests.peers.rtp_sender import PTIME, Codec, RtpSender, SendReport
from tests.peers.sipp_runner import SippError, SippProcess, siprec_keys
from tests.peers.sipp_trace import Answer, SippResult
from tests.peers.siprec_offer import b64_id, local_address_for

__all__ = [
    "AVAYA_UPDATE",
    "BROADWORKS_CALLEE",
    "BROADWORKS_CALLER",
    "BROADWORKS_HOLD",
    "CONFERENCE",
    "CONFERENCE_AORS",
    "DUMMY_AOR",
    "SESSION_REFRESH",
    "THIRD_PART",
    "InteropCall",
    "avaya_update_call",
    "broadworks_hold_call",
    "conference_call",
    "run_call",
    "session_refresh_call",
    "third_part_call",
]

SCENARIOS = Path(__file__).parent / "sipp"
AVAYA_UPDATE = SCENARIOS / "siprec_avaya_update.xml"
BROADWORKS_HOLD = SCENARIOS / "siprec_broadworks_hold.xml"
THIRD_PART = SCENARIOS / "siprec_third_part.xml"
CONFERENCE = SCENARIOS / "siprec_conference.xml"
SESSION_REFRESH = SCENARIOS / "siprec_session_refresh.xml"

DUMMY_AOR = "sip:dummy@sbce.invalid"  # the placeholder participant of an SBCE-style INVITE
BROADWORKS_CALLER = "sip:+3614567890@as.voip.example.hu"
BROADWORKS_CALLEE = "sip:06705551234@voip.example.hu;user=phone"
CONFERENCE_AORS = (
    "sip:+3612345601@pbx.example.hu",
    "sip:+3612345602@pbx.example.hu",
    "sip:+3612345603@pbx.example.hu",
    "sip:+3612345604@pbx.example.hu",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class InteropCall:
    sipp: SippResult
    answer: Answer | None  # None when the SRS never answered 200 to the INVITE
    senders: tuple[SendReport, ...]  # the helper senders of m-lines 2, 3, ... in order
    keys: Mapping[str, str]  # the -key values the scenario ran with

    @property
    def call_id(self) -> str:
        return self.sipp.call_id


def _stamp(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def run_call(
    scenario: Path,
    target: str,
    *,
    workdir: Path,
    keys: Mapping[str, str],
    sets: Mapping[str, str] | None = None,
    duration: float,
    call_seconds: float,
    caller_tone: float,
    caller_codec: Codec = Codec.PCMU,
    extra_tones: Sequence[float] = (),
    transport: str = "udp",
    answer_timeout: float = 10.0,
    timeout: float = 60.0,
) -> InteropCall:
    """Run ``scenario`` as one call lasting ``call_seconds`` in all (``duration`` is its -d pause).

    m-line 1 carries ``caller_tone`` from SIPp; m-line k (k >= 2) carries ``extra_tones[k - 2]`` from an
    ``RtpSender`` bound to the port offered as ``[streamK_port]``, for the whole call."""
    host, _, port = target.rpartition(":")
    ip = local_address_for(host, int(port or 5060))
    with ExitStack() as stack:
        sockets = []
        for _ in extra_tones:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            sock.bind((ip, 0))
            sockets.append(sock)
        stream_keys = {f"stream{k + 2}_port": str(s.getsockname()[1]) for k, s in enumerate(sockets)}
        all_keys = {**siprec_keys(), **keys, **stream_keys}
        sipp = SippProcess(
            scenario=scenario,
            target=target,
            workdir=workdir,
            transport=transport,
            duration=duration,
            call_seconds=call_seconds,
            keys=all_keys,
            sets=sets or {},
            local_ip=ip,
            caller_tone=caller_tone,
            caller_codec=caller_codec,
            timeout=timeout,
        )
        with sipp:
            try:
                answer = sipp.wait_for_answer(answer_timeout)
            except SippError:
                return InteropCall(sipp=sipp.wait(), answer=None, senders=(), keys=all_keys)
            senders = [
                RtpSender(
                    destination=(answer.ip, answer.ports[k + 1]),
                    duration=max(PTIME, call_seconds - 0.05),  # ends just before SIPp's BYE
                    tone_hz=tone,
                    ssrc=int.from_bytes(uuid.uuid4().bytes[:4], "big"),
                    sock=sock,
                ).start()
                for k, (tone, sock) in enumerate(zip(extra_tones, sockets, strict=True))
                if k + 1 < len(answer.ports)
            ]
            result = sipp.wait()
            for sender in senders:
                sender.stop()
            reports = tuple(sender.wait(5.0) for sender in senders)
            return InteropCall(sipp=result, answer=answer, senders=reports, keys=all_keys)


def avaya_update_call(
    target: str,
    *,
    workdir: Path,
    before_update: float,
    after_update: float,
    caller_tone: float = 440.0,
    callee_tone: float = 1000.0,
) -> InteropCall:
    """Two streams; the INVITE names only ``DUMMY_AOR``; after ``before_update`` s a metadata-only UPDATE
    names the real caller and callee (``siprec_offer.CALLER_AOR``/``CALLEE_AOR``); the call goes on for
    ``after_update`` s."""
    now = dt.datetime.now(dt.UTC)
    keys = {
        "dummy_id": b64_id(),
        "dummy_aor": DUMMY_AOR,
        "start_time": _stamp(now),
        "update_time": _stamp(now + dt.timedelta(seconds=before_update)),
    }
    return run_call(
        AVAYA_UPDATE,
        target,
        workdir=workdir,
        keys=keys,
        sets={"update_ms": str(round(before_update * 1000))},
        duration=after_update,
        call_seconds=before_update + after_update,
        caller_tone=caller_tone,
        extra_tones=(callee_tone,),
    )


def broadworks_hold_call(
    target: str, *, workdir: Path, talk: float, hold: float, after: float, tone: float = 440.0
) -> InteropCall:
    """One mixed PCMA m-line: ``talk`` s of ``tone``, hold (``c=0.0.0.0``) for ``hold`` s without RTP,
    resume, ``after`` s of the tone again."""
    budapest = dt.timezone(dt.timedelta(hours=1))  # BroadWorks stamps local time with its offset
    keys = {
        "label1": "1",
        "start_time": dt.datetime.now(budapest).isoformat(timespec="seconds"),
        "caller_aor": BROADWORKS_CALLER,
        "callee_aor": BROADWORKS_CALLEE,
        **{
            f"{name}_uuid": str(uuid.uuid4())
            for name in ("recording", "group", "session", "caller", "callee", "stream", "extension")
        },
    }
    return run_call(
        BROADWORKS_HOLD,
        target,
        workdir=workdir,
        keys=keys,
        sets={"talk_ms": str(round(talk * 1000)), "hold_ms": str(round(hold * 1000))},
        duration=after,
        call_seconds=talk + hold + after,
        caller_tone=tone,
        caller_codec=Codec.PCMA,
        timeout=talk + hold + after + 60,
    )


def third_part_call(
    target: str, *, workdir: Path, duration: float, caller_tone: float = 440.0, callee_tone: float = 1000.0
) -> InteropCall:
    """Ribbon style: SDP, application/gtd and draft-namespace metadata; labels 10 and 20."""
    return run_call(
        THIRD_PART,
        target,
        workdir=workdir,
        keys={"label1": "10", "label2": "20"},
        duration=duration,
        call_seconds=duration,
        caller_tone=caller_tone,
        extra_tones=(callee_tone,),
    )


def conference_call(
    target: str,
    *,
    workdir: Path,
    duration: float,
    tones: Sequence[float],
    sender_of_mline: Sequence[int],
) -> InteropCall:
    """Four participants (``CONFERENCE_AORS``, in document and associate-time order), participant p speaking
    ``tones[p]``; m-line i is sent by participant ``sender_of_mline[i]`` (a permutation of 0..3)."""
    if sorted(sender_of_mline) != [0, 1, 2, 3] or len(tones) != 4:
        raise ValueError("four tones, and sender_of_mline a permutation of 0..3")
    now = dt.datetime.now(dt.UTC)
    stream_ids = [b64_id() for _ in range(4)]
    keys = {"start_time": _stamp(now)}
    for i, participant in enumerate(sender_of_mline):
        keys[f"label{i + 1}"] = str(i + 1)
        keys[f"stream{i + 1}_id"] = stream_ids[i]
        keys[f"p{participant + 1}_sends"] = stream_ids[i]
    for p, aor in enumerate(CONFERENCE_AORS):
        keys[f"p{p + 1}_id"] = b64_id()
        keys[f"p{p + 1}_aor"] = aor
        keys[f"p{p + 1}_time"] = _stamp(now + dt.timedelta(seconds=p))
    mline_tones = [tones[participant] for participant in sender_of_mline]
    return run_call(
        CONFERENCE,
        target,
        workdir=workdir,
        keys=keys,
        duration=duration,
        call_seconds=duration,
        caller_tone=mline_tones[0],
        extra_tones=mline_tones[1:],
    )


def session_refresh_call(
    target: str,
    *,
    workdir: Path,
    refresh_every: float,
    refreshes: int,
    after: float,
    session_expires: str = "90;refresher=uac",
    min_se: str = "90",
    caller_tone: float = 440.0,
    callee_tone: float = 1000.0,
) -> InteropCall:
    """Two streams; ``refreshes`` refresh re-INVITEs, one every ``refresh_every`` s, then ``after`` s more."""
    if refreshes < 1:
        raise ValueError("at least one refresh")
    return run_call(
        SESSION_REFRESH,
        target,
        workdir=workdir,
        keys={"session_expires": session_expires, "min_se": min_se},
        sets={"refresh_ms": str(round(refresh_every * 1000)), "refreshes": str(refreshes)},
        duration=after,
        call_seconds=refresh_every * refreshes + after,
        caller_tone=caller_tone,
        extra_tones=(callee_tone,),
    )
