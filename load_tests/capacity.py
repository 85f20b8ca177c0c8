"""The capacity run in one command: start a fresh Hangtár, drive each step of concurrent SIPREC calls with real
RTP through it, verify every recording, and write the report.

    python -m load_tests.capacity --calls 250,500,1000 --hold 60
    python -m load_tests.capacity --calls 60 --hold 8 --loss 1 --jitter 30 --duplicate 1 --ssrc-change 50 \\
        --callee-delay 200 --no-pin --out /tmp/capacity
    python -m load_tests.capacity --calls 100 --hold 30 --target 192.0.2.10:5060 --http 192.0.2.10:8080

The report goes to ``--out`` (default ``docs/capacity/``): ``capacity.json``, ``capacity.md``,
``capacity.png``. Exit code 0 when every call of every step was verified (with ``--target`` and no ``--dsn``:
answered and ended cleanly), 1 when not, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from load_tests.loadgen import CapacityOptions, Codec, Impairments, run_capacity, write_report

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "capacity"


def _steps(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of call counts: {text!r}") from exc
    if not steps or min(steps) < 1:
        raise argparse.ArgumentTypeError("each step needs at least one call")
    return steps


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, not {text!r}")
    return host, int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m load_tests.capacity", description="SIPREC capacity run against Hangtár"
    )
    load = parser.add_argument_group("load")
    load.add_argument("--calls", type=_steps, default=(250, 500, 1000), help="steps, e.g. 250,500,1000")
    load.add_argument("--hold", type=float, default=60.0, help="seconds of RTP per call (default 60)")
    load.add_argument("--rate", type=float, default=50.0, help="calls started per second (default 50)")
    load.add_argument("--codec", choices=[c.value for c in Codec], default=Codec.PCMU.value)
    load.add_argument("--processes", type=int, help="generator processes (default: one per generator CPU)")
    load.add_argument("--seed", type=int, default=1, help="seed of the impairments and identifiers")
    load.add_argument("--answer-timeout", type=float, default=32.0, help="seconds to wait for a final answer")
    impair = parser.add_argument_group("impairments (both legs unless named)")
    impair.add_argument("--loss", type=float, default=0.0, help="%% of packets dropped")
    impair.add_argument("--jitter", type=float, default=0.0, help="uniform extra delay 0..MS per packet")
    impair.add_argument("--reorder", type=float, default=0.0, help="%% of packets sent after their successor")
    impair.add_argument("--duplicate", type=float, default=0.0, help="%% of packets sent twice")
    impair.add_argument("--ssrc-change", type=float, default=0.0, help="%% of legs that change SSRC mid-call")
    impair.add_argument(
        "--caller-delay", type=float, default=0.0, help="extra one-way delay of the caller leg, ms"
    )
    impair.add_argument(
        "--callee-delay", type=float, default=0.0, help="extra one-way delay of the callee leg, ms"
    )
    server = parser.add_argument_group("server")
    server.add_argument("--no-pin", action="store_true", help="do not pin the server to CPU 0")
    server.add_argument("--server-args", default="", help="extra `hangtar serve` arguments, shell-quoted")
    server.add_argument("--keep-data", action="store_true", help="keep the server's data directory and log")
    server.add_argument("--target", type=_address, help="drive a running server at HOST:PORT instead")
    server.add_argument("--http", type=_address, help="with --target: its HTTP HOST:PORT, for /metrics")
    server.add_argument("--dsn", help="with --target: its catalogue DSN, to verify the recordings")
    server.add_argument(
        "--key-file",
        help="with --target and --dsn: its key file ([storage] key_file), to decrypt the recordings",
    )
    server.add_argument("--server-pid", type=int, help="with --target: its process id, for CPU and memory")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="report directory (default docs/capacity)"
    )
    return parser


def options_from(args: argparse.Namespace, argv: Sequence[str]) -> CapacityOptions:
    shared = {
        "loss": args.loss,
        "jitter_ms": args.jitter,
        "reorder": args.reorder,
        "duplicate": args.duplicate,
        "ssrc_change": args.ssrc_change,
    }
    return CapacityOptions(
        steps=args.calls,
        hold=args.hold,
        rate=args.rate,
        codec=Codec(args.codec),
        caller=Impairments(**shared, delay_ms=args.caller_delay),
        callee=Impairments(**shared, delay_ms=args.callee_delay),
        processes=args.processes,
        pin=not args.no_pin,
        server_args=tuple(shlex.split(args.server_args)),
        target=args.target,
        http=args.http,
        dsn=args.dsn,
        server_pid=args.server_pid,
        seed=args.seed,
        answer_timeout=args.answer_timeout,
        keep_data=args.keep_data,
        key_file=args.key_file,
        command=shlex.join(["python", "-m", "load_tests.capacity", *argv]),
    )


def _log(line: str) -> None:
    print(f"capacity: {line}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        options = options_from(args, argv)
    except ValueError as exc:
        parser.error(str(exc))
    if args.hold <= 0 or args.rate <= 0 or (args.processes is not None and args.processes < 1):
        parser.error("--hold, --rate and --processes must be positive")
    run = asyncio.run(run_capacity(options, _log))
    for path in write_report(run, args.out):
        _log(f"wrote {path}")
    _log("PASSED" if run.passed else "FAILED")
    return EXIT_OK if run.passed else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
