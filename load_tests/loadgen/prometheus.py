"""Reading the server's ``/metrics`` (Prometheus text format 0.0.4): a tiny parser and an HTTP GET.

Only what the monitor needs: sample values by name and labels, sums over labels, and from two scrapes of a
histogram the bucket bound that the largest observation between them stayed under.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["MetricsSnapshot", "fetch_metrics", "http_get", "parse_metrics"]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSnapshot:
    at: float  # monotonic time of the scrape
    samples: Mapping[tuple[str, Labels], float] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        """One sample (0 when absent, as a counter that has not been touched yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str) -> float:
        """The sum of a metric over all its label sets."""
        return sum(value for (metric, _), value in self.samples.items() if metric == name)

    def by_label(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for (metric, labels), value in self.samples.items():
            if metric == name:
                key = dict(labels).get(label, "")
                out[key] = out.get(key, 0.0) + value
        return out

    def buckets(self, histogram: str) -> list[tuple[float, float]]:
        """(upper bound, cumulative count) of a histogram, by bound, summed over its other labels."""
        found: dict[float, float] = {}
        for (metric, labels), value in self.samples.items():
            if metric == f"{histogram}_bucket":
                bound = dict(labels).get("le", "+Inf")
                key = math.inf if bound == "+Inf" else float(bound)
                found[key] = found.get(key, 0.0) + value
        return sorted(found.items())

    def bucket_bound_since(self, earlier: MetricsSnapshot, histogram: str) -> float | None:
        """The smallest bucket bound holding every observation made between ``earlier`` and this scrape (an
        upper bound on their maximum); None if there were none."""
        before = dict(earlier.buckets(histogram))
        now = self.buckets(histogram)
        if not now:
            return None
        total = now[-1][1] - before.get(now[-1][0], 0.0)
        if total <= 0:
            return None
        for bound, count in now:
            if count - before.get(bound, 0.0) >= total:
                return bound
        return math.inf


def parse_metrics(text: str, at: float) -> MetricsSnapshot:
    samples: dict[tuple[str, Labels], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line.strip())
        if match is None:
            continue
        name, label_text, value = match.groups()
        labels = frozenset(_LABEL.findall(label_text or ""))
        try:
            samples[(name, labels)] = float(value)
        except ValueError:
            continue
    return MetricsSnapshot(at=at, samples=samples)


async def http_get(host: str, port: int, path: str) -> tuple[int, bytes]:
    """A plain HTTP/1.0 GET (the connection closes after the body): status and body."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nAccept: text/plain\r\n\r\n".encode())
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise ConnectionError(f"not an HTTP response from {host}:{port}")
    return int(status_line[1]), body


async def fetch_metrics(host: str, port: int, at: float) -> MetricsSnapshot:
    status, body = await http_get(host, port, "/metrics")
    if status != 200:
        raise ConnectionError(f"/metrics answered {status}")
    return parse_metrics(body.decode("utf-8", "replace"), at)
