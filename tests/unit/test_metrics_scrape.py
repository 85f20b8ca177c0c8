"""/metrics is rendered on a worker thread while the event loop moves finished calls' RTP counts into the
totals: the RTP counters it exports never go backwards."""

from __future__ import annotations

from siprec_server.metrics import Metrics, RtpTotals


def packets(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("hangtar_rtp_packets_total")


def test_a_scrape_never_sees_an_rtp_counter_go_down() -> None:
    # A call's packets read live by one scrape, and by the next (racing the loop that folds the finished call
    # into the totals) for a moment neither live nor folded: 500, then 300, then 700.
    readings = iter([500, 300, 700])

    def totals() -> RtpTotals:
        return RtpTotals(packets=next(readings))

    metrics = Metrics()
    metrics.watch_rtp(totals)
    assert packets(metrics) == 500
    assert packets(metrics) == 500  # not 300: Prometheus would take that for a restart
    assert packets(metrics) == 700
