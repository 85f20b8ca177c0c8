"""``hangtar serve``: the server process's lifecycle.

Start: database (embedded unless a DSN is configured) and migrations → recovery of recordings a previous process
left unfinished (encrypted files finished up to their last flush; a plain file an earlier version left is
encrypted, and plaintexts a crash left after such sealing removed) → rendition pool (resumes pending renditions)
→ SIP listeners (UDP and TCP, and TLS unless its port is 0), RTP port pool, HTTP (/healthz, /metrics).
Stop (SIGTERM/SIGINT): refuse new calls (503), let active recordings finish for the grace period, BYE the rest,
finalise their files, stop the rendition pool (unfinished renditions stay pending), close everything and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from media import PortPool
from media.pump import MediaPump
from media.write_queue import WriteQueue
from storage import Catalogue, CommandListener, FileBlobStore, RecordingStatus, open_pool
from storage.audit import AuditLog
from storage.consent import ConsentLedger
from storage.delivery_copies import DeliveredCopies
from storage.delivery_outbox import Outbox
from storage.delivery_targets import TargetKind, TargetStore
from storage.erasure import ErasureService
from storage.errors import KeyUnavailableError, StorageError
from storage.keyfile import KeyFileProvider
from storage.lifecycle_counts import lifecycle_counts
from storage.nodes import NodeRegistry
from storage.numbers_backfill import backfill_numbers
from storage.policies import PolicyStore
from storage.sweeper import Sweeper

from .api import build_api, make_services
from .bootstrap import open_storage
from .call import existing_file
from .calls import CallManager
from .config import Config
from .delivery import DeliveryMetrics, DeliveryWorker, FtpsTransport, PayloadSource, SftpTransport
from .delivery.link_signing import LinkSigner
from .delivery.webhook import WebhookTransport
from .demo import DemoLogin, ensure_demo
from .gc_pauses import GcPauses
from .gc_policy import GcPolicy
from .http import HttpServer, build_app
from .lifecycle import CallLifecycle
from .metrics import Metrics
from .policy_book import PolicyBook
from .portal import mount_portal
from .sealing import (
    RecordingCrypto,
    Sealer,
    StoredFile,
    plain_stored_file,
    recover_plain_file,
    recover_sealed_file,
)
from .sip import SipEndpoint
from .tls import TlsSetup, client_context, load_tls
from .transcoder import TranscodePool, encode_settings
from .transport import SipDriver
from .uploader import S3Metrics, Uploader

__all__ = ["run_server"]

log = logging.getLogger(__name__)

_LAG_INTERVAL = 0.25
_MEDIA_CHECK_INTERVAL = 1.0
_LIFECYCLE_COUNT_INTERVAL = 60.0


def product_version() -> str:
    try:
        return version("hangtar")
    except PackageNotFoundError:
        return "0"


async def run_server(config: Config, *, demo: bool = False) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    _raise_file_limit(config)
    metrics = Metrics()
    s3_metrics = None if config.s3 is None else S3Metrics(metrics.registry)
    observe_s3 = None if s3_metrics is None else s3_metrics.observer()
    async with open_storage(config, observe_s3=observe_s3) as storage:
        # Encryption at rest: each recording written encrypted under its own data key from its first byte; the
        # sealer only encrypts plain files an earlier version left unfinished.
        crypto = RecordingCrypto.from_config(config, storage.pool)
        sealer = Sealer(crypto, journal=config.data_dir / "sealing", registry=metrics.registry)
        # This node in the shared catalogue; its own unfinished recordings (never another running node's).
        nodes = NodeRegistry(storage.pool, clock=_now)
        sip_address = f"{config.advertised_host}:{config.sip_port}"
        await nodes.register(config.node, version=product_version(), sip_address=sip_address)
        await recover_unfinished(
            storage.catalogue, storage.blobs, sealer, node=config.node, upload=storage.objects is not None
        )
        # The object store: finished recordings uploaded (and confirmed) before they count as complete.
        uploader = (
            None
            if storage.objects is None
            else Uploader(storage.pool, storage.objects, storage.blobs, node=config.node, metrics=s3_metrics)
        )
        # Recordings catalogued before number keys existed: filled in once, so a subject search finds them.
        filled = await backfill_numbers(storage.pool)
        if filled:
            log.info("filled in the number keys of %d older recordings", filled)
        endpoint = SipEndpoint(
            host=config.advertised_host, port=config.sip_port, user_agent=f"Hangtar/{product_version()}"
        )
        # Output formats: the rendition pool, on connections of its own (a job holds one while it encodes).
        # start() removes masters a crash left behind and resumes renditions left pending.
        transcode_db = await open_pool(storage.dsn, min_size=1, max_size=config.transcode_workers + 2)
        transcoder = TranscodePool.from_config(
            config, db=transcode_db, blobs=storage.blobs, metrics=metrics, crypto=crypto
        )
        await transcoder.start()
        # The GDPR lifecycle: the policy decided per INVITE from memory (reloaded on NOTIFY), consent and
        # "not kept" applied at hang-up, expired recordings swept periodically (one pass at a time per node,
        # rows claimed with SKIP LOCKED so several nodes never collide).
        audit = AuditLog()
        policies = PolicyBook(storage.pool, PolicyStore(storage.pool, audit))
        await policies.start()
        lifecycle = CallLifecycle(
            pool=storage.pool,
            erasure=ErasureService(storage.pool, storage.blobs, audit=audit, clock=_now),
            consent=ConsentLedger(storage.pool, audit=audit),
        )
        sweeper = Sweeper(storage.pool, storage.blobs, audit=audit, clock=_now, node=config.node)
        manager = CallManager(
            config=config,
            catalogue=storage.catalogue,
            blobs=storage.blobs,
            ports=PortPool(config.rtp_port_min, config.rtp_port_max),
            metrics=metrics,
            transcoder=transcoder,
            policies=policies,
            lifecycle=lifecycle,
            crypto=crypto,
            uploader=uploader,
        )
        driver = SipDriver(endpoint, manager.on_event)
        manager.attach(driver)
        await driver.listen(config.sip_host, config.sip_port)
        tls: TlsSetup | None = None
        if config.tls_port:
            tls = await asyncio.to_thread(load_tls, config, now=datetime.now(UTC))
            await driver.listen_tls(
                config.sip_host, config.tls_port, tls.context, client_context=client_context()
            )

        metrics.watch_sip(lambda: endpoint.counters)
        metrics.watch_rtp(manager.rtp_totals)
        metrics.watch_gauge(
            "hangtar_active_calls", "Recording sessions in progress", lambda: manager.active_calls
        )
        metrics.watch_gauge(
            "hangtar_active_streams", "RTP streams being recorded", lambda: manager.active_streams
        )
        metrics.watch_gauge("hangtar_rtp_ports_free", "Free RTP/RTCP port pairs", lambda: manager.free_ports)
        metrics.max_calls.set(config.max_calls)
        if tls is not None:
            expiry = tls.not_after.timestamp()
            metrics.watch_gauge(
                "hangtar_tls_certificate_expiry_timestamp_seconds",
                "When the SIP TLS certificate expires (Unix time of its notAfter)",
                lambda: expiry,
            )
        _watch_media_path(metrics)
        gc_pauses = GcPauses(metrics.registry)
        gc_pauses.install()
        gc_policy = GcPolicy(
            metrics.registry,
            lambda: manager.active_calls,
            freeze_interval=config.gc_freeze_interval,
            idle_reclaim=config.gc_idle_reclaim,
            reclaim_interval=config.gc_reclaim_interval,
            pauses=gc_pauses,
        )

        async def health() -> dict[str, Any]:
            database = "ok"
            try:
                await storage.pool.fetchval("SELECT 1")
            except Exception:
                database = "unreachable"
            status = "draining" if not endpoint.accepting else "ok"
            if database != "ok":
                status = "degraded"
            return {"status": status, "database": database, "active_calls": manager.active_calls}

        link_signer = await asyncio.to_thread(LinkSigner.from_data_dir, config.data_dir)
        services = make_services(
            storage.pool,
            blobs=storage.blobs,
            bundle_dir=config.data_dir / "access_requests",
            crypto=crypto,
            secure_cookies=config.secure_cookies,
        )
        # The REST API under /api/v1 and the subscriber portal beside it, over the same services.
        api = mount_portal(build_api(services, link_signer=link_signer), services)
        http = HttpServer(build_app(metrics, health, api), host=config.http_host, port=config.http_port)
        http_task = loop.create_task(http.serve())
        while not http.started:
            if http_task.done():
                driver.close()
                http_task.result()  # re-raise the bind failure
                raise RuntimeError("HTTP server stopped during start")
            await asyncio.sleep(0.01)
        commands = CommandListener(storage.dsn, manager.handle_command)
        await commands.start()
        background = [
            loop.create_task(_watch_loop_lag(metrics)),
            loop.create_task(_check_media(manager)),
            loop.create_task(_heartbeat(nodes, config, manager)),
            loop.create_task(gc_policy.run()),
        ]
        if uploader is not None:
            background.append(loop.create_task(uploader.run()))
        sweeping = asyncio.Event()
        background.append(loop.create_task(_count_lifecycle(storage.pool, metrics)))
        if config.sweep_interval:
            background.append(
                loop.create_task(
                    sweeper.run_periodically(config.sweep_interval, sweeping, on_report=metrics.count_sweep)
                )
            )
        if config.delivery_interval:
            # Deliveries to tenants' SFTP servers: one pass at a time per node, items claimed with SKIP LOCKED.
            delivery = await _delivery_worker(
                config, storage.pool, storage.blobs, crypto, audit, metrics, link_signer
            )
            background.append(loop.create_task(delivery.run_periodically(config.delivery_interval, sweeping)))
        # Everything built so far lives as long as the process: out of the collector's sight, and calls'
        # objects follow while they last (gc_policy).
        gc_policy.freeze_startup()
        _announce(config, storage.dsn_kind, tls, await ensure_demo(storage.pool) if demo else None)

        await stop.wait()
        log.info("shutting down: refusing new calls, %d active", manager.active_calls)
        await manager.shutdown(config.shutdown_grace)
        sweeping.set()
        await policies.stop()
        await transcoder.stop()  # renditions not finished stay pending for the next start
        await transcode_db.close()
        for task in background:
            task.cancel()
        await commands.close()
        http.stop()
        await http_task
        driver.close()
        with contextlib.suppress(StorageError):
            await nodes.stopped(config.node)
        gc_pauses.uninstall()
    log.info("stopped")
    return 0


async def recover_unfinished(
    catalogue: Catalogue,
    blobs: FileBlobStore,
    sealer: Sealer | None = None,
    *,
    node: str | None = None,
    upload: bool = False,
) -> int:
    """Rows left 'recording' by a process that died: keep the audio written so far as 'interrupted'. With
    ``node``, that node's rows only (and rows from before nodes were named): never a call another node is still
    recording. Returns how many were finished.

    A file written encrypted is finished with its data key: the audio up to the writer's last flush (one that
    holds nothing is removed). A plain file, which only an earlier version wrote, is encrypted by ``sealer``
    (None: kept plain), and then the plaintexts a crash left between the catalogue naming a sealed file and
    their removal go. A recording whose key cannot be had now stays 'recording', for the next start. With
    ``upload`` (an object store), a recovered file waits as 'uploading' like any finished one."""
    finished = 0
    for recording in await catalogue.unfinished(node):
        path = existing_file(recording.file_path)
        stored: StoredFile | None = None
        duration = recording.duration_seconds
        if path is not None:
            blobs.resolve(path)  # ValueError for a path outside the recordings directory
        if path is not None and recording.encryption is not None:
            if sealer is None:
                log.error("recording %s: encrypted, but no keys are configured", recording.reference)
                continue
            try:
                data_key = await sealer.crypto.data_key(recording)
                if data_key is None:  # not reached: the recording is encrypted
                    raise KeyUnavailableError(f"recording {recording.reference} has no data key")
                stored, found = await asyncio.to_thread(recover_sealed_file, path, data_key)
            except Exception:
                log.exception("recording %s: cannot finish its encrypted file now", recording.reference)
                continue
            duration = found if found is not None else duration
        elif path is not None:
            try:
                duration = await asyncio.to_thread(recover_plain_file, path)
            except RuntimeError as exc:  # soundfile's error for an unreadable file
                log.error("recording %s: the audio left behind is unreadable: %s", recording.reference, exc)
            if sealer is None:
                stored = await asyncio.to_thread(plain_stored_file, path)
            else:
                stored = await sealer.seal(recording.id, recording.tenant_id, path, recovering=True)
        await catalogue.finish(
            recording.id,
            status=RecordingStatus.INTERRUPTED,
            ended_at=datetime.now(UTC),
            media_started_at=recording.media_started_at,
            duration_seconds=duration,
            streams=list(recording.streams),
            file_path=str(stored.path) if stored else None,
            format=recording.format,
            size_bytes=stored.size_bytes if stored else None,
            sha256=stored.sha256 if stored else None,
            encryption=stored.encryption if stored else None,
            upload=upload and stored is not None,
        )
        if stored is not None and sealer is not None:
            await sealer.discard_plaintext(recording.id, stored)
        await catalogue.expire_by_class(recording.id)
        finished += 1
        log.warning(
            "recording %s was left unfinished by a previous run; kept as interrupted", recording.reference
        )
    if sealer is not None:
        await sealer.clear_journal(catalogue)
    return finished


def _now() -> datetime:
    return datetime.now(UTC)


def _raise_file_limit(config: Config) -> None:
    """Every recorded stream holds two sockets (RTP, RTCP), and each call a file: lift the soft limit on open
    files towards the hard one so ``max_calls`` fits (a default soft limit of 1024 caps near 250 calls)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = config.rtp_port_max - config.rtp_port_min + 1 + 4 * config.max_calls + 256
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        log.info("open files limit raised from %d to %d", soft, wanted)
    if wanted < 4 * config.max_calls:
        log.warning(
            "the open files limit (%d) is below what %d calls need; raise the hard limit (LimitNOFILE=)",
            wanted,
            config.max_calls,
        )


