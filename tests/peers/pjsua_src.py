"""One SIPREC recording call placed by a pjsua2 SRC (RFC 7866), run as a subprocess by the tests.

    python tests/peers/pjsua_src.py --target sip:srs@127.0.0.1:5070 --duration 5 \\
        --caller-tone 440 --callee-tone 1000 --json-out result.json
    python tests/peers/pjsua_src.py --target sip:srs@127.0.0.1:5071 --transport tls \\
        --tls-ca data/tls/cert.pem --srtp sdes --srtp-suites AES_CM_128_HMAC_SHA1_32

The INVITE carries a multipart/mixed body: an SDP offer with two sendonly audio m-lines, each with
``a=label:N`` (RFC 4574, required by RFC 7866), and an ``application/rs-metadata+xml`` part (RFC 7865)
in which the caller sends the first label and the callee the second. pjsua2 puts that metadata part
before the SDP (the SIPp scenario puts it after; both orders occur in the field). ``Require: siprec``
and a Contact with ``+sip.src`` mark it as a recording session (RFC 7866 §6.1). After the answer each
m-line carries a sine tone (or a WAV file) for ``--duration`` seconds, then the SRC sends BYE.

``--reinvite-after S`` sends a re-INVITE S seconds into the media: the same two sendonly labelled m-lines in a
fresh pjsua2 offer and, with ``--reinvite-metadata FILE``, a new metadata part (a transfer, a party joining).
The SRC waits for its final answer (a non-2xx ends the call with ``REINVITE_FAILED``) and keeps sending until
``--duration``; the report carries the re-INVITE, its status and both SDPs.

``--dtmf "2.0:1,3.5:9"`` presses keys during the call: at each time (seconds after the answer) the digits
after it are sent as RFC 4733 telephone-events (``Call.sendDtmf`` with ``PJSUA_DTMF_METHOD_RFC2833``, 160 ms
a digit, pjsua2's default), which pjsua2 sends on the call's first audio stream, m-line 1 (the caller's); the
audio of that stream pauses while an event is sent. The report's ``dtmf`` lists each send with its time after
the answer, its wall-clock time (``time.time()``) and ``rtp_ts``, the RTP timestamp of m-line 1's last packet
then (pjsua2's RTP clock runs ahead of its wall clock by about 40 ms with every digit sent), or the error
pjsua2 raised (no telephone-event negotiated, say).

``--transport tls`` places the call over SIP/TLS, checking the server's certificate against ``--tls-ca`` when
given (a self-signed server certificate is its own CA) and not at all otherwise. ``--srtp sdes`` offers
``RTP/SAVP`` m-lines keyed by SDES (RFC 4568 ``a=crypto``) and sends SRTP, also over UDP and TCP;
``--srtp-suites`` chooses and orders the offered crypto-suites (one by default: see ``parse_args``).

A JSON report is written to ``--json-out`` (if given) and printed as the last line of stdout. The
process exit status is one of ``ExitCode``. pjsua2 runs in this thread only (``threadCnt=0``,
``mainThreadOnly``) and every Call object is released before ``libDestroy()``, otherwise pjsua2
aborts the process; a faulthandler watchdog ends the process if pjsua2 ever blocks.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import gc
import json
import os
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pjsua2 as pj

if not __package__:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.peers.pjsua_report import (
    OUTCOMES,
    ExitCode,
    Report,
    StreamReport,
    bye_results,
    invite_final_response,
    sdp_of,
)
from tests.peers.siprec_offer import add_labels, build_metadata, local_address_for, parse_target

SAMPLE_RATE = 8000
POLL_MS = 10
DTMF_KEYS = frozenset("0123456789*#ABCD")  # RFC 4733 §3.2 events 0-15
STATS_EVERY = 0.25


def write_sine_wav(path: Path, frequency: float, seconds: float, level_dbfs: float) -> None:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    amplitude = 10 ** (level_dbfs / 20)
    pcm = np.round(np.sin(2 * np.pi * frequency * t) * amplitude * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())


_PROTOS = {
    pj.PJMEDIA_TP_PROTO_RTP_AVP: "RTP/AVP",
    pj.PJMEDIA_TP_PROTO_RTP_SAVP: "RTP/SAVP",
    pj.PJMEDIA_TP_PROTO_RTP_AVPF: "RTP/AVPF",
    pj.PJMEDIA_TP_PROTO_RTP_SAVPF: "RTP/SAVPF",
}
_TRANSPORTS = {
    "udp": pj.PJSIP_TRANSPORT_UDP,
    "tcp": pj.PJSIP_TRANSPORT_TCP,
    "tls": pj.PJSIP_TRANSPORT_TLS,
}

_MEDIA_STATUS = {
    pj.PJSUA_CALL_MEDIA_NONE: "NONE",
    pj.PJSUA_CALL_MEDIA_ACTIVE: "ACTIVE",
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "LOCAL_HOLD",
    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "REMOTE_HOLD",
    pj.PJSUA_CALL_MEDIA_ERROR: "ERROR",
}


class SrcCall(pj.Call):  # type: ignore[misc]
    """Callbacks only record what happened; the main loop decides. Exceptions must not cross into C++."""

    def __init__(self, account: Any, labels: tuple[str, ...], report: Report) -> None:
        super().__init__(account)
        self.labels = labels
        self.report = report
        self.state = pj.PJSIP_INV_STATE_NULL
        self.confirmed_at: float | None = None
        self.disconnected_at: float | None = None
        self.media_ready = False
        self.reinvite_sent = False  # set before our mid-call re-INVITE leaves: later INVITE events are its
        self.errors: list[str] = []

    def onCallSdpCreated(self, prm: Any) -> None:
        try:
            if not prm.sdp.wholeSdp:
                # pjsua2 prints the SDP into a 1 KB buffer: a longer one arrives empty, and setting it aborts.
                self.errors.append("onCallSdpCreated: pjsua2 handed over no SDP (longer than 1 KB?)")
                return
            if self.labels:  # the offer, a re-offer and any answer to one keep the labels
                prm.sdp.wholeSdp = add_labels(prm.sdp.wholeSdp, self.labels)
            if not self.report.offer_sdp:
                self.report.offer_sdp = prm.sdp.wholeSdp
            elif self.reinvite_sent and not self.report.reinvite_offer_sdp:
                self.report.reinvite_offer_sdp = prm.sdp.wholeSdp
        except Exception as exc:
            self.errors.append(f"onCallSdpCreated: {exc!r}")

    def onCallState(self, prm: Any) -> None:
        try:
            info = self.getInfo()
            self.state = info.state
            self.report.call_id = info.callIdString
            if info.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_at is None:
                self.confirmed_at = time.monotonic()
            elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self.disconnected_at = time.monotonic()
                self.report.ended_with = f"{info.lastStatusCode} {info.lastReason}"
        except Exception as exc:
            self.errors.append(f"onCallState: {exc!r}")

    def onCallTsxState(self, prm: Any) -> None:
        # Only the INVITE transaction is read here: with mainThreadOnly, pjsua2 reports the BYE's
        # outcome as a bare user event, so BYE results are read from the SIP log instead.
        try:
            event = prm.e
            if event.type != pj.PJSIP_EVENT_TSX_STATE:
                return
            tsx_event = event.body.tsxState
            tsx = tsx_event.tsx
            if tsx.method != "INVITE" or tsx.role != pj.PJSIP_ROLE_UAC:
                return
            if self.reinvite_sent:
                self._reinvite_event(tsx_event, tsx)
            elif tsx_event.type == pj.PJSIP_EVENT_TX_MSG and not self.report.invite:
                self.report.invite = tsx_event.src.tdata.wholeMsg
            elif tsx_event.type == pj.PJSIP_EVENT_RX_MSG:
                code = tsx.statusCode
                if code < 200:
                    self.report.provisional.append(code)
                elif not self.report.answer:
                    message = tsx_event.src.rdata.wholeMsg
                    self.report.status, self.report.reason = code, tsx.statusText
                    self.report.answer = message
                    self.report.answer_sdp = sdp_of(message) if code < 300 else ""
        except Exception as exc:
            self.errors.append(f"onCallTsxState: {exc!r}")

    def _reinvite_event(self, tsx_event: Any, tsx: Any) -> None:
        report = self.report
        if tsx_event.type == pj.PJSIP_EVENT_TX_MSG and not report.reinvite:
            report.reinvite = tsx_event.src.tdata.wholeMsg
        elif tsx_event.type == pj.PJSIP_EVENT_RX_MSG and tsx.statusCode >= 200 and not report.reinvite_status:
            message = tsx_event.src.rdata.wholeMsg
            report.reinvite_status, report.reinvite_reason = tsx.statusCode, tsx.statusText
            report.reinvite_answer = message
            report.reinvite_answer_sdp = sdp_of(message) if tsx.statusCode < 300 else ""

    def onCallMediaState(self, prm: Any) -> None:
        self.media_ready = True  # media is connected from the main loop, outside the callback


class Src:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.labels: tuple[str, ...] = () if args.labels == "none" else tuple(args.labels.split(","))
        self.report = Report(target=args.target, transport=args.transport, srtp=args.srtp)
        self.sources = (
            f"wav:{args.caller_wav}" if args.caller_wav else f"tone:{args.caller_tone:g}",
            f"wav:{args.callee_wav}" if args.callee_wav else f"tone:{args.callee_tone:g}",
        )
        self.report.streams = [
            StreamReport(index=i, label=self.labels[i] if self.labels else None, source=self.sources[i])
            for i in range(2)
        ]
        self.ep = pj.Endpoint()
        self.account: Any = None
        self.call: SrcCall | None = None
        self.players: list[Any] = []
        self.transmitting = False
        self.log_path: Path = args.log_file or workdir / "pjsua.log"
        self.bye_sent = False
        self.dtmf_due: list[tuple[float, str]] = list(args.dtmf)  # (seconds after the answer, digits)
        self.dtmf_sent: list[dict[str, Any]] = []

    # -- setup -----------------------------------------------------------------------------------
    def start_library(self, local_ip: str) -> int:
        args = self.args
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = 4
        cfg.uaConfig.userAgent = "Hangtar-test-SRC (pjsua2)"
        cfg.logConfig.consoleLevel = 0
        # The SIP message log (level 4) is also where the BYE's answer is read from.
        cfg.logConfig.filename = str(self.log_path)
        cfg.logConfig.level = 5 if args.log_file else 4
        cfg.logConfig.msgLogging = True
        cfg.medConfig.clockRate = SAMPLE_RATE
        cfg.medConfig.sndClockRate = SAMPLE_RATE
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        self.ep.libInit(cfg)

        tcfg = pj.TransportConfig()
        tcfg.boundAddress = local_ip
        tcfg.port = args.local_port
        if args.transport == "tls":
            tcfg.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD  # TLS 1.2 or later
            tcfg.tlsConfig.verifyServer = args.tls_ca is not None
            if args.tls_ca is not None:
                tcfg.tlsConfig.CaListFile = str(args.tls_ca)
        transport_id = int(self.ep.transportCreate(_TRANSPORTS[args.transport], tcfg))
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()

        wanted = [c.strip().upper() for c in args.codecs.split(",") if c.strip()]
        for codec in self.ep.codecEnum2():
            name = codec.codecId.split("/")[0].upper()
            priority = 255 - wanted.index(name) if name in wanted else 0
            self.ep.codecSetPriority(codec.codecId, priority)
        return transport_id

    def create_account(self, local_ip: str, transport_id: int) -> None:
        acfg = pj.AccountConfig()
        acfg.idUri = self.args.from_uri
        acfg.regConfig.registerOnAdd = False
        acfg.sipConfig.transportId = transport_id
        acfg.sipConfig.contactParams = ";+sip.src"  # RFC 7866 §6.1: the SRC feature tag
        acfg.mediaConfig.transportConfig.boundAddress = local_ip
        acfg.mediaConfig.transportConfig.port = self.args.rtp_port
        acfg.mediaConfig.transportConfig.randomizePort = self.args.rtp_port == 0
        if self.args.srtp == "sdes":
            media = acfg.mediaConfig
            media.srtpUse = pj.PJMEDIA_SRTP_MANDATORY  # RTP/SAVP m-lines
            media.srtpSecureSignaling = 0  # SDES keys over UDP/TCP too, as SBCs on trusted links do
            keyings = pj.IntVector()
            keyings.append(pj.PJMEDIA_SRTP_KEYING_SDES)
            media.srtpOpt.keyings = keyings
            cryptos = pj.SrtpCryptoVector()
            for name in self.args.srtp_suites.split(","):
                crypto = pj.SrtpCrypto()
                crypto.name = name.strip()
                cryptos.append(crypto)
            media.srtpOpt.cryptos = cryptos
        self.account = pj.Account()
        self.account.create(acfg)

    def create_players(self) -> None:
        seconds = self.args.duration + self.args.answer_timeout + 2
        for index, wav in enumerate((self.args.caller_wav, self.args.callee_wav)):
            player = pj.AudioMediaPlayer()
            if wav:
                player.createPlayer(str(wav), 0)  # loops until the call ends
            else:
                tone = (self.args.caller_tone, self.args.callee_tone)[index]
                path = self.workdir / f"tone_{index}.wav"
                write_sine_wav(path, tone, seconds, self.args.tone_level)
                player.createPlayer(str(path), pj.PJMEDIA_FILE_NO_LOOP)
            self.players.append(player)

    # -- the call --------------------------------------------------------------------------------
    @staticmethod
    def call_param() -> Any:
        """Options for the INVITE and the re-INVITE alike: two audio m-lines, both sendonly."""
        prm = pj.CallOpParam(True)
        prm.opt.audioCount = 2
        prm.opt.videoCount = 0
        # Both streams are sendonly: mediaDir takes effect only with PJSUA_CALL_SET_MEDIA_DIR.
        directions = pj.IntVector()
        directions.append(pj.PJMEDIA_DIR_ENCODING)
        directions.append(pj.PJMEDIA_DIR_ENCODING)
        prm.opt.mediaDir = directions
        prm.opt.flag |= pj.PJSUA_CALL_SET_MEDIA_DIR
        return prm

    @staticmethod
    def attach_metadata(prm: Any, text: str) -> None:
        """Send ``text`` as the ``application/rs-metadata+xml`` part; pjsua2 adds its SDP as another part."""
        part = pj.SipMultipartPart()
        part.contentType.type = "application"
        part.contentType.subType = "rs-metadata+xml"
        disposition = pj.SipHeader()
        disposition.hName, disposition.hValue = "Content-Disposition", "recording-session"  # RFC 7866
        part.headers.append(disposition)
        part.body = text
        prm.txOption.multipartContentType.type = "multipart"
        prm.txOption.multipartContentType.subType = "mixed"
        prm.txOption.multipartParts.append(part)

    def make_call(self) -> None:
        args = self.args
        prm = self.call_param()
        require = pj.SipHeader()
        require.hName, require.hValue = "Require", "siprec"  # RFC 7866 §6.1
        accept = pj.SipHeader()
        accept.hName, accept.hValue = "Accept", "application/sdp, application/rs-metadata+xml"
        prm.txOption.headers.append(require)
        prm.txOption.headers.append(accept)
        if args.metadata != "none":
            text = (
                Path(args.metadata).read_text(encoding="utf-8")
                if args.metadata
                else build_metadata((self.labels[0], self.labels[1]) if self.labels else None)
            )
            self.attach_metadata(prm, text)
        uri = args.target
        if args.transport != "udp" and "transport=" not in uri.lower():
            uri += f";transport={args.transport}"
        self.call = SrcCall(self.account, self.labels, self.report)
        self.call.makeCall(uri, prm)

    def reinvite(self, call: SrcCall) -> ExitCode | None:
        """The mid-call re-offer (RFC 3261 §14.1): the same two sendonly m-lines and labels in a fresh SDP from
        pjsua2 and, with --reinvite-metadata, a new metadata document; waits for its final answer.
        None when it got a 2xx, else how the run ends."""
        args = self.args
        prm = self.call_param()
        if args.reinvite_metadata is not None:
            self.attach_metadata(prm, args.reinvite_metadata.read_text(encoding="utf-8"))
        assert call.confirmed_at is not None
        self.report.reinvite_at = time.monotonic() - call.confirmed_at
        call.reinvite_sent = True
        report = self.report
        try:
            call.reinvite(prm)
        except pj.Error as exc:  # e.g. PJSIP_EMSGTOOLONG: pjsip prints a request into 4000 bytes at most
            report.error = f"re-INVITE not sent: {exc.info()}"
            return ExitCode.REINVITE_FAILED
        self.pump_until(
            lambda: report.reinvite_status != 0 or call.disconnected_at is not None, args.answer_timeout
        )
        if call.disconnected_at is not None:
            return None  # the caller reports the hangup
        if report.reinvite_status == 0:
            report.error = f"no final answer to the re-INVITE within {args.answer_timeout:g} s"
            return ExitCode.REINVITE_FAILED
        if not 200 <= report.reinvite_status < 300:
            report.error = f"re-INVITE answered {report.reinvite_status} {report.reinvite_reason}"
            return ExitCode.REINVITE_FAILED
        return None

    def connect_media(self, call: SrcCall) -> None:
        info = call.getInfo()
        for media in info.media:
            if media.index >= 2 or media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            stream = self.report.streams[media.index]
            stream.media_status = _MEDIA_STATUS.get(media.status, str(media.status))
            # A sendonly stream reports LOCAL_HOLD, not ACTIVE.
            if media.status in (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_LOCAL_HOLD):
                self.players[media.index].startTransmit(call.getAudioMedia(media.index))
        self.transmitting = True

    def sample_stats(self, call: SrcCall) -> None:
        for stream in self.report.streams:
            with contextlib.suppress(pj.Error):
                info = call.getStreamInfo(stream.index)
                stream.codec = info.codecName
                stream.proto = _PROTOS.get(info.proto, str(info.proto))
                stream.remote_rtp = info.remoteRtpAddress
                tx = call.getStreamStat(stream.index).rtcp.txStat
                stream.packets_sent = int(tx.pkt)
                stream.bytes_sent = int(tx.bytes)

    def pump_until(self, done: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        next_stats = 0.0
        while not done():
            now = time.monotonic()
            if now >= deadline:
                return False
            self.ep.libHandleEvents(POLL_MS)
            call = self.call
            if call is None:
                continue
            if call.errors:
                raise RuntimeError("; ".join(call.errors))
            if call.media_ready:
                call.media_ready = False
                self.connect_media(call)
            if self.transmitting and call.disconnected_at is None:
                self.send_due_dtmf(call)
                if now >= next_stats:
                    self.sample_stats(call)
                    next_stats = now + STATS_EVERY
        return True

    def send_due_dtmf(self, call: SrcCall) -> None:
        """Send the key presses whose time after the answer has come, as RFC 4733 events."""
        if call.confirmed_at is None:
            return
        elapsed = time.monotonic() - call.confirmed_at
        while self.dtmf_due and self.dtmf_due[0][0] <= elapsed:
            at, digits = self.dtmf_due.pop(0)
            prm = pj.CallSendDtmfParam()
            prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
            prm.digits = digits
            entry: dict[str, Any] = {
                "digits": digits,
                "scheduled": at,
                "at": round(time.monotonic() - call.confirmed_at, 4),
                "wall": time.time(),  # queued now; the stream sends it with its next frame
            }
            with contextlib.suppress(pj.Error):  # where m-line 1's RTP clock stands (the last packet sent)
                entry["rtp_ts"] = int(call.getStreamStat(0).rtcp.rtpTxLastTs)
            try:
                call.sendDtmf(prm)
            except pj.Error as exc:  # e.g. the answer took no telephone-event
                entry["error"] = exc.info()
            self.dtmf_sent.append(entry)

    def run(self) -> ExitCode:
        args = self.args
        host, port = parse_target(args.target)
        local_ip = args.bind or local_address_for(host, port)
        transport_id = self.start_library(local_ip)
        self.create_account(local_ip, transport_id)
        self.create_players()
        self.make_call()
        call = self.call
        assert call is not None

        answered = self.pump_until(
            lambda: call.confirmed_at is not None or call.disconnected_at is not None, args.answer_timeout
        )
        if not answered:
            self.report.error = f"no final answer within {args.answer_timeout:g} s"
            with contextlib.suppress(pj.Error):
                call.hangup(pj.CallOpParam(True))  # CANCEL
            self.pump_until(lambda: call.disconnected_at is not None, args.bye_timeout)
            return ExitCode.NO_ANSWER
        if call.confirmed_at is None:
            self.report.error = f"call rejected: {self.report.status} {self.report.reason}"
            return ExitCode.REJECTED

        def ended() -> bool:
            return call.disconnected_at is not None

        if args.reinvite_after is not None:
            self.pump_until(ended, args.reinvite_after)
            failed = None if ended() else self.reinvite(call)
            if failed is not None:
                self.hang_up(call)
                return failed
        self.pump_until(ended, args.duration - (time.monotonic() - call.confirmed_at))
        if call.disconnected_at is not None:
            self.report.duration = call.disconnected_at - call.confirmed_at
            return ExitCode.REMOTE_HANGUP
        self.sample_stats(call)
        self.report.duration = time.monotonic() - call.confirmed_at
        self.hang_up(call)
        silent = [s.index for s in self.report.streams if s.packets_sent == 0]
        if silent:
            self.report.error = f"no RTP sent on m-line(s) {silent}"
            return ExitCode.NO_MEDIA
        return ExitCode.OK

    def hang_up(self, call: SrcCall) -> None:
        call.hangup(pj.CallOpParam(True))
        self.bye_sent = True
        self.pump_until(lambda: call.disconnected_at is not None, self.args.bye_timeout)

    def conclude(self, code: ExitCode) -> ExitCode:
        """Settle the BYE outcome from the SIP log, complete only once libDestroy() has flushed it."""
        try:
            log_text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            log_text = ""
        self.report.bye_status, self.report.remote_hangup = bye_results(log_text)
        if code == ExitCode.REJECTED and not self.report.answer:
            answer = invite_final_response(log_text)
            status_line = answer.split("\r\n", 1)[0].split(" ", 2)
            if len(status_line) == 3 and status_line[1].isdigit():
                self.report.status, self.report.reason = int(status_line[1]), status_line[2]
                self.report.answer = answer
                self.report.error = f"call rejected: {self.report.status} {self.report.reason}"
        if code == ExitCode.REMOTE_HANGUP:
            who = "the SRS sent BYE" if self.report.remote_hangup else "the call ended"
            self.report.error = f"{who} after {self.report.duration:.1f} s of {self.args.duration:g} s"
        if code != ExitCode.OK or not self.bye_sent:
            return code
        if self.report.bye_status == 0:
            self.report.error = f"no answer to BYE within {self.args.bye_timeout:g} s"
            return ExitCode.BYE_FAILED
        if not 200 <= self.report.bye_status < 300:
            self.report.error = f"BYE answered {self.report.bye_status}"
            return ExitCode.BYE_FAILED
        return code

    def close(self) -> None:
        """Release every pjsua2 object in a safe order: calls, players, account, then the library."""
        with contextlib.suppress(Exception):
            self.ep.hangupAllCalls()
        self.call = None
        self.players.clear()
        self.account = None
        gc.collect()
        with contextlib.suppress(Exception):
            self.ep.libDestroy()


def _dtmf_plan(text: str) -> list[tuple[float, str]]:
    """``2.0:1,3.5:9`` as [(2.0, "1"), (3.5, "9")], in time order."""
    plan = []
    for item in text.split(","):
        at_text, colon, digits = item.strip().partition(":")
        try:
            at = float(at_text)
        except ValueError:
            at = -1.0
        if not colon or not digits or not set(digits) <= DTMF_KEYS or not 0 <= at < float("inf"):
            raise argparse.ArgumentTypeError(f"{item!r} is not SECONDS:DIGITS (digits 0-9, *, #, A-D)")
        plan.append((at, digits))
    return sorted(plan)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Place one SIPREC call with pjsua2.")
    parser.add_argument("--target", required=True, help="SRS request URI, e.g. sip:srs@127.0.0.1:5070")
    parser.add_argument("--transport", choices=("udp", "tcp", "tls"), default="udp")
    parser.add_argument(
        "--tls-ca", type=Path, help="PEM CA file to verify the server with (default: no check)"
    )
    parser.add_argument(
        "--srtp", choices=("off", "sdes"), default="off", help="SRTP keyed by SDES (RFC 4568)"
    )
    # pjsua2's own list (four suites) makes a two-stream offer longer than the 1 KB it can hand to
    # onCallSdpCreated, where the labels are added; two suites fit, but with the metadata they take the
    # INVITE near pjsip's 4000-byte limit (over TLS beyond it). One suite is the safe default.
    parser.add_argument(
        "--srtp-suites",
        default="AES_CM_128_HMAC_SHA1_80",
        help="comma-separated crypto-suites to offer, in order",
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of media after the answer")
    parser.add_argument("--caller-tone", type=float, default=440.0, help="Hz on m-line 1")
    parser.add_argument("--callee-tone", type=float, default=1000.0, help="Hz on m-line 2")
    parser.add_argument("--caller-wav", type=Path, help="WAV played (looped) on m-line 1 instead of a tone")
    parser.add_argument("--callee-wav", type=Path, help="WAV played (looped) on m-line 2 instead of a tone")
    parser.add_argument("--tone-level", type=float, default=-10.0, help="tone level in dBFS")
    parser.add_argument("--metadata", help="file with the rs-metadata XML to send, or 'none' to send none")
    parser.add_argument("--labels", default="1,2", help="two comma-separated labels, or 'none'")
    parser.add_argument("--codecs", default="PCMU,PCMA", help="offered codecs in order of preference")
    parser.add_argument("--from-uri", default="sip:src@pbx.example.hu")
    parser.add_argument("--bind", help="local IP (default: the one routing to the target)")
    parser.add_argument("--local-port", type=int, default=0, help="local SIP port (0: any)")
    parser.add_argument("--rtp-port", type=int, default=0, help="first local RTP port (0: random)")
    parser.add_argument("--answer-timeout", type=float, default=10.0)
    parser.add_argument("--bye-timeout", type=float, default=5.0)
    parser.add_argument(
        "--reinvite-after",
        type=float,
        help="seconds of media after which a re-INVITE is sent (the call still lasts --duration)",
    )
    parser.add_argument(
        "--reinvite-metadata", type=Path, help="rs-metadata XML file sent in that re-INVITE (default: none)"
    )
    parser.add_argument(
        "--dtmf",
        type=_dtmf_plan,
        default=[],
        help='key presses as RFC 4733 events: "S:DIGITS,..." (seconds after the answer), e.g. "2.0:1,3.5:9"',
    )
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--log-file", type=Path, help="full pjsua2 log (level 5, SIP messages)")
    args = parser.parse_args(argv)
    if args.labels != "none" and len(args.labels.split(",")) != 2:
        parser.error("--labels needs exactly two labels (or 'none')")
    if args.duration <= 0 or args.answer_timeout <= 0 or args.bye_timeout <= 0:
        parser.error("--duration and the timeouts must be positive")
    if any(at >= args.duration for at, _ in args.dtmf):
        parser.error("--dtmf times must fall before --duration")
    if args.reinvite_after is not None and not 0 < args.reinvite_after < args.duration:
        parser.error("--reinvite-after must lie between 0 and --duration")
    if args.reinvite_metadata is not None and args.reinvite_after is None:
        parser.error("--reinvite-metadata needs --reinvite-after")
    if args.tls_ca is not None and args.transport != "tls":
        parser.error("--tls-ca needs --transport tls")
    if not args.srtp_suites.strip(","):
        parser.error("--srtp-suites needs at least one crypto-suite")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Hard stop if pjsua2 ever blocks inside C code: dump tracebacks and exit.
    waits = (
        args.answer_timeout * (2 if args.reinvite_after is not None else 1) + args.duration + args.bye_timeout
    )
    faulthandler.dump_traceback_later(waits + 20, exit=True)
    # pjsua2 prints a few lines to stdout before its log settings apply: keep stdout for the report.
    sys.stdout.flush()
    report_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    code = ExitCode.ERROR
    with tempfile.TemporaryDirectory(prefix="pjsua_src_") as tmp:
        src = Src(args, Path(tmp))
        try:
            code = src.run()
        except Exception as exc:
            detail = exc.info() if isinstance(exc, pj.Error) else str(exc)  # pj.Error has no str()
            src.report.error = f"{type(exc).__name__}: {detail}"
            code = ExitCode.ERROR
        finally:
            src.close()
        code = src.conclude(code)
        report = src.report
    report.exit_code = int(code)
    report.outcome = OUTCOMES[code]
    text = json.dumps({**report.as_json(), "dtmf": src.dtmf_sent}, ensure_ascii=False)
    if args.json_out:
        args.json_out.write_text(text + "\n", encoding="utf-8")
    report_out.write(text + "\n")
    report_out.close()
    faulthandler.cancel_dump_traceback_later()
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
