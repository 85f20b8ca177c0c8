"""One generator process: places its share of the calls, sends their media, reports what it did.

    python -m load_tests.loadgen.worker      (driven by the capacity runner over stdin/stdout)

The runner writes one JSON line ``{"spec": …}`` (a :class:`WorkerSpec`); the process encodes its tones, opens
its SIP socket and answers ``{"type": "ready"}``. The runner then writes ``{"start_at": T}`` (a monotonic
time, common to every process of a run: CLOCK_MONOTONIC is system-wide). From ``T`` on, one loop wakes
every 20 ms and does everything: starts the calls whose ramp time has come, runs due SIP timers, sends due
RTP and RTCP through the :class:`Pacer`, and hangs up the calls whose legs have sent their last packet. SIP
responses arrive on one UDP socket and go to the call named by their Call-ID. The process writes
``{"type": "progress", …}`` twice a second and, once every call has ended, ``{"type": "result", "calls": […],
"ticks": …}`` (how punctual its loop was).
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import json
import random
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from siprec_server.sip import SipParseError, SipRequest, make_response, parse_message

from .impairments import LegImpairer
from .metadata import CALLEE_LABEL, CALLER_LABEL, offer_body
from .pacer import Pacer
from .profile import PTIME, Impairments, WorkerSpec
from .results import FAILED, CallResult, Progress, TickStats
from .rtp_legs import RtpLeg
from .sdp_answer import AnswerError, parse_answer
from .sip_uac import USER_AGENT, Answered, Datagram, Finished, Outcome, SiprecUac
from .tones import callee_hz, caller_hz, encoded_frames

__all__ = ["Generator", "main"]

Emit = Callable[[dict[str, Any]], None]
SHARED_SOCKETS = 32  # RTP sockets of a process that its unimpaired legs take in turn


@dataclass(slots=True, kw_only=True)
class _Call:
    index: int
    uac: SiprecUac
    legs: tuple[RtpLeg, RtpLeg]
    invite_at: float
    answered_at: float | None = None
    bye_at: float | None = None
    ended_at: float | None = None
    finished: Finished | None = None
    failure: str | None = None
    legs_done: int = 0


class _SipProtocol(asyncio.DatagramProtocol):
    def __init__(self, generator: Generator) -> None:
        self._generator = generator

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._generator.sip_received(data, (str(addr[0]), int(addr[1])))


class Generator:
    """The calls of one process; see the module docstring."""

    def __init__(self, spec: WorkerSpec, emit: Emit) -> None:
        self._spec = spec
        self._emit = emit
        self._pacer = Pacer()
        self._transport: asyncio.DatagramTransport | None = None
        self._sip_port = 0
        self._calls: dict[str, _Call] = {}
        self._owners: dict[int, _Call] = {}  # id(leg) → its call, while the call runs
        self._ended: list[_Call] = []
        # SIP timers of every call: (deadline, order, Call-ID); an entry a call re-armed since is skipped
        self._timers: list[tuple[float, int, str]] = []
        self._timer_order = 0
        self._next_call = 0
        self._counts = {"answered": 0, "rejected": 0, "timeouts": 0, "malformed": 0}
        self._closed_rtcp = 0
        self._sockets: list[socket.socket] = []  # shared by the unimpaired legs
        self._next_socket = 0
        self._ticks = self._late_ticks = 0
        self._max_lateness = 0.0
        self._recent_lateness = 0.0  # the worst since the last progress report

    async def prepare(self) -> int:
        """Encode the tones and open the SIP socket; returns its port."""
        spec = self._spec
        for index in spec.call_indices:
            encoded_frames(spec.codec, caller_hz(index))
            encoded_frames(spec.codec, callee_hz(index))
        for _ in range(SHARED_SOCKETS):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            sock.bind((spec.local_host, 0))
            self._sockets.append(sock)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _SipProtocol(self), local_addr=(spec.local_host, 0)
        )
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._transport = transport
        self._sip_port = int(sock.getsockname()[1])
        gc.freeze()  # what exists now lives for the whole run: keep the collector off it
        return self._sip_port

    async def run(self, start_at: float) -> list[CallResult]:
        spec = self._spec
        loop = asyncio.get_running_loop()
        starts = [start_at + spec.offset + i / spec.rate for i in range(len(spec.call_indices))]
        next_tick = start_at
        next_progress = start_at
        while len(self._ended) < len(starts):
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            now = time.monotonic()
            self._count_tick(now - next_tick)
            while self._next_call < len(starts) and starts[self._next_call] <= now:
                self._start_call(spec.call_indices[self._next_call], now)
                self._next_call += 1
            self._run_sip_timers(now)
            for leg in self._pacer.tick(now):
                self._leg_finished(leg, now)
            if now >= next_progress:
                self._emit({"type": "progress", **self.progress(now).to_json()})
                next_progress += spec.progress_interval
            next_tick += PTIME
            if next_tick < now:  # the loop was late: stay on the grid, the pacer catches up by due time
                next_tick += PTIME * ((now - next_tick) // PTIME + 1)
        self._emit({"type": "progress", **self.progress(time.monotonic()).to_json()})
        if self._transport is not None:
            self._transport.close()
        for sock in self._sockets:
            sock.close()
        return [self._result(call) for call in sorted(self._ended, key=lambda c: c.index)]

    @property
    def tick_stats(self) -> TickStats:
        return TickStats(ticks=self._ticks, late=self._late_ticks, max_lateness=self._max_lateness)

    def _count_tick(self, lateness: float) -> None:
        self._ticks += 1
        self._late_ticks += lateness > PTIME
        self._max_lateness = max(self._max_lateness, lateness)
        self._recent_lateness = max(self._recent_lateness, lateness)

    def progress(self, now: float) -> Progress:
        live = [leg for call in self._calls.values() for leg in call.legs]
        counts = self._counts
        late, self._recent_lateness = self._recent_lateness, 0.0
        return Progress(
            at=now,
            started=len(self._calls) + len(self._ended),
            answered=counts["answered"],
            active=sum(1 for call in self._calls.values() if call.answered_at is not None),
            ended=len(self._ended),
            rejected=counts["rejected"],
            timeouts=counts["timeouts"],
            rtp_sent=self._pacer.sent,
            rtcp_sent=self._closed_rtcp + sum(leg.rtcp_sent for leg in live),
            late_ms=late * 1000,
        )

    # -- SIP ------------------------------------------------------------------------------------------------
    def sip_received(self, data: bytes, source: tuple[str, int]) -> None:
        now = time.monotonic()
        try:
            message = parse_message(data)
            call_id = message.call_id
        except SipParseError:
            self._counts["malformed"] += 1
            return
        call = self._calls.get(call_id)
        if call is None:
            if isinstance(message, SipRequest) and message.method != "ACK":
                gone = make_response(message, 481, server=USER_AGENT)  # RFC 3261 §12.2.2
                self._send([Datagram(data=bytes(gone), destination=source)])
            return
        self._send(call.uac.receive(message, source, now))
        self._drain(call, now)
        self._arm(call)

    def _arm(self, call: _Call) -> None:
        """Remember when the call's SIP core wants its timer: one queue for every call of the process."""
        deadline = call.uac.get_timer()
        if deadline is not None:
            self._timer_order += 1
            heapq.heappush(self._timers, (deadline, self._timer_order, call.uac.call_id))

    def _run_sip_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, call_id = heapq.heappop(timers)
            call = self._calls.get(call_id)
            deadline = None if call is None else call.uac.get_timer()
            if call is None or deadline is None or deadline > now:
                continue  # over, or re-armed since: a later entry stands for it
            self._send(call.uac.handle_timer(now))
            self._drain(call, now)
            self._arm(call)

    def _send(self, datagrams: list[Datagram]) -> None:
        if self._transport is None:
            return
        for datagram in datagrams:
            self._transport.sendto(datagram.data, datagram.destination)

    def _drain(self, call: _Call, now: float) -> None:
        while (event := call.uac.next_event()) is not None:
            if isinstance(event, Answered):
                self._answered(call, event, now)
            elif isinstance(event, Finished):
                self._finished(call, event, now)

    # -- call lifecycle -------------------------------------------------------------------------------------
    def _start_call(self, index: int, now: float) -> None:
        spec = self._spec
        rng = random.Random(f"{spec.seed}:{index}")
        total = max(2, round(spec.hold / PTIME))
        legs = (
            self._leg(CALLER_LABEL, caller_hz(index), spec.caller, total, rng),
            self._leg(CALLEE_LABEL, callee_hz(index), spec.callee, total, rng),
        )
        body, content_type = offer_body(
            index,
            host=spec.local_host,
            ports=(legs[0].local_port, legs[1].local_port),
            codec=spec.codec,
            rng=rng,
            now=datetime.now(UTC),
        )
        uac = SiprecUac(
            call_id=spec.call_id(index),
            local=(spec.local_host, self._sip_port),
            srs=(spec.target_host, spec.target_port),
            body=body,
            content_type=content_type,
            rng=rng,
            answer_timeout=spec.answer_timeout,
        )
        call = _Call(index=index, uac=uac, legs=legs, invite_at=now)
        self._calls[uac.call_id] = call
        self._owners.update((id(leg), call) for leg in legs)
        self._send(uac.invite(now))
        self._arm(call)

    def _leg(
        self, label: str, frequency: int, impairments: Impairments, total: int, rng: random.Random
    ) -> RtpLeg:
        change_at = total // 2 if rng.random() * 100 < impairments.ssrc_change and total >= 8 else None
        # Unimpaired legs share the process's sockets (the fast lane sends them in batches); impaired legs,
        # sent one by one anyway, each have their own.
        shared = None if impairments.active else self._sockets[self._next_socket % len(self._sockets)]
        self._next_socket += 1
        leg = RtpLeg(
            label=label,
            frequency=frequency,
            frames=encoded_frames(self._spec.codec, frequency),
            payload_type=self._spec.codec.payload_type,
            total=total,
            change_at=change_at,
            impairer=None,
            rng=rng,
            local_host=self._spec.local_host,
            sock=shared,
            delay_ms=impairments.delay_ms,
            jitter_ms=impairments.jitter_ms,
        )
        if impairments.active:
            leg.impairer = LegImpairer(impairments, protected=leg.protected(), rng=rng)
        return leg

    def _answered(self, call: _Call, event: Answered, now: float) -> None:
        call.answered_at = now
        self._counts["answered"] += 1
        payload_type = self._spec.codec.payload_type
        try:
            answer = parse_answer(event.sdp)
            destinations = [answer.destination(leg.label, payload_type) for leg in call.legs]
        except AnswerError as exc:
            call.failure = str(exc)
            self._hang_up(call, now)
            return
        for leg, destination in zip(call.legs, destinations, strict=True):
            self._pacer.add(leg, destination, now)

    def _leg_finished(self, leg: RtpLeg, now: float) -> None:
        call = self._owners.get(id(leg))
        if call is None:
            return
        call.legs_done += 1
        if call.legs_done == len(call.legs):
            self._hang_up(call, now)

    def _hang_up(self, call: _Call, now: float) -> None:
        call.bye_at = now
        self._send(call.uac.hang_up(now))
        self._drain(call, now)
        self._arm(call)

    def _finished(self, call: _Call, event: Finished, now: float) -> None:
        call.finished = event
        call.ended_at = now
        if event.outcome is Outcome.REJECTED:
            self._counts["rejected"] += 1
        elif event.outcome in (Outcome.TIMEOUT, Outcome.BYE_TIMEOUT):
            self._counts["timeouts"] += 1
        self._calls.pop(call.uac.call_id, None)
        for leg in call.legs:
            self._owners.pop(id(leg), None)
            self._pacer.remove(leg)
            self._closed_rtcp += leg.rtcp_sent
            leg.close()
        self._ended.append(call)

    def _result(self, call: _Call) -> CallResult:
        finished = call.finished
        assert finished is not None
        outcome = FAILED if call.failure else finished.outcome.value
        return CallResult(
            index=call.index,
            call_id=call.uac.call_id,
            outcome=outcome,
            status=finished.status,
            reason=call.failure or finished.reason,
            caller_hz=call.legs[0].frequency,
            callee_hz=call.legs[1].frequency,
            invite_at=call.invite_at,
            answered_at=call.answered_at,
            bye_at=call.bye_at,
            ended_at=call.ended_at,
            legs=tuple(leg.result() for leg in call.legs) if call.answered_at is not None else (),
        )


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    first = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    generator = Generator(WorkerSpec.from_json(first["spec"]), _emit)
    sip_port = await generator.prepare()
    _emit({"type": "ready", "sip_port": sip_port})
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if not line:
        return  # the runner gave up before the start
    results = await generator.run(float(json.loads(line)["start_at"]))
    _emit(
        {
            "type": "result",
            "calls": [result.to_json() for result in results],
            "ticks": generator.tick_stats.to_json(),
        }
    )


def main() -> None:
    asyncio.run(_serve())


if __name__ == "__main__":
    main()
