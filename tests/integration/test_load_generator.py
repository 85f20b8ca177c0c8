"""The capacity command end to end: a fresh server, 60 SIPREC calls whose RTP is lost, jittered, duplicated,
re-sourced and delayed on the way, and every recording found and checked by ear (FFT) afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CALLS = 60
OPTIONS_BOUND_MS = 500.0  # a keep-alive answered slower than this would make an SBC mark the SRS down


@pytest.mark.integration
@pytest.mark.serial
def test_capacity_run_records_and_verifies_every_impaired_call(tmp_path: Path) -> None:
    out = tmp_path / "capacity"
    command = [
        sys.executable,
        "-m",
        "load_tests.capacity",
        "--calls",
        str(CALLS),
        "--hold",
        "8",
        "--loss",
        "1",
        "--jitter",
        "30",
        "--duplicate",
        "1",
        "--ssrc-change",
        "50",
        "--callee-delay",
        "200",
        "--no-pin",
        "--out",
        str(out),
    ]
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=180)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, f"capacity run failed ({done.returncode}):\n{done.stderr[-8000:]}"

    report = json.loads((out / "capacity.json").read_text(encoding="utf-8"))
    assert report["passed"] is True
    [step] = report["steps"]
    assert step["calls"] == CALLS
    assert step["answered"] == CALLS
    assert step["verified"] == CALLS, step["failures"]
    assert step["rejected"] == 0 and step["timeouts"] == 0 and step["failed"] == 0
    # The impairments really happened, and the server saw them as such.
    assert step["rtp_dropped_on_purpose"] > 0
    assert step["rtp_lost_reported"] >= step["rtp_dropped_on_purpose"]
    assert (
        step["rtp_duplicated_on_purpose"] > 0 and step["rtp_duplicated"] >= step["rtp_duplicated_on_purpose"]
    )
    assert 0 < step["legs_with_ssrc_change"] < 2 * CALLS
    # Everything sent arrived: loopback loses nothing unless the server falls behind.
    assert step["rtp_received"] == step["rtp_sent"] == step["rtp_received_catalogue"]
    assert step["rtcp_sent"] > 0 and step["rtcp_received"] == step["rtcp_sent"]
    assert step["options_probes"] > 0 and step["options_lost"] == 0
    assert step["options_max_ms"] < OPTIONS_BOUND_MS
    assert step["cpu_percent"] > 0 and step["cpu_seconds_per_call_hour"] > 0
    # The calls' objects were frozen out of the full collections and went by reference counting when the
    # calls ended: the reclaim once the server was idle found next to nothing per call (67 before the media
    # path was made free of reference cycles).
    assert step["gc_reclaimed_objects"] is not None, "the server made no idle reclaim after the calls"
    assert step["gc_reclaimed_objects"] / CALLS < 10
    assert step["gc_pause_bucket_ms"] is not None and step["gc_pause_bucket_ms"] <= 50

    markdown = (out / "capacity.md").read_text(encoding="utf-8")
    assert "**PASSED**" in markdown
    assert f"| {CALLS} / {CALLS} |" in markdown
    assert "--callee-delay 200" in markdown
    assert (out / "capacity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert elapsed < 90, f"the capacity run took {elapsed:.0f} s"