def _watch_media_path(metrics: Metrics) -> None:
    """The media pump's load and the writer thread's backlog: how close the media path is to its limit."""
    writes = WriteQueue.shared()
    metrics.watch_counter(
        "hangtar_media_busy_seconds",
        "Time the media pump spent receiving, placing and mixing audio (divide by elapsed time: core share)",
        lambda: sum(s.busy_seconds for s in MediaPump.all_stats()),
    )
    metrics.watch_counter(
        "hangtar_media_tick_overruns",
        "Media ticks that started late because the previous one had not finished (the media path is behind)",
        lambda: sum(s.overruns for s in MediaPump.all_stats()),
    )
    metrics.watch_gauge(
        "hangtar_media_cycle_seconds",
        "Duration of the last media tick over all sessions, including yields to the event loop",
        lambda: max((s.last_cycle for s in MediaPump.all_stats()), default=0.0),
    )
    metrics.watch_gauge(
        "hangtar_write_backlog", "Audio writes queued for the writer thread", lambda: writes.pending
    )


async def _watch_loop_lag(metrics: Metrics) -> None:
    while True:
        start = time.monotonic()
        await asyncio.sleep(_LAG_INTERVAL)
        lag = max(0.0, time.monotonic() - start - _LAG_INTERVAL)
        metrics.event_loop_lag.observe(lag)
        metrics.event_loop_lag_last.set(lag)


