"""docs/metrics.md against a real node: scraped during a real SIPREC call (pjsua2 SRC, two RTP streams) and after
it, every documented metric is exported with the documented type and labels, every label value is one the
reference lists (no per-call values), and every ``hangtar_*`` metric the node exports is documented."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .server import REPO, ServerProcess
from .sip_probe import UdpProbe, request, status_of

DOC = REPO / "docs" / "metrics.md"
PJSUA_SRC = REPO / "tests" / "peers" / "pjsua_src.py"
_ROW = re.compile(r"^\| `(\w+)` \| (counter|gauge|histogram) \| ([^|]*) \|")
_TICKED = re.compile(r"`([^`]+)`")


@dataclass(frozen=True, slots=True, kw_only=True)
class Documented:
    name: str  # as scraped: counters with _total
    kind: str
    labels: dict[str, frozenset[str] | None]  # None: values not enumerated (a range, a version)
    conditional: bool


def documented_metrics(doc: Path = DOC) -> dict[str, Documented]:
    """The metrics of the reference's "Exported metrics" and "Conditional metrics" tables."""
    found: dict[str, Documented] = {}
    section = ""
    for line in doc.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        match = _ROW.match(line)
        if match is None or section not in ("Exported metrics", "Conditional metrics"):
            continue
        name, kind, cell = match.groups()
        found[name] = Documented(
            name=name, kind=kind, labels=_labels(cell), conditional=section == "Conditional metrics"
        )
    return found


def _labels(cell: str) -> dict[str, frozenset[str] | None]:
    labels: dict[str, frozenset[str] | None] = {}
    for part in cell.split(";"):
        if ":" not in part:  # `a`, `b`: names only
            labels.update((name, None) for name in _TICKED.findall(part))
            continue
        head, _, values = part.partition(":")
        names = _TICKED.findall(head)
        if names:
            listed = _TICKED.findall(values)
            labels[names[0]] = frozenset(listed) if listed and "as above" not in values else None
    return labels


@dataclass(frozen=True, slots=True)
class Exported:
    kind: str
    samples: list[tuple[str, dict[str, str], float]]


def scrape(server: ServerProcess) -> dict[str, Exported]:
    """Every metric family the node exports, by the name its samples carry (counters with _total)."""
    status, text = server.http_get("/metrics")
    assert status == 200
    families = list(text_string_to_metric_families(text))
    with_created = {f.name for f in families if f.type in ("counter", "histogram")}
    exported: dict[str, Exported] = {}
    for family in families:
        if family.name.endswith("_created") and family.name.removesuffix("_created") in with_created:
            continue  # a counter's or histogram's creation time, part of its family
        name = f"{family.name}_total" if family.type == "counter" else family.name
        samples = [(s.name, s.labels, s.value) for s in family.samples]
        exported[name] = Exported(kind=family.type, samples=samples)
    return exported


def value(exported: dict[str, Exported], name: str, **labels: str) -> float:
    return sum(
        v for sample, found, v in exported[name].samples if sample == name and labels.items() <= found.items()
    )


def exported_sample(exported: dict[str, Exported], family: str, sample: str) -> float:
    """One sample of a family by its own name (a histogram's ``_count``)."""
    return sum(v for name, _, v in exported[family].samples if name == sample)


def check_against_reference(exported: dict[str, Exported], reference: dict[str, Documented]) -> None:
    required = {name for name, doc in reference.items() if not doc.conditional}
    assert required <= exported.keys(), f"documented but not exported: {sorted(required - exported.keys())}"
    ours = {name for name in exported if name.startswith("hangtar_")}
    assert ours <= reference.keys(), f"exported but not documented: {sorted(ours - reference.keys())}"
    for name, doc in reference.items():
        if name not in exported:
            continue
        assert exported[name].kind == doc.kind, (name, exported[name].kind, doc.kind)
        for sample, labels, _ in exported[name].samples:
            if sample.endswith("_created"):
                continue
            names = set(labels) - {"le"}
            assert names <= doc.labels.keys(), f"{sample} has undocumented labels {names - doc.labels.keys()}"
            for label, allowed in doc.labels.items():
                if allowed is not None and label in labels:
                    assert labels[label] in allowed, f"{sample}: {label}={labels[label]!r} is not documented"


