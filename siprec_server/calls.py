"""Recording calls: turns SIP events into SIPREC sessions, media sessions and catalogue rows.

One :class:`CallManager` per server. It reacts to :class:`SipEndpoint` events (through the driver), answers
offers with :mod:`siprec_server.siprec`, runs one :class:`media.MediaSession` per recording session and keeps the
catalogue row current. Work per call is serialised by a per-Call-ID lock so that a BYE racing the INVITE's
database write is handled after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from media import MediaSession, PortPool, PortsExhausted, RecordingResult
from media.codecs import DECODABLE
from storage import Catalogue, CommandReply, FileBlobStore, NewRecording, PauseRecord, RecordingStatus
from storage.decision import Decision
from storage.sealed import SEALED_FORMAT

from .call import (
    Call,
    answer_rate,
    existing_file,
    offerable_codecs,
    stream_spec,
    stream_specs,
    takeable,
    with_version,
)
from .call_consent import CallConsent, remove_file
from .config import Config
from .lifecycle import CallLifecycle, call_context, expires_at, recording_fields
from .log_limit import LogLimiter
from .metrics import Metrics, RtpTotals
from .outcome import participants_for, recording_status, stream_records, wall_time
from .policy_book import PolicyBook
from .sealing import (
    RecordingCrypto,
    StoredFile,
    plain_stored_file,
    sealed_path,
    sealed_sink,
    stored_sealed_file,
)
from .session_timer import TimerAnswer, answer_refresh
from .sip import (
    AckReceived,
    AckTimeout,
    ByeReceived,
    DialogId,
    InDialogRequest,
    InviteCancelled,
    InviteReceived,
    MalformedMessage,
    RequestCompleted,
    SipEvent,
    SipRequest,
)
from .siprec import (
    ChannelLayout,
    MetadataError,
    RecordingMetadata,
    RecordingOffer,
    SdpAnswer,
    SdpError,
    SiprecBodyError,
    SrtpPolicy,
    assign_channels,
    build_answer,
    extend_layout,
    is_recording_session,
    merge_metadata,
    parse_metadata,
    parse_offer,
    split_body,
    srtp_rejection,
)
from .transcoder import TranscodePool
from .transport import SipDriver
from .unrecorded import UnrecordedCalls
from .uploader import Uploader

__all__ = ["CallManager"]

log = logging.getLogger(__name__)

_BIND_ATTEMPTS = 4
_BYE_WAIT = 2.0  # seconds to wait for the answer to our BYE before finalising anyway
_SNAPSHOT_WAIT = 8.0
_UNRECORDED_IDLE = 12 * 3600.0  # a not-recorded session with no request for this long is forgotten
_REF_HEADER = "X-Recording-Ref"  # the reference the PBX may announce (storage.announcements)


class CallManager:
    def __init__(
        self,
        *,
        config: Config,
        catalogue: Catalogue,
        blobs: FileBlobStore,
        ports: PortPool,
        metrics: Metrics,
        transcoder: TranscodePool | None = None,  # output formats: renditions of finished recordings
        policies: PolicyBook | None = None,  # None: every call recorded (no lifecycle: tests of the SIP side)
        lifecycle: CallLifecycle | None = None,
        crypto: RecordingCrypto | None = None,  # encryption at rest from the first byte; None: plain files
        uploader: Uploader
        | None = None,  # the object store: finished files go there; None: they stay on disk
    ) -> None:
        self._config = config
        self._catalogue = catalogue
        self._blobs = blobs
        self._ports = ports
        self._metrics = metrics
        self._transcoder = transcoder
        self._policies = policies
        self._lifecycle = lifecycle
        # Consent asked during the call: decided while it runs, by the same lifecycle.
        self._consent = (
            None
            if lifecycle is None
            else CallConsent(lifecycle=lifecycle, metrics=metrics, store_digits=config.store_dtmf_digits)
        )
        self._crypto = crypto
        self._uploader = uploader
        self._data_keys: dict[UUID, bytes] = {}  # of the calls being recorded, sealed
        self._unrecorded = UnrecordedCalls(advertised_host=config.advertised_host, codecs=DECODABLE)
        self._driver: SipDriver | None = None
        self._calls: dict[str, Call] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._cancelled: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._finished_totals = RtpTotals()
        self._request_waiters: dict[int, asyncio.Future[int | None]] = {}
        self._malformed_log = LogLimiter()
        self._idle = asyncio.Event()
        self._idle.set()

    def attach(self, driver: SipDriver) -> None:
        self._driver = driver

    @property
    def driver(self) -> SipDriver:
        if self._driver is None:
            raise RuntimeError("CallManager used before a SIP driver was attached")
        return self._driver

    # -- observation -------------------------------------------------------------------------------------------
    @property
    def active_calls(self) -> int:
        return len(self._calls)

    @property
    def active_streams(self) -> int:
        return sum(sum(1 for s in call.answer.streams if s.port) for call in list(self._calls.values()))

    @property
    def free_ports(self) -> int:
        return self._ports.free

    def rtp_totals(self) -> RtpTotals:
        """Summed at scrape time from each stream's live counters (no snapshot per stream: thousands of
        streams would cost tens of milliseconds). Called from the scrape's worker thread: the calls are read
        through a copy of their list, made in one step under the GIL."""
        totals = RtpTotals()
        totals.add(self._finished_totals)
        for call in list(self._calls.values()):
            totals.add(RtpTotals.of(call.media.counters()))
        return totals

    # -- events from the SIP driver (synchronous; work goes to tasks) ------------------------------------------
    def on_event(self, event: SipEvent) -> None:
        if isinstance(event, InviteReceived):
            call_id = _call_id(event.request)
            if event.dialog_id is None:
                self._spawn(call_id, self._on_invite(event, call_id))
            else:
                self._spawn(call_id, self._on_reoffer(event.request_id, event.request, call_id))
        elif isinstance(event, InDialogRequest):
            self._spawn(_call_id(event.request), self._on_in_dialog(event))
        elif isinstance(event, ByeReceived):
            call_id = _call_id(event.request)
            self._spawn(call_id, self._end_call(call_id, "BYE from the recording client"))
        elif isinstance(event, AckReceived):
            call = self._calls.get(_call_id(event.request))
            if call is not None:
                call.dialog_id = event.dialog_id
        elif isinstance(event, AckTimeout):
            call_id = self.driver.endpoint.dialog_info(event.dialog_id).call_id
            log.warning("call %s: no ACK for our 200 OK (RFC 3261 Timer H); ending it with BYE", call_id)
            self._spawn(call_id, self._hang_up(call_id, "no ACK received"))
        elif isinstance(event, InviteCancelled):
            self._cancelled.add(event.request_id)
        elif isinstance(event, RequestCompleted):
            waiter = self._request_waiters.pop(event.request_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(event.status)
        elif isinstance(event, MalformedMessage):
            admit, suppressed = self._malformed_log.admit(time.monotonic())
            if admit:
                log.warning(
                    "malformed SIP from %s:%s (%s): %s%s",
                    event.source.host,
                    event.source.port,
                    f"answered {event.answered_status}" if event.answered_status else "dropped",
                    event.reason,
                    f" ({suppressed} more not logged)" if suppressed else "",
                )

    def _spawn(self, call_id: str, work: Awaitable[None]) -> None:
        lock = self._locks.setdefault(call_id, asyncio.Lock())

        async def serialised() -> None:
            async with lock:
                await work

        task = asyncio.get_running_loop().create_task(serialised())
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed", exc_info=task.exception())

    def _respond(self, request_id: int, status: int, **kwargs: Any) -> None:
        self.driver.endpoint.respond(request_id, status, now=self.driver.now(), **kwargs)
        self.driver.flush()

    def _reject(self, request_id: int, status: int, reason: str, warning: str, metric: str) -> None:
        # RFC 3261 §20.43: code 399 = miscellaneous warning, with our agent name.
        self._metrics.calls_rejected.labels(metric).inc()
        self._respond(request_id, status, reason=reason, headers=[("Warning", f'399 hangtar "{warning}"')])

    # -- new recording session ---------------------------------------------------------------------------------
    async def _on_invite(self, event: InviteReceived, call_id: str) -> None:
        try:
            await self._answer_invite(event, call_id)
        finally:
            self._cancelled.discard(event.request_id)

    async def _answer_invite(self, event: InviteReceived, call_id: str) -> None:
        request = event.request
        if (
            call_id in self._calls
        ):  # a second initial INVITE with the same Call-ID: a new transaction, same dialog
            await self._on_reoffer(event.request_id, request, call_id)
            return
        if len(self._calls) >= self._config.max_calls:
            # Refused before any parsing or port allocation, so an SBC fails over at once (GUIDE §2.9).
            self._metrics.calls_rejected.labels("capacity").inc()
            self._respond(event.request_id, 503, reason="At Capacity", headers=[("Retry-After", "5")])
            return
        content_type = request.headers.get("Content-Type") or ""
        try:
            offer = parse_offer(content_type, request.body)
        except SiprecBodyError as exc:
            log.warning("call %s: unreadable INVITE body: %s", call_id, exc)
            self._reject(event.request_id, 400, "Bad Request Body", str(exc), "bad_body")
            return
        except SdpError as exc:
            log.warning("call %s: unusable SDP offer: %s", call_id, exc)
            self._reject(event.request_id, 488, "Not Acceptable Here", f"SDP: {exc}", "bad_sdp")
            return
        if not is_recording_session(
            require=request.headers.get_all("Require"),
            contacts=request.headers.get_all("Contact"),
            parts=offer.parts,
        ):
            log.info("call %s: not a SIPREC recording session; answering 488", call_id)
            self._reject(event.request_id, 488, "Not Acceptable Here", "not a SIPREC session", "not_siprec")
            return
        policy = SrtpPolicy(self._config.srtp_policy(event.source.transport))
        rejection = srtp_rejection(offer.sdp, policy)
        if rejection is not None:
            log.warning("call %s: offer outside the SRTP policy; answering 488: %s", call_id, rejection)
            self._reject(event.request_id, 488, "Not Acceptable Here", rejection, "srtp_policy")
            return
        timer = self._timer_answer(request)
        if timer.status != 200:
            self._respond(
                event.request_id, timer.status, reason="Session Interval Too Small", headers=timer.headers
            )
            return
        self._note_metadata(call_id, offer)
        decision: Decision | None = None
        if self._policies is not None:
            decision = self._policies.decide(call_context(offer.metadata, event.source.host))
            if not decision.record:
                self._answer_unrecorded(event, call_id, offer, policy, timer.headers, decision)
                return
        try:
            call = await self._open_call(event, call_id, offer, policy, decision)
        except _KeyNotStored:
            # Never written unencrypted: the session is answered with its streams inactive, nothing stored.
            log.exception("call %s: the recording's data key could not be stored; not recorded", call_id)
            self._metrics.recording_promises_broken.labels("encryption").inc()
            body = self._unrecorded.open(
                call_id,
                offer.sdp,
                reason="encryption",
                srtp=policy,
                session_id=random.getrandbits(31),
                now=time.monotonic(),
            )
            self._respond(
                event.request_id,
                200,
                body=body,
                content_type="application/sdp",
                headers=[("Supported", "siprec, timer"), *timer.headers],
            )
            return
        except PortsExhausted:
            log.error("call %s: no free RTP ports; answering 503", call_id)
            self._metrics.calls_rejected.labels("no_ports").inc()
            self._metrics.recording_promises_broken.labels("setup").inc()
            self._respond(event.request_id, 503, reason="No Media Ports", headers=[("Retry-After", "5")])
            return
        except Exception:
            log.exception("call %s: could not set up the recording", call_id)
            self._metrics.calls_rejected.labels("internal_error").inc()
            self._metrics.recording_promises_broken.labels("setup").inc()
            self._respond(event.request_id, 500, reason="Recording Setup Failed")
            return
        if event.request_id in self._cancelled:
            log.info("call %s: cancelled before the answer", call_id)
            await self._finalise(call, "cancelled by the recording client")
            return
        call.apply_timer(timer, time.monotonic())
        self._respond(
            event.request_id,
            200,
            body=call.answer.body,
            content_type="application/sdp",
            headers=[("Supported", "siprec, timer"), (_REF_HEADER, call.reference), *timer.headers],
        )
        log.info(
            "call %s: recording %s started (%d stream(s), layout by %s%s)",
            call_id,
            call.reference,
            sum(1 for s in call.answer.streams if s.port),
            call.layout.source,
            _decided(decision),
        )

    def _answer_unrecorded(
        self,
        event: InviteReceived,
        call_id: str,
        offer: RecordingOffer,
        policy: SrtpPolicy,
        timer_headers: tuple[tuple[str, str], ...],
        decision: Decision,
    ) -> None:
        """No policy with a legal basis applies (GDPR Art. 6): keep the session, take no media, store nothing."""
        body = self._unrecorded.open(
            call_id,
            offer.sdp,
            reason=decision.reason.value,
            srtp=policy,
            session_id=random.getrandbits(31),
            now=time.monotonic(),
        )
        self._metrics.calls_not_recorded.labels(decision.reason.value).inc()
        self._respond(
            event.request_id,
            200,
            body=body,
            content_type="application/sdp",
            headers=[("Supported", "siprec, timer"), *timer_headers],
        )
        log.info(
            "call %s: not recorded (%s%s); streams answered inactive",
            call_id,
            decision.reason.value,
            _decided(decision),
        )

    def _timer_answer(self, request: SipRequest) -> TimerAnswer:
        return answer_refresh(
            request.headers.get("Session-Expires"),
            request.headers.get_all("Supported"),
            request_min_se=request.headers.get("Min-SE"),
        )

    def _note_metadata(self, call_id: str, offer: RecordingOffer) -> None:
        if offer.metadata_error:
            self._metrics.metadata_problems.labels("unparsable").inc()
            log.warning(
                "call %s: recording metadata ignored: %s (recording anyway)", call_id, offer.metadata_error
            )
        elif offer.metadata is None:
            self._metrics.metadata_problems.labels("missing").inc()
            log.warning(
                "call %s: no recording metadata in the INVITE; streams mapped by m-line order", call_id
            )
        else:
            self._note_parsed(call_id, offer.metadata)

    def _note_parsed(self, call_id: str, metadata: RecordingMetadata) -> None:
        """Per-dialect and per-oddity counters (bounded labels) and one log line per oddity."""
        dialect = metadata.dialect
        self._metrics.metadata_dialects.labels(dialect.namespace_kind.value, dialect.root_label).inc()
        for vendor in dialect.vendors:
            self._metrics.metadata_vendors.labels(str(vendor)).inc()
        for warning in metadata.warnings:
            self._metrics.metadata_problems.labels(warning.kind.value).inc()
            log.warning("call %s: metadata: %s", call_id, warning)

    async def _open_call(
        self,
        event: InviteReceived,
        call_id: str,
        offer: RecordingOffer,
        policy: SrtpPolicy,
        decision: Decision | None = None,
    ) -> Call:
        labels = [m.label for m in offer.sdp.media]
        layout = assign_channels(offer.metadata, labels, recorded=[takeable(m) for m in offer.sdp.media])
        recording_id = uuid4()
        started_at = datetime.now(UTC)
        path = self._blobs.path_for(recording_id, started_at, "flac")
        data_key = await self._create_key(recording_id, decision)
        if data_key is not None:  # written encrypted from the first byte: <id>.flac.sealed
            path = sealed_path(path)
        session_id = random.getrandbits(31)  # our o= line's id, kept for every later answer (RFC 3264 §8)
        media, ports, answer, spec_of = await self._open_media(
            offer, layout, str(path), policy, session_id, data_key
        )
        sample_rate = answer_rate(answer)
        try:
            participants = participants_for(offer.metadata, layout)
            row = await self._catalogue.create(
                NewRecording(
                    id=recording_id,
                    call_id=call_id,
                    session_ids=list(offer.metadata.session_ids) if offer.metadata else [],
                    group_ids=list(offer.metadata.group_ids) if offer.metadata else [],
                    started_at=started_at,
                    participants=participants,
                    streams=stream_records(answer, layout, None, spec_of),
                    channels=layout.channels,
                    sample_rate=sample_rate,
                    file_path=str(path),
                    format="flac",
                    encryption=None if data_key is None else SEALED_FORMAT,
                    node=self._config.node,
                    raw_metadata=offer.metadata_raw.decode("utf-8", "replace")
                    if offer.metadata_raw
                    else None,
                    source_address=f"{event.source.transport}:{event.source.host}:{event.source.port}",
                    call_facts=offer.metadata.call_facts_json() if offer.metadata else {},
                    **recording_fields(decision),
                )
            )
        except BaseException:
            await media.close()
            self._release(list(ports.values()))
            raise
        if row.duplicate_of is not None:
            # GUIDE §2.9: a second SRS, or an SRC retrying its fork, records the same session again.
            self._metrics.duplicate_recordings.inc()
            log.warning(
                "call %s: recording %s is a second recording of a session already recorded (%s); linked",
                call_id,
                row.reference,
                row.duplicate_of,
            )
        call = Call(
            metadata=offer.metadata,
            call_id=call_id,
            recording_id=recording_id,
            reference=row.reference,
            started_at=started_at,
            layout=layout,
            answer=answer,
            ports=ports,
            specs=spec_of,
            spec_count=len(spec_of),
            session_id=session_id,
            media=media,
            path=str(path),
            srtp_policy=policy,
            decision=decision,
        )
        if self._consent is not None:
            self._consent.ask(call)
        self._calls[call_id] = call
        if data_key is not None:
            self._data_keys[recording_id] = data_key
        self._idle.clear()
        return call

    async def _create_key(self, recording_id: UUID, decision: Decision | None) -> bytes | None:
        """The recording's data key, stored wrapped and committed before any audio is written; None when
        recordings are not encrypted. :class:`_KeyNotStored` if it cannot be stored."""
        if self._crypto is None:
            return None
        try:
            return await self._crypto.create_key(recording_id, decision.tenant_id if decision else None)
        except Exception as exc:
            raise _KeyNotStored(f"recording {recording_id}: {exc}") from exc

    async def _open_media(
        self,
        offer: RecordingOffer,
        layout: ChannelLayout,
        path: str,
        policy: SrtpPolicy,
        session_id: int,
        data_key: bytes | None = None,
    ) -> tuple[MediaSession, dict[int, int], SdpAnswer, dict[int, int]]:
        for attempt in range(_BIND_ATTEMPTS):
            ports = [self._ports.allocate() if takeable(m) else 0 for m in offer.sdp.media]
            answer = build_answer(
                offer.sdp,
                address=self._config.advertised_host,
                ports=ports,
                codecs=DECODABLE,
                session_id=session_id,
                session_version=1,
                srtp=policy,
            )
            sample_rate = answer_rate(answer)
            specs, listen_ports, spec_of = stream_specs(answer, layout, sample_rate)
            # Offered m-lines we answered with port 0 give their port back at once.
            self._release([p for p, s in zip(ports, answer.streams, strict=True) if p and not s.port])
            live = {s.index: s.port for s in answer.streams if s.port}
            try:
                media = await MediaSession.open(
                    self._config.media_host,
                    listen_ports,
                    specs,
                    channels=layout.channels,
                    path=path,
                    sample_rate=sample_rate,
                    reorder_window=self._config.reorder_window,
                    sync_wait=self._config.sync_wait,
                    open_sink=None if data_key is None else sealed_sink(data_key),
                )
            except OSError as exc:
                self._release(list(live.values()))
                log.warning(
                    "RTP ports %s unavailable (%s); trying others (%d)", listen_ports, exc, attempt + 1
                )
                continue
            return media, live, answer, spec_of
        raise PortsExhausted("could not bind RTP ports")

    def _release(self, ports: list[int]) -> None:
        for port in ports:
            if port:
                self._ports.release(port)

    # -- mid-call offers and requests ---------------------------------------------------------------------------
    async def _on_reoffer(self, request_id: int, request: SipRequest, call_id: str) -> None:
        """RFC 7866 §8.3 / RFC 3264 §8: every re-INVITE is a re-offer; the answer keeps our ports stable."""
        call = self._calls.get(call_id)
        if call is None and call_id in self._unrecorded:
            self._reoffer_unrecorded(request_id, request, call_id)
            return
        if call is None:
            self._respond(request_id, 481, reason="Call/Transaction Does Not Exist")
            return
        timer = self._timer_answer(request)
        if timer.status != 200:
            self._respond(
                request_id, timer.status, reason="Session Interval Too Small", headers=timer.headers
            )
            return
        call.apply_timer(timer, time.monotonic())
        content_type = request.headers.get("Content-Type") or ""
        if not request.body:
            # RFC 3261 §14.2: an offerless re-INVITE gets our current SDP as the offer in the 200.
            body = self._reanswer(call, None)
            self._respond(request_id, 200, body=body, content_type="application/sdp", headers=timer.headers)
            return
        try:
            offer = parse_offer(content_type, request.body)
        except SiprecBodyError as exc:
            self._reject(request_id, 400, "Bad Request Body", str(exc), "bad_body")
            return
        except SdpError as exc:
            self._reject(request_id, 488, "Not Acceptable Here", f"SDP: {exc}", "bad_sdp")
            return
        self._note_metadata(call_id, offer)
        await self._store_metadata(call, offer.metadata_raw, offer.metadata)
        was_paused = call.media.paused
        body = await self._apply_reoffer(call, offer)
        if call.media.paused != was_paused:
            log.info("call %s: recording %s", call_id, "paused (hold)" if call.media.paused else "resumed")
            if call.media.paused:
                self._metrics.pauses.inc()
        self._respond(request_id, 200, body=body, content_type="application/sdp", headers=timer.headers)

    def _reoffer_unrecorded(self, request_id: int, request: SipRequest, call_id: str) -> None:
        timer = self._timer_answer(request)
        if timer.status != 200:
            self._respond(
                request_id, timer.status, reason="Session Interval Too Small", headers=timer.headers
            )
            return
        sdp = None
        if request.body:
            try:
                sdp = parse_offer(request.headers.get("Content-Type") or "", request.body).sdp
            except (SiprecBodyError, SdpError) as exc:
                self._reject(request_id, 488, "Not Acceptable Here", str(exc), "bad_sdp")
                return
        body = self._unrecorded.reoffer(call_id, sdp, time.monotonic())
        self._respond(request_id, 200, body=body, content_type="application/sdp", headers=timer.headers)

    def _reanswer(self, call: Call, offer: RecordingOffer | None) -> bytes:
        """Our current SDP again, as the offer in the 200 to an offerless re-INVITE."""
        call.session_version += 1
        return with_version(call.answer.body, call.session_version)

    async def _apply_reoffer(self, call: Call, offer: RecordingOffer) -> bytes:
        """Answer a re-offer and bring the media in line (RFC 7866 §8.3, GUIDE §2.4, §2.7):
        m-lines keep their ports by label; a new m-line gets a receiver in the same recording; port 0 stops one;
        `a=inactive` or `c=0.0.0.0` pauses one (the timeline keeps running, silence is written)."""
        call.session_version += 1
        media_lines = offer.sdp.media
        ports: list[int] = []
        fresh: list[int] = []  # m-line indexes that get a new receiver
        for index, media in enumerate(media_lines):
            earlier = call.mline_for(media.label, index)
            port = call.ports.get(earlier) if earlier is not None else None
            if not takeable(media):
                ports.append(0)
            elif port:
                ports.append(port)
            else:
                try:
                    ports.append(self._ports.allocate())
                except PortsExhausted:
                    ports.append(0)
                    continue
                fresh.append(index)
        answer = build_answer(
            offer.sdp,
            address=self._config.advertised_host,
            ports=ports,
            codecs=offerable_codecs(call.sample_rate),
            session_id=call.session_id,
            session_version=call.session_version,
            srtp=call.srtp_policy,
        )
        layout = extend_layout(call.layout, call.metadata, [m.label for m in media_lines])
        ports_now: dict[int, int] = {}
        specs_now: dict[int, int] = {}
        kept: set[int] = set()
        for stream in answer.streams:
            earlier = call.mline_for(stream.label, stream.index)
            if stream.index in fresh:
                spec = stream_spec(
                    stream, call.next_spec(), layout.stream_channels[stream.index], call.sample_rate
                )
                if spec is None:  # answered with port 0 after all (nothing we decode)
                    self._release([ports[stream.index]])
                    continue
                try:
                    await call.media.add_stream(stream.port, spec)
                except (OSError, ValueError) as exc:
                    log.warning(
                        "call %s: cannot receive the new stream %s: %s", call.call_id, stream.label, exc
                    )
                    self._release([stream.port])
                    continue
                call.specs[stream.index] = spec.index
                ports_now[stream.index], specs_now[stream.index] = stream.port, spec.index
                log.info("call %s: stream %s joined the recording", call.call_id, stream.label)
            elif stream.port and earlier is not None and earlier in call.specs:
                kept.add(earlier)
                ports_now[stream.index], specs_now[stream.index] = stream.port, call.specs[earlier]
                call.media.set_stream_paused(call.specs[earlier], stream.direction == "inactive")
        for earlier, port in call.ports.items():
            if earlier not in kept and earlier in call.specs:
                await call.media.remove_stream(call.specs[earlier])
                self._release([port])
                log.info("call %s: stream of m-line %d left the recording", call.call_id, earlier)
        # A stream that left keeps its place in the audio and in the RTP totals; its m-line row now shows
        # the answer's port 0.
        call.ports, call.specs = ports_now, specs_now
        call.answer, call.layout = answer, layout
        if self._consent is not None:
            self._consent.follow_streams(call)
        return answer.body

    async def _on_in_dialog(self, event: InDialogRequest) -> None:
        request = event.request
        call_id = _call_id(request)
        call = self._calls.get(call_id)
        if call is None and call_id in self._unrecorded:
            if request.method == "UPDATE" and b"application/sdp" in request.body:
                self._reoffer_unrecorded(event.request_id, request, call_id)
            else:
                self._unrecorded.touch(call_id, time.monotonic())
                self._respond(event.request_id, 200)
            return
        if call is None:
            self._respond(event.request_id, 481, reason="Call/Transaction Does Not Exist")
            return
        if request.method == "UPDATE" and request.body:
            content_type = request.headers.get("Content-Type") or ""
            try:
                parts = split_body(content_type, request.body)
            except SiprecBodyError as exc:
                self._reject(event.request_id, 400, "Bad Request Body", str(exc), "bad_body")
                return
            if any(p.content_type == "application/sdp" for p in parts):
                await self._on_reoffer(event.request_id, request, call_id)
                return
            # A metadata-only UPDATE (RFC 7866 §8.2): absorb it, answer 200 without a body.
            raw = next((p.body for p in parts if "rs-metadata" in p.content_type), None)
            if raw is not None:
                parsed: RecordingMetadata | None = None
                try:
                    parsed = parse_metadata(raw)
                except MetadataError as exc:
                    log.warning("call %s: metadata update ignored: %s", call_id, exc)
                    self._metrics.metadata_problems.labels("unparsable").inc()
                else:
                    self._note_parsed(call_id, parsed)
                await self._store_metadata(call, raw, parsed)
        headers: tuple[tuple[str, str], ...] = ()
        if request.method == "UPDATE":  # RFC 4028 §10: an UPDATE is a refresh too
            timer = self._timer_answer(request)
            if timer.status != 200:
                self._respond(
                    event.request_id, timer.status, reason="Session Interval Too Small", headers=timer.headers
                )
                return
            call.apply_timer(timer, time.monotonic())
            headers = timer.headers
        self._respond(event.request_id, 200, headers=headers)

    async def _store_metadata(self, call: Call, raw: bytes | None, parsed: RecordingMetadata | None) -> None:
        """Keep the document; fold it into the call's metadata (RFC 7865 §6: partial updates merge, complete
        ones replace) and refresh the participants and call facts the catalogue shows."""
        if raw is None or call.discarded:
            return
        participants = facts = None
        if parsed is not None:
            call.metadata = merge_metadata(call.metadata, parsed)
            participants = participants_for(call.metadata, _layout_for(call.metadata, call))
            facts = call.metadata.call_facts_json()
        try:
            await self._catalogue.update_metadata(
                call.recording_id, raw.decode("utf-8", "replace"), participants, call_facts=facts
            )
        except Exception:
            log.exception("call %s: could not store a metadata update", call.call_id)

    # -- ending ---------------------------------------------------------------------------------------------------
    async def _end_call(self, call_id: str, why: str) -> None:
        if self._unrecorded.end(call_id):
            log.info("call %s: not-recorded session ended (%s)", call_id, why)
            return
        call = self._calls.get(call_id)
        if call is not None and not call.ending:
            await self._finalise(call, why)

    async def _hang_up(self, call_id: str, why: str) -> None:
        """End a call from our side: BYE (RFC 3261 §15), then finalise whatever the BYE's fate."""
        call = self._calls.get(call_id)
        if call is None or call.ending:
            return
        await self._send_bye(call)
        await self._finalise(call, why)

    async def _send_bye(self, call: Call) -> None:
        status = await self._request(call, "BYE", wait=_BYE_WAIT)
        log.info("call %s: BYE answered %s", call.call_id, status if status is not None else "by nobody")

    async def _request(
        self, call: Call, method: str, *, wait: float, body: bytes = b"", content_type: str | None = None
    ) -> int | None:
        """Send an in-dialog request; its final status, or None on timeout or when there is no dialog."""
        dialog_id = call.dialog_id or self._dialog_for(call.call_id)
        if dialog_id is None:
            return None
        waiter: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        try:
            request_id = self.driver.endpoint.send_request(
                dialog_id, method, now=self.driver.now(), body=body, content_type=content_type
            )
        except Exception:
            log.exception("call %s: could not send %s", call.call_id, method)
            return None
        self._request_waiters[request_id] = waiter
        self.driver.flush()
        try:
            return await asyncio.wait_for(waiter, wait)
        except TimeoutError:
            return None
        finally:
            self._request_waiters.pop(request_id, None)

    # -- operator commands (through storage.CommandListener) ------------------------------------------------------
    @property
    def draining(self) -> bool:
        """Refusing new calls (OPTIONS and INVITE answered 503) while the active ones go on."""
        return not self.driver.endpoint.accepting

    def drain(self, on: bool) -> None:
        """Start or end draining: the SIP dispatcher in front, probing with OPTIONS, sends new calls elsewhere."""
        self.driver.endpoint.accepting = not on
        self._metrics.draining.set(1 if on else 0)
        log.info("%s: %d active call(s)", "draining" if on else "accepting calls again", len(self._calls))

    async def handle_command(self, command: Mapping[str, Any]) -> CommandReply | None:
        """``drain`` / ``resume`` addressed to this node (``node``); ``snapshot``: ask the SRC for a full
        metadata snapshot (RFC 7866 §9.2). None: not this node's, or not our call."""
        if command.get("command") in ("drain", "resume"):
            if command.get("node") != self._config.node:
                return None
            self.drain(command["command"] == "drain")
            state = "draining" if self.draining else "accepting calls"
            return CommandReply(
                ok=True, detail=f"node {self._config.node}: {state}, {len(self._calls)} active"
            )
        if command.get("command") != "snapshot":
            return None
        call = next(
            (c for c in self._calls.values() if str(c.recording_id) == command.get("recording_id")), None
        )
        if call is None:
            return None
        status = await self._request(
            call,
            "UPDATE",
            wait=_SNAPSHOT_WAIT,
            body=b"SRS requests a metadata snapshot",
            content_type="application/rs-metadata-request",
        )
        if status is not None and 200 <= status < 300:
            log.info("call %s: metadata snapshot requested from the SRC (%s)", call.call_id, status)
            return CommandReply(ok=True, detail=f"the recording client accepted the request ({status})")
        log.warning("call %s: metadata snapshot request answered %s", call.call_id, status)
        return CommandReply(ok=False, detail=f"the recording client answered {status or 'nothing'}")

    def _dialog_for(self, call_id: str) -> DialogId | None:
        endpoint = self.driver.endpoint
        for dialog_id in endpoint.dialog_ids():
            if endpoint.dialog_info(dialog_id).call_id == call_id:
                return dialog_id
        return None

    async def _finalise(self, call: Call, why: str) -> None:
        call.ending = True
        begun = time.monotonic()
        if call.discarded:
            await self._finalise_discarded(call, why)
            return
        failed = False
        try:
            result: RecordingResult = await call.media.close()
        except Exception:
            # A write error or a fault in the media path: whatever reached the file is kept, but the
            # recording is not what the call was, and the catalogue must say so.
            failed = True
            log.exception("call %s: media did not close cleanly; the recording is failed", call.call_id)
            result = RecordingResult(media_start=None, duration=0.0, frames=0, streams=call.media.stats())
        finally:
            self._release(list(call.ports.values()))
            self._calls.pop(call.call_id, None)
            self._locks.pop(call.call_id, None)
            if not self._calls:
                self._idle.set()
        self._finished_totals.add(RtpTotals.of(result.streams))
        for stream in result.streams:
            if stream.packets:
                self._metrics.stream_jitter.observe(stream.jitter_ms / 1000)
        status = RecordingStatus.FAILED if failed else recording_status(call.answer, result)
        path = existing_file(call.path)
        stored: StoredFile | None = None
        if path is not None:
            try:
                stored = await self._store(call, path)
            except Exception:
                log.exception(
                    "call %s: the recording file does not read back; the recording is failed", call.call_id
                )
                status = RecordingStatus.FAILED
                sealed = call.recording_id in self._data_keys
                stored = StoredFile(
                    path=path,
                    size_bytes=path.stat().st_size,
                    sha256=None,
                    encryption=SEALED_FORMAT if sealed else None,
                )
        self._data_keys.pop(call.recording_id, None)
        ended_at = datetime.now(UTC)
        try:
            await self._catalogue.finish(
                call.recording_id,
                status=status,
                ended_at=ended_at,
                media_started_at=wall_time(result.media_start),
                duration_seconds=result.duration,
                streams=stream_records(
                    call.answer, call.layout, result, call.specs, keep_digits=self._config.store_dtmf_digits
                ),
                file_path=str(stored.path) if stored else None,
                format="flac",
                size_bytes=stored.size_bytes if stored else None,
                sha256=stored.sha256 if stored else None,
                pauses=[PauseRecord(start=start, end=end) for start, end in result.pauses],
                expires_at=expires_at(call.decision, call.started_at, ended_at),
                encryption=stored.encryption if stored else None,
                # Fail closed: the outcome waits ('uploading') until the object store confirms the file.
                upload=self._uploader is not None and stored is not None,
            )
        except Exception:
            # The row stays 'recording': crash recovery finishes it at the next start, from the file as it is.
            log.exception("call %s: could not finish catalogue row %s", call.call_id, call.reference)
            status = RecordingStatus.FAILED
        else:
            self._metrics.finalise_seconds.observe(time.monotonic() - begun)
            if stored is not None:
                self._metrics.recorded_bytes.inc(stored.size_bytes)
        if status is RecordingStatus.FAILED and call.decision is not None and call.decision.record:
            self._metrics.recording_promises_broken.labels("recording").inc()
        elif self._lifecycle is not None and status is not RecordingStatus.FAILED:
            # Consent: the last presses, and a question still open, are decided by the end of the call.
            answers = [] if self._consent is None else self._consent.at_hang_up(call, result.duration)
            try:
                discarded = await self._lifecycle.settle(
                    call_id=call.call_id,
                    recording_id=call.recording_id,
                    started_at=call.started_at,
                    decision=call.decision,
                    consent=call.consent,
                    answers=answers,
                    media_start=result.media_start,
                )
            except Exception:
                log.exception("call %s: could not apply the retention or consent decision", call.call_id)
                discarded = None
            if discarded is not None:
                path = None  # nothing left to transcode
        if self._uploader is not None and stored is not None:
            self._uploader.wake()
        # Output formats: the finished recording's rendition job. The format is per recording (the configured
        # default until a policy picks one); FAILED here means the row could not be finished.
        if self._transcoder is not None and path is not None and status is not RecordingStatus.FAILED:
            await self._transcoder.request(call.recording_id, self._config.recording_format)
        self._metrics.recordings_finished.labels(status.value).inc()
        level = logging.INFO if status is RecordingStatus.COMPLETE else logging.WARNING
        quality = "; ".join(
            f"stream {i}: {s.packets} packets, {s.lost} lost, {s.late} late, {s.duplicated} duplicated, "
            f"{s.invalid} invalid"
            for i, s in enumerate(result.streams)
        )
        log.log(
            level,
            "call %s: recording %s %s after %.2f s of media (%s) [%s]",
            call.call_id,
            call.reference,
            status.value,
            result.duration,
            why,
            quality or "no streams",
        )

    async def _store(self, call: Call, path: Path) -> StoredFile:
        """The finished recording file as the catalogue names it. It was written sealed (nothing is left to
        encrypt): read back through its key, every chunk verified, for the audio's SHA-256. A plain file when
        recordings are not encrypted."""
        data_key = self._data_keys.get(call.recording_id)
        if data_key is None:
            return await asyncio.to_thread(plain_stored_file, path)
        return await asyncio.to_thread(stored_sealed_file, path, data_key)

    # -- housekeeping -----------------------------------------------------------------------------------------------
    def check_calls(self) -> None:
        """Once a second: session timers (RFC 4028 §10) and loud no-media (GUIDE §2.8)."""
        for call_id in self._unrecorded.expire(time.monotonic(), _UNRECORDED_IDLE):
            log.info(
                "call %s: not-recorded session forgotten after %.0f s without a request",
                call_id,
                _UNRECORDED_IDLE,
            )
        now = time.monotonic()
        for call in list(self._calls.values()):
            due = call.timer_due(now)
            if due == "bye":
                log.warning(
                    "call %s: the SRC stopped refreshing its session (RFC 4028); ending it", call.call_id
                )
                call.timer_interval = None
                self._spawn(call.call_id, self._hang_up(call.call_id, "session timer expired"))
            elif due == "refresh":
                call.refreshed_at = now
                self._spawn(call.call_id, self._refresh(call))
        self._check_media(now)
        if self._consent is not None:  # decisions are applied in each call's turn
            for call in self._consent.check(self._calls.values(), time.time()):
                self._spawn(call.call_id, self._consent.apply(call))

    async def _refresh(self, call: Call) -> None:
        """We are the refresher: a body-less UPDATE refreshes the session (RFC 4028 §10, RFC 3311)."""
        dialog_id = call.dialog_id or self._dialog_for(call.call_id)
        if dialog_id is None or call.timer_interval is None:
            return
        interval = f"{call.timer_interval};refresher=uas"
        try:
            self.driver.endpoint.send_request(
                dialog_id, "UPDATE", now=self.driver.now(), headers=[("Session-Expires", interval)]
            )
        except Exception:
            log.exception("call %s: could not send a session refresh", call.call_id)
            return
        self.driver.flush()

    def _check_media(self, now: float) -> None:
        """GUIDE §2.8: a call or a stream that delivers nothing within ``no_media_timeout`` is reported
        loudly (log, metric) while the call runs; its final status says the same (``no_media``/``one_way``)."""
        timeout = self._config.no_media_timeout
        for call in self._calls.values():
            if call.media_checked or call.discarded or now - call.created_monotonic < timeout:
                continue
            if call.media.paused:
                continue  # on hold from the start: nothing is expected
            silent = call.media.silent_streams()
            if not call.media.received_any():
                if not call.no_media_warned:
                    call.no_media_warned = True
                    self._metrics.calls_without_media.inc()
                    log.warning(
                        "call %s: recording %s has received no RTP after %.0f s on ports %s",
                        call.call_id,
                        call.reference,
                        timeout,
                        call.ports,
                    )
                continue  # media may still start: then the one-way check follows
            call.media_checked = True
            if silent:
                self._metrics.calls_one_way.inc()
                log.warning(
                    "call %s: recording %s is one-way: stream(s) %s sent no RTP in %.0f s while others did",
                    call.call_id,
                    call.reference,
                    silent,
                    timeout,
                )

    async def _finalise_discarded(self, call: Call, why: str) -> None:
        """The end of a call whose recording was deleted while it ran: release its ports; nothing is stored."""
        result: RecordingResult | None = None
        try:
            result = await call.media.close()
        except Exception:
            log.exception("call %s: media of a discarded recording did not close cleanly", call.call_id)
        finally:
            self._release(list(call.ports.values()))
            self._calls.pop(call.call_id, None)
            self._locks.pop(call.call_id, None)
            if not self._calls:
                self._idle.set()
        self._data_keys.pop(call.recording_id, None)
        await remove_file(call.path)
        if result is not None:
            self._finished_totals.add(RtpTotals.of(result.streams))
        self._metrics.recordings_finished.labels("discarded").inc()
        log.info(
            "call %s: recording %s ended (%s); it was discarded during the call, nothing is kept",
            call.call_id,
            call.reference,
            why,
        )

    async def shutdown(self, grace: float) -> None:
        """Refuse new calls, let active ones finish for ``grace`` seconds, then BYE and finalise the rest."""
        self.drain(True)
        if self._calls:
            log.info("draining: %d active call(s), waiting up to %.0f s", len(self._calls), grace)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)
        remaining = list(self._calls)
        if remaining:
            log.info("ending %d call(s) still active after the grace period", len(remaining))
        await asyncio.gather(
            *(self._run_locked(cid, self._hang_up(cid, "server shutdown")) for cid in remaining)
        )
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _run_locked(self, call_id: str, work: Awaitable[None]) -> None:
        async with self._locks.setdefault(call_id, asyncio.Lock()):
            await work


class _KeyNotStored(Exception):
    """A recording's data key could not be stored: the call must not be recorded (never unencrypted)."""


def _decided(decision: Decision | None) -> str:
    if decision is None:
        return ""
    tenant = decision.tenant_slug or "no tenant"
    if not decision.record:
        return f"; {tenant}, by {decision.attributed_by.value}"
    retention = decision.retention.code if decision.retention is not None else "?"
    basis = decision.basis.value if decision.basis is not None else "?"
    return f"; {tenant} by {decision.attributed_by.value}, {basis}, {retention}"


def _layout_for(metadata: RecordingMetadata, call: Call) -> ChannelLayout:
    """Who is caller and callee after a metadata update: the channels stay as they are; the roles follow
    the parties now sending on them (an Avaya SBCE sends its real participants only in an UPDATE)."""
    labels = [stream.label for stream in call.answer.streams]
    fresh = assign_channels(metadata, labels)
    return fresh if fresh.channels == call.layout.channels else call.layout


def _call_id(request: SipRequest) -> str:
    return request.headers.get("Call-ID") or ""