async def _count_lifecycle(pool: Any, metrics: Metrics) -> None:
    """Holds in force and access requests unanswered or overdue, over every tenant, every minute. A database
    outage is logged and the next count tries again."""
    while True:
        try:
            counts = await lifecycle_counts(pool, _now())
        except StorageError as exc:
            log.warning("holds and access requests not counted: %s", exc)
        else:
            metrics.legal_holds.labels("all").set(counts.holds)
            metrics.legal_holds.labels("release_requested").set(counts.holds_release_requested)
            metrics.access_requests.labels("open").set(counts.requests_open)
            metrics.access_requests.labels("overdue").set(counts.requests_overdue)
        await asyncio.sleep(_LIFECYCLE_COUNT_INTERVAL)


async def _heartbeat(nodes: NodeRegistry, config: Config, manager: CallManager) -> None:
    """This node's row: seen, draining or not, active calls (``hangtar nodes``). A database outage is logged
    and the next beat tries again; calls are not affected."""
    while True:
        await asyncio.sleep(config.node_heartbeat)
        try:
            await nodes.heartbeat(config.node, draining=manager.draining, active_calls=manager.active_calls)
        except StorageError as exc:
            log.warning("node heartbeat not recorded: %s", exc)


async def _check_media(manager: CallManager) -> None:
    while True:
        await asyncio.sleep(_MEDIA_CHECK_INTERVAL)
        manager.check_calls()


