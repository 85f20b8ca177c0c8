from __future__ import annotations

from siprec_server.log_limit import LogLimiter


def test_a_flood_logs_a_burst_then_reports_what_it_suppressed() -> None:
    limiter = LogLimiter(burst=3, window=10.0)
    decisions = [limiter.admit(now=100.0 + i * 0.001) for i in range(1000)]
    assert [d for d in decisions if d[0]] == [(True, 0)] * 3
    # The next window logs again and says how many lines the flood cost.
    assert limiter.admit(now=111.0) == (True, 997)
    assert limiter.admit(now=111.1) == (True, 0)
