"""Prometheus metrics. One registry per server; no per-call labels (bounded cardinality). docs/metrics.md is the
reference (every metric, its labels and the alert that uses it); tests/integration/test_metrics_reference.py keeps
the two in step.

Counters that already live in sans-I/O cores (the SIP endpoint's message counters, per-stream RTP statistics) are
read at scrape time by custom collectors instead of being mirrored on the hot path. SIP methods come from the
peer, so the collector folds every method outside RFC 3261 and its extensions into ``other``. The registry also
carries the process collector (``process_cpu_seconds_total``, resident memory, open files), which capacity
dashboards set against the call count.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, PlatformCollector, ProcessCollector
from prometheus_client import Counter as PromCounter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from storage.sweeper import SweepReport

__all__ = ["SIP_METHODS", "Metrics", "RtpTotals"]

# RFC 3261 §27.4 and the extensions that registered a method (3262, 3265, 3311, 3428, 3515, 3903, 6086, 6665):
# the values the ``method`` label takes; anything else a peer sends is counted as ``other``.
SIP_METHODS = frozenset(
    {
        "ACK",
        "BYE",
        "CANCEL",
        "INFO",
        "INVITE",
        "MESSAGE",
        "NOTIFY",
        "OPTIONS",
        "PRACK",
        "PUBLISH",
        "REFER",
        "REGISTER",
        "SUBSCRIBE",
        "UPDATE",
    }
)


@dataclass(slots=True)
class RtpTotals:
    """RTP counts summed over streams: finished calls are folded into the running totals once."""

    packets: int = 0
    expected: int = 0
    lost: int = 0
    late: int = 0
    reordered: int = 0
    duplicated: int = 0
    telephone_events: int = 0
    invalid: int = 0
    srtp_failures: int = 0
    rtcp_packets: int = 0
    gap_seconds: float = 0.0

    def add(self, other: Any) -> None:
        """Add another total, or one stream's statistics (any object with the same counter attributes)."""
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @classmethod
    def of(cls, streams: Iterable[Any]) -> RtpTotals:
        totals = cls()
        for stream in streams:
            totals.add(stream)
        return totals


class _SipCollector(Collector):
    def __init__(self, counters: Callable[[], Counter[tuple[str, ...]]]) -> None:
        self._counters = counters

    def collect(self) -> Iterator[CounterMetricFamily]:
        requests = CounterMetricFamily(
            "hangtar_sip_requests", "SIP requests received, by method", labels=["method"]
        )
        responses = CounterMetricFamily(
            "hangtar_sip_responses",
            "SIP responses sent, by request method and status code",
            labels=["method", "code"],
        )
        malformed = CounterMetricFamily(
            "hangtar_sip_malformed",
            "Malformed SIP messages, by outcome (the status answered, or dropped)",
            labels=["outcome"],
        )
        received: Counter[str] = Counter()
        sent: Counter[tuple[str, str]] = Counter()
        for key, value in list(self._counters().items()):  # a copy: the loop counts on while a thread scrapes
            if key[0] == "rx" and len(key) == 2:
                received[_method(key[1])] += value
            elif key[0] == "tx" and len(key) == 3:
                sent[_method(key[1]), key[2]] += value
            elif key[0] == "malformed" and len(key) == 2:
                malformed.add_metric([key[1]], value)
        for method, count in sorted(received.items()):
            requests.add_metric([method], count)
        for (method, code), count in sorted(sent.items()):
            responses.add_metric([method, code], count)
        yield requests
        yield responses
        yield malformed


def _method(method: str) -> str:
    return method if method in SIP_METHODS else "other"


