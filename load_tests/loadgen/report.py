"""Writing a capacity run down: ``capacity.json`` (everything, machine-readable), ``capacity.md`` (a summary
row and a table per step, the exact command and the machine) and ``capacity.png`` (see :mod:`.plot`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from .figures import StepFigures
from .plot import plot_run
from .run_records import CapacityRun, StepReport

__all__ = ["markdown", "write_report"]

_SHOWN_FAILURES = 20


def write_report(run: CapacityRun, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "capacity.json", out / "capacity.md", out / "capacity.png"]
    paths[0].write_text(json.dumps(run.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(run), encoding="utf-8")
    plot_run(run, paths[2])
    return paths


def _num(value: float | None, digits: int = 1, unit: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown(run: CapacityRun) -> str:
    options = run.options
    lines = [
        "# Hangtár capacity run",
        "",
        f"**{'PASSED' if run.passed else 'FAILED'}** — started {run.started_at}, {run.duration:.0f} s in all.",
        "",
        "```sh",
        options.command,
        "```",
        "",
        "## Summary",
        "",
        _row(
            (
                "calls",
                "CPU % of one core",
                "CPU-s per call-hour",
                "peak RSS MB",
                "RSS per call KB",
                "loss %",
                "OPTIONS p50/p99/max ms",
                "loop lag max ms",
                "verified",
            )
        ),
        _row(["---:"] * 9),
    ]
    for step in run.steps:
        f = step.figures
        lines.append(
            _row(
                (
                    str(f.calls),
                    _num(f.cpu_percent),
                    _num(f.cpu_seconds_per_call_hour, 2),
                    _num(f.rss_peak_mb, 0),
                    _num(f.rss_per_call_kb, 0),
                    _num(f.loss_percent, 3),
                    f"{_num(f.options_p50_ms, 2)} / {_num(f.options_p99_ms, 2)} / {_num(f.options_max_ms, 2)}",
                    _num(f.loop_lag_max_ms, 1),
                    _verified(f),
                )
            )
        )
    lines += ["", *_setup(run), ""]
    for step in run.steps:
        lines += _step(step)
    lines += [
        "## Machine",
        "",
        _row(("fact", "value")),
        _row(("---", "---")),
        *(_row((key, str(value))) for key, value in run.machine.items()),
        "",
        "![CPU and loss against concurrent calls](capacity.png)",
        "",
    ]
    return "\n".join(lines)


def _verified(f: StepFigures) -> str:
    return "not verified" if f.verified is None else f"{f.verified} / {f.calls}"


def _setup(run: CapacityRun) -> list[str]:
    options = run.options
    server = run.server
    pinned = server.get("pinned_cpus")
    impairments = []
    for side, imp in (("caller", options.caller), ("callee", options.callee)):
        if imp.active or imp.ssrc_change:
            parts = [f"{name} {value:g}" for name, value in imp.to_json().items() if value]
            impairments.append(f"{side}: {', '.join(parts)}")
    stopped = ""
    if "argv" in server and server.get("exit_code") != 0:
        code = server.get("exit_code")
        stopped = " It did not exit after SIGTERM and was killed." if code is None else f" It exited {code}."
    return [
        "## Set-up",
        "",
        f"- Server: {'pinned to CPU ' + ','.join(map(str, pinned)) if pinned else 'not pinned'}"
        f"{'; ' + str(server.get('target')) if server.get('target') else ''}; "
        f"max_calls {server.get('max_calls', '–')}, RTP ports {server.get('rtp_ports', '–')}.{stopped}",
        f"- Calls: two RTP streams each ({options.codec.value}, 20 ms), one pure tone per leg; started at "
        f"{options.rate:g}/s; each sends {options.hold:g} s of RTP, then BYE.",
        f"- Impairments: {'; '.join(impairments) if impairments else 'none'}.",
        "- CPU % is of one core, the mean over the plateau (every call up); CPU-seconds per call-hour: the "
        "server's CPU time for the whole step over the hours of audio recorded. Loss: (sent − received by the "
        "server) / sent; packets dropped on purpose are never sent.",
        "- Event-loop lag and garbage-collector pauses are the server's histograms from the step's start to its "
        "last scrape with calls up. A server this run starts has `[gc] idle_reclaim` 1 s: its full collection of "
        "frozen objects comes right after each step, and is reported on its own.",
    ]


def _step(step: StepReport) -> list[str]:
    f = step.figures
    rows = [
        ("concurrent calls", str(f.calls)),
        (
            "answered / rejected / timed out / failed",
            f"{f.answered} / {f.rejected} / {f.timeouts} / {f.failed}",
        ),
        ("INVITE → 200 OK p50 / p99", f"{_num(f.setup_p50_ms, 1)} / {_num(f.setup_p99_ms, 1)} ms"),
        ("plateau (every call up)", _num(f.plateau_seconds, 1, " s")),
        (
            "server CPU, % of one core: plateau mean / peak",
            f"{_num(f.cpu_percent)} / {_num(f.cpu_percent_peak)}",
        ),
        (
            "server CPU-seconds / recorded call-hours",
            f"{_num(f.server_cpu_seconds, 2)} / {f.recorded_hours:.3f}",
        ),
        ("CPU-seconds per recorded call-hour", _num(f.cpu_seconds_per_call_hour, 2)),
        ("embedded PostgreSQL CPU-seconds", _num(f.postgres_cpu_seconds, 2)),
        ("generator CPU, % of one core (plateau)", _num(f.generator_cpu_percent)),
        (
            "generator ticks > 20 ms late / latest",
            f"{f.generator_late_ticks} / {_num(f.generator_max_lateness_ms, 1, ' ms')}",
        ),
        ("peak RSS / RSS per call", f"{_num(f.rss_peak_mb, 0, ' MB')} / {_num(f.rss_per_call_kb, 0, ' KB')}"),
        ("RTP sent / received (server) / received (catalogue)", _counts(f)),
        (
            "packet loss: server counters / catalogue",
            f"{_num(f.loss_percent, 3)} % / {_num(f.loss_percent_catalogue, 3)} %",
        ),
        (
            "dropped on purpose / reported lost (RFC 3550)",
            f"{f.rtp_dropped_on_purpose} / {f.rtp_lost_reported}",
        ),
        ("late / duplicates", f"{f.rtp_late} / {f.rtp_duplicated}"),
        ("RTCP sent / received", f"{f.rtcp_sent} / {f.rtcp_received}"),
        (
            "OPTIONS p50 / p99 / max (lost of sent)",
            f"{_num(f.options_p50_ms, 2)} / {_num(f.options_p99_ms, 2)} / {_num(f.options_max_ms, 2)} ms "
            f"({f.options_lost} of {f.options_probes})",
        ),
        (
            "event-loop lag max: sampled / histogram bound",
            f"{_num(f.loop_lag_max_ms, 1, ' ms')} / ≤ {_num(f.loop_lag_bucket_ms, 0, ' ms')}",
        ),
        ("garbage-collector pauses, histogram bound", f"≤ {_num(f.gc_pause_bucket_ms, 0, ' ms')}"),
        (
            "after the step, no call up: reclaim pause (histogram bound) / unreachable objects found (per call)",
            f"≤ {_num(f.gc_reclaim_bucket_ms, 0, ' ms')} / {_reclaimed(f)}",
        ),
        ("audio writes queued, most seen (one a call a second)", _num(f.write_backlog_max, 0)),
        ("recordings verified / total", _verified(f)),
    ]
    lines = [
        f"## Step {step.number}: {f.calls} calls",
        "",
        f"Started {step.started_at}; {step.window[1] - step.window[0]:.1f} s from the first INVITE to the last "
        "call ended.",
        "",
        _row(("figure", "value")),
        _row(("---", "---:")),
        *(_row(row) for row in rows),
        "",
    ]
    problems = [(v.call_id, v.reference or "no recording", "; ".join(v.problems)) for v in step.failures] or [
        (c.call_id, "not answered", f"{c.outcome} {c.status or ''} {c.reason}".strip())
        for c in step.calls
        if not c.answered
    ]
    if problems:
        lines += [f"Calls not verified ({len(problems)}):", ""]
        lines += [f"- `{call_id}` ({what}): {why}" for call_id, what, why in problems[:_SHOWN_FAILURES]]
        if len(problems) > _SHOWN_FAILURES:
            lines.append(f"- … and {len(problems) - _SHOWN_FAILURES} more (all in capacity.json)")
        lines.append("")
    return lines


def _counts(f: StepFigures) -> str:
    received = "–" if f.rtp_received is None else str(f.rtp_received)
    catalogue = "–" if f.rtp_received_catalogue is None else str(f.rtp_received_catalogue)
    return f"{f.rtp_sent} / {received} / {catalogue}"


def _reclaimed(f: StepFigures) -> str:
    if f.gc_reclaimed_objects is None:
        return "–"
    return f"{f.gc_reclaimed_objects} ({f.gc_reclaimed_objects / max(1, f.calls):.2f})"