async def _delivery_worker(
    config: Config,
    pool: Any,
    blobs: FileBlobStore,
    crypto: RecordingCrypto,
    audit: AuditLog,
    metrics: Metrics,
    link_signer: LinkSigner,
) -> DeliveryWorker:
    """The delivery worker over the outbox; payloads are spooled under the data dir (emptied at start). What
    this node's previous process was sending when it died is taken back at once (its leases ended)."""
    payloads = PayloadSource(
        pool, blobs, crypto, spool=config.data_dir / "delivery-spool", settings=encode_settings(config)
    )
    await payloads.clear_spool()
    outbox = Outbox(pool, audit=audit, clock=_now)
    if released := await outbox.release_own(config.node):
        log.warning("%d delivery attempt(s) cut off by the previous run will start again", released)
    return DeliveryWorker(
        outbox=outbox,
        targets=TargetStore(pool, KeyFileProvider(config.key_file_path), audit=audit, clock=_now),
        payloads=payloads,
        transports={
            TargetKind.SFTP: SftpTransport(),
            TargetKind.FTPS: FtpsTransport(),
            TargetKind.WEBHOOK: WebhookTransport(signer=link_signer, public_base=config.public_url or None),
        },
        copies=DeliveredCopies(pool, ErasureService(pool, blobs, audit=audit, clock=_now), node=config.node),
        clock=_now,
        node=config.node,
        metrics=DeliveryMetrics(metrics.registry),
    )