class _RtpCollector(Collector):
    """The RTP counters. A scrape thread may read a call's counts both live and already folded into the
    finished totals (the loop moves them between its reads): what it exports never goes below what it
    exported before, so a counter is never seen to reset."""

    def __init__(self, totals: Callable[[], RtpTotals]) -> None:
        self._totals = totals
        self._exported = RtpTotals()
        self._lock = threading.Lock()

    def collect(self) -> Iterable[CounterMetricFamily]:
        with self._lock:
            totals = self._totals()
            for name in RtpTotals.__slots__:
                setattr(totals, name, max(getattr(totals, name), getattr(self._exported, name)))
            self._exported = totals
        for name, help_text in (
            ("packets", "RTP packets received"),
            (
                "expected",
                "RTP packets expected from the sequence numbers (RFC 3550 A.3; loss ratio: lost/expected)",
            ),
            ("lost", "RTP packets lost (RFC 3550 expected minus received)"),
            ("late", "RTP packets that arrived after their place in the recording was written"),
            (
                "reordered",
                "RTP packets that arrived behind a higher sequence number but in time, and were placed",
            ),
            ("duplicated", "Duplicate RTP packets dropped"),
            ("telephone_events", "RFC 4733 telephone-event packets (kept out of the audio)"),
            ("invalid", "Datagrams on RTP ports that are not RTP"),
            ("srtp_failures", "SRTP packets that failed authentication or the replay check (RFC 3711 3.3)"),
            ("rtcp_packets", "RTCP packets received"),
            ("gap_seconds", "Seconds of silence filled into recorded streams for loss, DTX and late packets"),
        ):
            yield CounterMetricFamily(f"hangtar_rtp_{name}", help_text, value=getattr(totals, name))


class _GaugeCallback(Collector):
    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self._name, self._help, self._read = name, help_text, read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily(self._name, self._help, value=self._read())


