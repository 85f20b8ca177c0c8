"""The figures of one capacity step, from what the generator, the monitor and the verification saw (pure).

- CPU % is of one core: the server process's CPU time over wall time. The "plateau" is the part of the
  step when (nearly) every call is up, after the ramp and before the first hang-up; CPU-seconds per recorded
  call-hour divide the server's CPU time over the whole step (set-up, hold, finalisation) by the hours of
  audio the step recorded.
- Loss % = (RTP packets sent − packets the server received) / sent, from the server's counters (the
  difference of two scrapes, after every recording was finalised) and again from the catalogue's per-stream
  counts. Packets the generator dropped on purpose are never sent, so they are not in it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .monitor import Sample
from .prometheus import MetricsSnapshot
from .results import FAILED, CallResult, TickStats
from .sip_uac import Outcome
from .verify import CallVerdict

__all__ = ["ResourceUse", "StepFigures", "percentile", "step_figures"]

PLATEAU_SHARE = 0.95  # of the step's calls up at once


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceUse:
    server_cpu_seconds: float | None
    postgres_cpu_seconds: float | None
    server_rss_before: int | None  # bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class StepFigures:
    calls: int
    hold: float
    answered: int
    rejected: int
    timeouts: int
    failed: int
    verified: int | None  # None: not verified (no catalogue access)
    plateau_seconds: float
    cpu_percent: float | None  # server, mean over the plateau
    cpu_percent_peak: float | None
    server_cpu_seconds: float | None
    recorded_hours: float
    cpu_seconds_per_call_hour: float | None
    postgres_cpu_seconds: float | None
    generator_cpu_percent: float | None  # mean over the plateau, all generator processes together
    generator_late_ticks: int  # 20 ms ticks that ran more than 20 ms late (their packets went out bunched)
    generator_max_lateness_ms: float
    rss_peak_mb: float | None
    rss_per_call_kb: float | None
    rtp_sent: int
    rtp_dropped_on_purpose: int
    rtp_duplicated_on_purpose: int
    rtp_reordered_on_purpose: int
    legs_with_ssrc_change: int
    rtp_received: int | None  # server counter
    rtp_received_catalogue: int | None
    loss_percent: float | None
    loss_percent_catalogue: float | None
    rtp_lost_reported: int | None  # RFC 3550 expected − received, server counter (includes drops on purpose)
    rtp_late: int | None
    rtp_duplicated: int | None
    rtcp_sent: int
    rtcp_received: int | None
    options_probes: int
    options_lost: int
    options_p50_ms: float | None
    options_p99_ms: float | None
    options_max_ms: float | None
    loop_lag_max_ms: float | None  # largest last-lag sample seen in the scrapes
    loop_lag_bucket_ms: float | None  # histogram bound every lag observation of the step stayed under
    gc_pause_bucket_ms: float | None  # histogram bound every garbage-collector pause of the step stayed under
    gc_reclaimed_objects: int | None  # unreachable objects the server's reclaim found once the step was over
    gc_reclaim_bucket_ms: float | None  # histogram bound of that reclaim's pause (no call up)
    write_backlog_max: float | None  # most audio writes queued for the writer thread in a scrape
    setup_p50_ms: float | None
    setup_p99_ms: float | None
    rejected_statuses: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {key: _finite(value) for key, value in asdict(self).items()}


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0–100) by linear interpolation, None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def step_figures(
    *,
    calls: Sequence[CallResult],
    hold: float,
    verdicts: Sequence[CallVerdict] | None,
    samples: Sequence[Sample],
    round_trips: Sequence[float | None],
    before: MetricsSnapshot | None,
    after: MetricsSnapshot | None,
    scrapes: Sequence[MetricsSnapshot],
    reclaimed: MetricsSnapshot | None,
    resources: ResourceUse,
    ticks: Sequence[TickStats],
) -> StepFigures:
    n = len(calls)
    legs = [leg for call in calls for leg in call.legs]
    sent = sum(leg.sent for leg in legs)
    plateau = [s for s in samples if s.generator_active >= max(1, PLATEAU_SHARE * n)]
    plateau_seconds = plateau[-1].at - plateau[0].at if len(plateau) > 1 else 0.0
    window = plateau if len(plateau) > 1 else list(samples)
    cpu = [s.server_cpu for s in window if s.server_cpu is not None]
    all_cpu = [s.server_cpu for s in samples if s.server_cpu is not None]
    generator_cpu = [s.generator_cpu for s in window if s.generator_cpu is not None]
    rss = [s.server_rss for s in samples if s.server_rss is not None]
    if verdicts is not None:
        recorded = sum(v.duration or 0.0 for v in verdicts) / 3600
    else:
        recorded = sum(call.media_span or 0.0 for call in calls) / 3600
    cpu_seconds = resources.server_cpu_seconds
    received = counter(before, after, "hangtar_rtp_packets_total")
    catalogue = sum(v.received for v in verdicts) if verdicts is not None else None
    answered_rtts = [rtt for rtt in round_trips if rtt is not None]
    lags = [s.value("hangtar_event_loop_lag_last_seconds") for s in scrapes]
    backlogs = [s.value("hangtar_write_backlog") for s in scrapes]
    # Histograms up to the step's last scrape (calls up): the server's idle reclaim after it is reported apart.
    end = scrapes[-1] if scrapes else after
    lag_bucket = end.bucket_bound_since(before, "hangtar_event_loop_lag_seconds") if before and end else None
    gc_bucket = end.bucket_bound_since(before, "hangtar_gc_pause_seconds") if before and end else None
    reclaim_bucket = (
        reclaimed.bucket_bound_since(end, "hangtar_gc_pause_seconds")
        if reclaimed is not None and end
        else None
    )
    setups = [call.setup_ms for call in calls if call.setup_ms is not None]
    rejected_statuses: dict[str, int] = {}
    for call in calls:
        if call.outcome == Outcome.REJECTED:
            key = str(call.status)
            rejected_statuses[key] = rejected_statuses.get(key, 0) + 1
    return StepFigures(
        calls=n,
        hold=hold,
        answered=sum(1 for call in calls if call.answered),
        rejected=sum(1 for call in calls if call.outcome == Outcome.REJECTED),
        timeouts=sum(1 for call in calls if call.outcome in (Outcome.TIMEOUT, Outcome.BYE_TIMEOUT)),
        failed=sum(1 for call in calls if call.outcome == FAILED),
        verified=sum(1 for v in verdicts if v.verified) if verdicts is not None else None,
        plateau_seconds=plateau_seconds,
        cpu_percent=_mean(cpu),
        cpu_percent_peak=max(all_cpu) if all_cpu else None,
        server_cpu_seconds=cpu_seconds,
        recorded_hours=recorded,
        cpu_seconds_per_call_hour=cpu_seconds / recorded
        if cpu_seconds is not None and recorded > 0
        else None,
        postgres_cpu_seconds=resources.postgres_cpu_seconds,
        generator_cpu_percent=_mean(generator_cpu),
        generator_late_ticks=sum(t.late for t in ticks),
        generator_max_lateness_ms=max((t.max_lateness for t in ticks), default=0.0) * 1000,
        rss_peak_mb=max(rss) / 2**20 if rss else None,
        rss_per_call_kb=(
            (max(rss) - resources.server_rss_before) / 1024 / n
            if rss and resources.server_rss_before is not None and n
            else None
        ),
        rtp_sent=sent,
        rtp_dropped_on_purpose=sum(leg.dropped for leg in legs),
        rtp_duplicated_on_purpose=sum(leg.duplicated for leg in legs),
        rtp_reordered_on_purpose=sum(leg.reordered for leg in legs),
        legs_with_ssrc_change=sum(1 for leg in legs if len(leg.ssrcs) > 1),
        rtp_received=None if received is None else int(received),
        rtp_received_catalogue=catalogue,
        loss_percent=_loss(sent, received),
        loss_percent_catalogue=_loss(sent, catalogue),
        rtp_lost_reported=_int(counter(before, after, "hangtar_rtp_lost_total")),
        rtp_late=_int(counter(before, after, "hangtar_rtp_late_total")),
        rtp_duplicated=_int(counter(before, after, "hangtar_rtp_duplicated_total")),
        rtcp_sent=sum(leg.rtcp_sent for leg in legs),
        rtcp_received=_int(counter(before, after, "hangtar_rtp_rtcp_packets_total")),
        options_probes=len(round_trips),
        options_lost=len(round_trips) - len(answered_rtts),
        options_p50_ms=_ms(percentile(answered_rtts, 50)),
        options_p99_ms=_ms(percentile(answered_rtts, 99)),
        options_max_ms=_ms(max(answered_rtts) if answered_rtts else None),
        loop_lag_max_ms=_ms(max(lags) if lags else None),
        loop_lag_bucket_ms=_ms(lag_bucket),
        gc_pause_bucket_ms=_ms(gc_bucket),
        gc_reclaimed_objects=_int(counter(before, reclaimed, "hangtar_gc_reclaimed_objects_total")),
        gc_reclaim_bucket_ms=_ms(reclaim_bucket),
        write_backlog_max=max(backlogs) if backlogs else None,
        setup_p50_ms=percentile(setups, 50),
        setup_p99_ms=percentile(setups, 99),
        rejected_statuses=rejected_statuses,
    )


def counter(before: MetricsSnapshot | None, after: MetricsSnapshot | None, name: str) -> float | None:
    """How much a counter grew between two scrapes (None without both)."""
    if before is None or after is None:
        return None
    return after.total(name) - before.total(name)


def _loss(sent: int, received: float | None) -> float | None:
    if received is None or sent == 0:
        return None
    return (sent - received) / sent * 100


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)
