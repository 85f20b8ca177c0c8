"""Kamailio (Debian ``kamailio``) running the shipped ``deploy/kamailio/kamailio.cfg`` in front of test nodes.

The configuration is used as an operator runs it; only what a test must choose comes from ``-A`` defines and
``-l``: the dispatcher list, the control socket, a probe every second and a shorter INVITE timeout, and a free
loopback port.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["KAMAILIO_CFG", "kamailio_args", "running_kamailio"]

KAMAILIO_CFG = Path(__file__).resolve().parents[2] / "deploy" / "kamailio" / "kamailio.cfg"


def kamailio_args(dispatcher_list: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        "kamailio",
        "-f",
        str(KAMAILIO_CFG),
        "-Y",
        str(run_dir),
        "-A",
        f'DISPATCHER_LIST="{dispatcher_list}"',
        "-A",
        f'CTL_SOCKET="unix:{run_dir}/ctl"',
        *extra,
    ]


@contextlib.contextmanager
def running_kamailio(nodes: Sequence[tuple[str, int]], port: int, work_dir: Path) -> Iterator[Path]:
    """Kamailio on ``127.0.0.1:port`` (UDP and TCP) dispatching to ``(name, SIP port)`` nodes on loopback, each
    probed with OPTIONS every second. Yields its log file."""
    work_dir.mkdir(parents=True, exist_ok=True)
    dispatcher_list = work_dir / "dispatcher.list"
    dispatcher_list.write_text(
        "".join(f"1 sip:127.0.0.1:{sip};transport=udp 0 0 name={name}\n" for name, sip in nodes)
    )
    run_dir = work_dir / "run"
    run_dir.mkdir(exist_ok=True)
    log_path = work_dir / "kamailio.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            kamailio_args(
                dispatcher_list,
                run_dir,
                "-DD",
                "-E",
                "-l",
                f"udp:127.0.0.1:{port}",
                "-l",
                f"tcp:127.0.0.1:{port}",
                "-A",
                "PING_INTERVAL=1",
                "-A",
                "INVITE_TIMEOUT=1000",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield log_path
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