class _CounterCallback(Collector):
    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self._name, self._help, self._read = name, help_text, read

    def collect(self) -> Iterable[CounterMetricFamily]:
        yield CounterMetricFamily(self._name, self._help, value=self._read())


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # CPU, memory and open files of this process (the figures capacity planning sets against calls).
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.build_info = Gauge(
            "hangtar_build_info",
            "Always 1; the running version in its label",
            ["version"],
            registry=self.registry,
        )
        self.build_info.labels(_product_version()).set(1)
        self.recordings_finished = PromCounter(
            "hangtar_recordings_finished",
            "Recordings finalised, by final status",
            ["status"],
            registry=self.registry,
        )
        self.calls_rejected = PromCounter(
            "hangtar_calls_rejected",
            "INVITEs not turned into recordings, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.calls_not_recorded = PromCounter(
            "hangtar_calls_not_recorded",
            "Recording sessions answered with inactive streams because no policy gives a legal basis, by reason "
            "(policy: explicitly not recorded; direction / direction_unknown: the policy covers other "
            "directions; no_policy; invalid_policy)",
            ["reason"],
            registry=self.registry,
        )
        self.recording_promises_broken = PromCounter(
            "hangtar_recording_promises_broken",
            "Calls a policy said to record that were not recorded (alarm): setup failed, or the recording failed",
            ["stage"],
            registry=self.registry,
        )
        self.consent_outcomes = PromCounter(
            "hangtar_consent_outcomes",
            "Answers to the consent prompt of consent-based calls, by outcome (given, refused, no_answer, "
            "stopped) and when they were decided (call: while it ran; hangup: by its end)",
            ["outcome", "when"],
            registry=self.registry,
        )
        self.consent_discards = PromCounter(
            "hangtar_consent_discards",
            "Consent-based recordings stopped for a refusal, no answer or the stop key, by what became of them "
            "(discarded: deleted with their file during the call; held: a legal hold keeps what was captured; "
            "failed: not deleted, left expired for the sweeper)",
            ["result"],
            registry=self.registry,
        )
        self.metadata_problems = PromCounter(
            "hangtar_metadata_problems",
            "Recording metadata that could not be parsed or needed tolerance, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.duplicate_recordings = PromCounter(
            "hangtar_duplicate_recordings",
            "Recordings of a communication session that was already being or had been recorded (linked)",
            registry=self.registry,
        )
        self.pauses = PromCounter(
            "hangtar_pauses",
            "Recordings paused by a re-offer (hold: a=inactive or c=0.0.0.0)",
            registry=self.registry,
        )
        self.calls_without_media = PromCounter(
            "hangtar_calls_without_media",
            "Recording sessions that had received no RTP at all within recording.no_media_timeout",
            registry=self.registry,
        )
        self.calls_one_way = PromCounter(
            "hangtar_calls_one_way",
            "Recording sessions where some streams delivered RTP within recording.no_media_timeout and others none",
            registry=self.registry,
        )
        self.metadata_dialects = PromCounter(
            "hangtar_metadata_dialect",
            "Metadata documents by namespace kind and root element",
            ["namespace", "root"],
            registry=self.registry,
        )
        self.metadata_vendors = PromCounter(
            "hangtar_metadata_vendor",
            "Vendor extension blocks seen in metadata, by vendor",
            ["vendor"],
            registry=self.registry,
        )
        self.event_loop_lag = Histogram(
            "hangtar_event_loop_lag_seconds",
            "How late the event loop ran a timer it was asked to run",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.event_loop_lag_last = Gauge(
            "hangtar_event_loop_lag_last_seconds", "Most recent event-loop lag sample", registry=self.registry
        )
        self.draining = Gauge(
            "hangtar_draining",
            "1 while the node refuses new calls (hangtar drain, or SIGTERM during shutdown)",
            registry=self.registry,
        )
        self.max_calls = Gauge(
            "hangtar_max_calls",
            "Concurrent recordings this node accepts ([recording] max_calls); beyond it INVITEs get 503",
            registry=self.registry,
        )
        self.finalise_seconds = Histogram(
            "hangtar_finalise_seconds",
            "From a call's end to its catalogue row finished: media closed, file read back and hashed, row written",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self.stream_jitter = Histogram(
            "hangtar_stream_jitter_seconds",
            "RFC 3550 interarrival jitter of each finished stream that received packets",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32),
            registry=self.registry,
        )
        self.recorded_bytes = PromCounter(
            "hangtar_recorded_bytes",
            "Bytes of the recording files this node finished, as stored (encrypted)",
            registry=self.registry,
        )
        # -- the GDPR lifecycle (storage.sweeper, storage.lifecycle_counts) --
        self.retention_deleted = PromCounter(
            "hangtar_retention_deleted",
            "Recordings this node's retention sweeps deleted because their retention period had ended",
            registry=self.registry,
        )
        self.retention_failed = PromCounter(
            "hangtar_retention_failed",
            "Recordings due for deletion that a sweep of this node could not delete (the next pass retries)",
            registry=self.registry,
        )
        self.retention_held = Gauge(
            "hangtar_retention_held",
            "Recordings due for deletion but kept by a legal hold, at this node's last sweep",
            registry=self.registry,
        )
        self.legal_holds = Gauge(
            "hangtar_legal_holds",
            "Legal holds in force over every tenant (state: all, or release_requested awaiting a second person)",
            ["state"],
            registry=self.registry,
        )
        self.access_requests = Gauge(
            "hangtar_access_requests",
            "Access requests not yet answered over every tenant (state: open, or overdue past their deadline)",
            ["state"],
            registry=self.registry,
        )
        # -- output formats (siprec_server.transcoder) --
        self.transcode_backlog = Gauge(
            "hangtar_transcode_backlog",
            "Renditions waiting to be encoded or being encoded, on every node (pending rows in the catalogue)",
            registry=self.registry,
        )
        self.transcode_jobs = PromCounter(
            "hangtar_transcode_jobs",
            "Rendition encoding attempts, by format and result (done, retry, failed)",
            ["format", "result"],
            registry=self.registry,
        )
        self.transcode_seconds = Histogram(
            "hangtar_transcode_encode_seconds",
            "Wall time a worker spent encoding one rendition (master read, encode, check, hash), by format",
            ["format"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
            registry=self.registry,
        )

    def count_sweep(self, report: SweepReport) -> None:
        """A retention sweep's pass (storage.sweeper.Sweeper.run_periodically)."""
        self.retention_deleted.inc(report.deleted)
        self.retention_failed.inc(report.failed)
        self.retention_held.set(report.held)

    def watch_sip(self, counters: Callable[[], Counter[tuple[str, ...]]]) -> None:
        self.registry.register(_SipCollector(counters))

    def watch_rtp(self, totals: Callable[[], RtpTotals]) -> None:
        self.registry.register(_RtpCollector(totals))

    def watch_gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.registry.register(_GaugeCallback(name, help_text, read))

    def watch_counter(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A counter read at scrape time (``name`` without the ``_total`` suffix)."""
        self.registry.register(_CounterCallback(name, help_text, read))


def _product_version() -> str:
    try:
        return version("hangtar")
    except PackageNotFoundError:
        return "0"