def _announce(config: Config, dsn_kind: str, tls: TlsSetup | None, demo: DemoLogin | None = None) -> None:
    """What an operator (and `make run`) needs to see: where we listen. Goes to stdout."""
    lines = [
        f"hangtar {product_version()} ready",
        f"  SIP   udp+tcp {config.sip_host}:{config.sip_port} (advertised as {config.advertised_host})",
    ]
    if tls is not None:
        kind = "self-signed certificate" if tls.self_signed else "certificate"
        lines.append(f"  SIP   tls {config.sip_host}:{config.tls_port} ({kind} {tls.certificate})")
        lines.append(f"        certificate SHA-256 {tls.fingerprint}")
    lines += [
        f"  RTP   {config.media_host} ports {config.rtp_port_min}-{config.rtp_port_max}",
        f"  HTTP  http://{config.http_host}:{config.http_port}/healthz  /metrics  /api/v1/docs",
        f"  portal http://{config.http_host}:{config.http_port}/",
        f"  data  {config.data_dir.resolve()} (database: {dsn_kind})",
    ]
    if demo is not None:
        lines.insert(
            -1,
            f"  login {demo.email}  one-time password {demo.password}  (demo tenant; change it at first login)",
        )
    print("\n".join(lines), flush=True)
    sys.stdout.flush()
