"""`make run` — the README's quick start — starts the server on the embedded database, makes a demo tenant and
admin on a fresh install, and says where it listens and how to log in."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

from .server import REPO, free_port, rtp_range
from .sip_probe import UdpProbe, request, status_of


def test_make_run_starts_the_server_and_prints_where_it_listens(data_dir: Path) -> None:
    sip_port, http_port = free_port(), free_port()
    low, high = rtp_range()
    args = (
        f"--data-dir {data_dir} --sip-host 127.0.0.1 --sip-port {sip_port} "
        f"--http-port {http_port} --rtp-ports {low}-{high} --tls-port {free_port()}"
    )
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"ARGS={args}"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.startswith("  data"):
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(300), "make run printed nothing useful:\n" + "".join(lines)
        output = "".join(lines)
        assert f"SIP   udp+tcp 127.0.0.1:{sip_port}" in output, output
        # No certificate configured: a self-signed pair is made under the data dir and its fingerprint shown.
        assert f"(self-signed certificate {data_dir}/tls/cert.pem)" in output, output
        assert "certificate SHA-256 " in output and (data_dir / "tls" / "key.pem").stat().st_mode & 0o077 == 0
        assert f"HTTP  http://127.0.0.1:{http_port}/healthz" in output, output
        assert "database: embedded" in output, output
        # A fresh install gets the demo tenant and its admin, whose one-time password is shown once.
        assert f"portal http://127.0.0.1:{http_port}/" in output, output
        assert "login admin@demo.example  one-time password " in output, output
        probe = UdpProbe()
        try:
            probe.send(request("OPTIONS", port=sip_port, local_port=probe.port), sip_port)
            assert status_of(probe.final_response()) == 200
        finally:
            probe.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        code = process.wait(60)
        reader.join(60)
        assert process.stdout is not None
        process.stdout.close()
    # make itself dies of the signal; the server, which got it too, drains and logs its clean stop.
    assert code in (0, -signal.SIGTERM, 2), code
    assert "siprec_server.server: stopped" in "".join(lines), "".join(lines)