def test_the_reference_parses_into_every_area() -> None:
    reference = documented_metrics()
    assert len(reference) >= 55
    conditional = {name for name, doc in reference.items() if doc.conditional}
    assert conditional == {
        "hangtar_s3_requests_total",
        "hangtar_s3_request_seconds",
        "hangtar_s3_upload_failures_total",
        "hangtar_s3_uploads_waiting",
        "hangtar_s3_deletions_queued",
    }
    responses = reference["hangtar_sip_responses_total"].labels
    assert responses.keys() == {"method", "code"} and responses["code"] is None
    assert reference["hangtar_recordings_finished_total"].labels["status"] == frozenset(
        {"complete", "no_media", "one_way", "failed", "interrupted", "discarded"}
    )
    assert reference["process_cpu_seconds_total"].kind == "counter"


@pytest.fixture
def call_in_progress(server: ServerProcess, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A pjsua2 SRC placing a 6-second SIPREC call (caller 440 Hz, callee 1000 Hz) to the node."""
    process = subprocess.Popen(
        [
            sys.executable,
            str(PJSUA_SRC),
            "--target",
            f"sip:srs@127.0.0.1:{server.sip_port}",
            "--duration",
            "6",
            "--json-out",
            str(tmp_path / "pjsua.json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def test_every_documented_metric_is_exported_during_and_after_a_call(
    server: ServerProcess, call_in_progress: subprocess.Popen[str]
) -> None:
    reference = documented_metrics()
    # A request with a method no RFC registered: answered 405, counted as "other", never under its own name.
    probe = UdpProbe()
    try:
        probe.send(request("FROBNICATE", port=server.sip_port, local_port=probe.port), server.sip_port)
        answer = probe.receive()
    finally:
        probe.sock.close()
    assert answer is not None and status_of(answer) == 405

    deadline = time.monotonic() + 30
    during = scrape(server)
    while value(during, "hangtar_active_streams") < 2 or value(during, "hangtar_rtp_packets_total") < 100:
        assert call_in_progress.poll() is None, f"the SRC ended before its media was seen:\n{server.log()}"
        assert time.monotonic() < deadline, "no call with media in progress within 30 s"
        time.sleep(0.2)
        during = scrape(server)
    check_against_reference(during, reference)
    assert value(during, "hangtar_active_calls") == 1
    assert value(during, "hangtar_rtp_expected_total") >= value(during, "hangtar_rtp_packets_total") - 2
    assert value(during, "hangtar_sip_requests_total", method="INVITE") >= 1
    assert value(during, "hangtar_sip_requests_total", method="other") >= 1
    assert value(during, "hangtar_sip_responses_total", method="other", code="405") >= 1
    assert value(during, "hangtar_build_info") == 1
    assert value(during, "process_cpu_seconds_total") > 0
    assert value(during, "hangtar_max_calls") == 1000  # the default [recording] max_calls
    # The test server's self-signed certificate: valid for a while yet.
    assert value(during, "hangtar_tls_certificate_expiry_timestamp_seconds") > time.time() + 30 * 86400

    stdout, stderr = call_in_progress.communicate(timeout=60)
    assert call_in_progress.returncode == 0, f"pjsua2 SRC failed:\n{stdout}\n{stderr}"
    deadline = time.monotonic() + 30
    after = scrape(server)
    while value(after, "hangtar_recordings_finished_total", status="complete") < 1:
        assert time.monotonic() < deadline, f"the call's recording did not finish:\n{server.log()}"
        time.sleep(0.2)
        after = scrape(server)
    check_against_reference(after, reference)
    assert value(after, "hangtar_active_calls") == 0 and value(after, "hangtar_active_streams") == 0
    # 6 s of 20 ms packets on two streams, folded into the totals when the call ended
    assert value(after, "hangtar_rtp_packets_total") >= 2 * 290
    finalised = exported_sample(after, "hangtar_finalise_seconds", "hangtar_finalise_seconds_count")
    assert finalised == 1
    # both streams' jitter, on loopback under a millisecond or so
    assert exported_sample(after, "hangtar_stream_jitter_seconds", "hangtar_stream_jitter_seconds_count") == 2
    assert value(after, "hangtar_recorded_bytes_total") > 10_000  # 6 s of stereo FLAC, encrypted
    assert value(after, "hangtar_rtp_lost_total") == 0
