"""Delivery metrics, registered on the server's registry (``siprec_server.metrics.Metrics.registry``).

Bounded labels only: the target's kind (sftp, ftps, webhook) and the attempt's result, never a tenant, a
target or a recording. The backlog gauges are the catalogue's figures (every node's outbox), refreshed after
each worker pass; an alert on ``hangtar_delivery_oldest_seconds`` catches a target down for too long.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import Counter as PromCounter

__all__ = ["RESULTS", "DeliveryMetrics"]

RESULTS = (
    "delivered",
    "retry",
    "dead",
    "lost",
)  # lost: the lease was taken over; the other node's result counts


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = PromCounter(
            "hangtar_deliveries",
            "Delivery attempts (recordings and erasure/restriction notices), by target kind (sftp, ftps, webhook) "
            "and result (delivered; retry: failed, tried again later; dead: given up; lost: the lease was taken "
            "over by another node)",
            ["kind", "result"],
            registry=registry,
        )
        self.backlog = Gauge(
            "hangtar_delivery_backlog",
            "Recordings and notices waiting for delivery to enabled targets, on every node (outbox rows pending "
            "or being sent)",
            registry=registry,
        )
        self.oldest = Gauge(
            "hangtar_delivery_oldest_seconds",
            "Seconds since the oldest undelivered outbox row was enqueued (0 when none waits)",
            registry=registry,
        )

    def backlog_is(self, waiting: int, oldest_seconds: float) -> None:
        self.backlog.set(waiting)
        self.oldest.set(oldest_seconds)
