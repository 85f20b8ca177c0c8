"""Reading Hangtár's /metrics text (an excerpt of a real scrape) and histogram bounds between two scrapes."""

from __future__ import annotations

import math

from load_tests.loadgen.prometheus import parse_metrics

SCRAPE = """\
# HELP hangtar_event_loop_lag_seconds How late the event loop ran a timer it was asked to run
# TYPE hangtar_event_loop_lag_seconds histogram
hangtar_event_loop_lag_seconds_bucket{le="0.001"} 120.0
hangtar_event_loop_lag_seconds_bucket{le="0.005"} 131.0
hangtar_event_loop_lag_seconds_bucket{le="0.01"} 131.0
hangtar_event_loop_lag_seconds_bucket{le="0.025"} 133.0
hangtar_event_loop_lag_seconds_bucket{le="0.05"} 133.0
hangtar_event_loop_lag_seconds_bucket{le="+Inf"} 133.0
hangtar_event_loop_lag_seconds_count 133.0
hangtar_event_loop_lag_seconds_sum 0.2871
hangtar_event_loop_lag_last_seconds 0.0027
# TYPE hangtar_sip_responses_total counter
hangtar_sip_responses_total{code="100",method="INVITE"} 60.0
hangtar_sip_responses_total{code="200",method="INVITE"} 58.0
hangtar_sip_responses_total{code="503",method="INVITE"} 2.0
hangtar_sip_responses_total{code="200",method="OPTIONS"} 31.0
hangtar_metadata_dialect_total{namespace="recording:1",root="recording"} 60.0
hangtar_rtp_packets_total 48021.0
hangtar_active_calls 58.0
not a sample line {
"""


def test_values_by_name_and_labels() -> None:
    snapshot = parse_metrics(SCRAPE, at=12.5)
    assert snapshot.at == 12.5
    assert snapshot.value("hangtar_rtp_packets_total") == 48021
    assert snapshot.value("hangtar_active_calls") == 58
    assert snapshot.value("hangtar_sip_responses_total", method="INVITE", code="503") == 2
    assert snapshot.value("hangtar_sip_responses_total", method="BYE", code="200") == 0
    assert snapshot.total("hangtar_sip_responses_total") == 151
    assert snapshot.by_label("hangtar_sip_responses_total", "method") == {"INVITE": 120, "OPTIONS": 31}
    assert snapshot.value("hangtar_metadata_dialect_total", namespace="recording:1", root="recording") == 60


def test_histogram_bound_of_what_happened_between_two_scrapes() -> None:
    before = parse_metrics(SCRAPE, at=0.0)
    quiet = parse_metrics(SCRAPE, at=2.0)
    assert quiet.bucket_bound_since(before, "hangtar_event_loop_lag_seconds") is None
    later = parse_metrics(
        SCRAPE.replace('le="0.001"} 120.0', 'le="0.001"} 150.0')
        .replace('le="0.005"} 131.0', 'le="0.005"} 162.0')
        .replace('le="0.01"} 131.0', 'le="0.01"} 162.0')
        .replace('le="0.025"} 133.0', 'le="0.025"} 164.0')
        .replace('le="0.05"} 133.0', 'le="0.05"} 164.0')
        .replace('le="+Inf"} 133.0', 'le="+Inf"} 164.0'),
        at=4.0,
    )
    assert later.bucket_bound_since(before, "hangtar_event_loop_lag_seconds") == 0.005
    assert later.buckets("hangtar_event_loop_lag_seconds")[-1] == (math.inf, 164.0)
    assert before.bucket_bound_since(before, "no_such_histogram") is None


def test_a_labelled_histogram_is_bounded_over_all_its_series() -> None:
    def scrape(young: tuple[int, int], full: tuple[int, int]) -> str:
        lines = ["# TYPE hangtar_gc_pause_seconds histogram"]
        for generation, (fast, total) in (("0", young), ("2", full)):
            lines += [
                f'hangtar_gc_pause_seconds_bucket{{generation="{generation}",le="0.01"}} {fast}.0',
                f'hangtar_gc_pause_seconds_bucket{{generation="{generation}",le="0.1"}} {total}.0',
                f'hangtar_gc_pause_seconds_bucket{{generation="{generation}",le="+Inf"}} {total}.0',
            ]
        return "\n".join(lines) + "\n"

    before = parse_metrics(scrape(young=(500, 500), full=(3, 3)), at=0.0)
    young_only = parse_metrics(scrape(young=(900, 900), full=(3, 3)), at=1.0)
    assert young_only.buckets("hangtar_gc_pause_seconds") == [(0.01, 903.0), (0.1, 903.0), (math.inf, 903.0)]
    assert young_only.bucket_bound_since(before, "hangtar_gc_pause_seconds") == 0.01
    a_long_full_one = parse_metrics(scrape(young=(900, 900), full=(3, 4)), at=2.0)
    assert a_long_full_one.bucket_bound_since(before, "hangtar_gc_pause_seconds") == 0.1
