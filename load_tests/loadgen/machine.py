"""Facts about the machine a capacity run ran on, for the report."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["machine_facts"]


def machine_facts(repo: Path) -> dict[str, Any]:
    memory_kb = _memory_kb()
    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "cpus_available": sorted(os.sched_getaffinity(0)),
        "memory_gb": round(memory_kb / 2**20, 1) if memory_kb else None,
        "kernel": platform.release(),
        "os": _os_name(),
        "python": sys.version.split()[0],
        "hangtar": _version(),
        "commit": _commit(repo),
        "open_files_limit": _open_files_limit(),
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_kb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _os_name() -> str | None:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return None


def _version() -> str | None:
    try:
        return metadata.version("hangtar")
    except metadata.PackageNotFoundError:
        return None


def _commit(repo: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _open_files_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
