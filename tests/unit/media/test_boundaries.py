"""The media package's import rules: no upward imports, and sans-I/O cores free of I/O modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MEDIA = Path(__file__).resolve().parents[3] / "media"
CORES = [
    "rtp",
    "g711",
    "codecs",
    "stats",
    "sequence",
    "samplebuffer",
    "timeline",
    "recorder",
    "ports",
    "probation",
    "pauses",
    "decrypt",
    "dtmf",
    "telephone_event",
    "goertzel",
    "dtmf_inband",
    "rtcp",
    "clock_sync",
    "quality",
    "placement",
]
IO_MODULES = {"asyncio", "socket", "selectors", "time", "threading", "soundfile", "os", "datetime"}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(MEDIA.glob("*.py")), ids=lambda p: p.name)
def test_media_never_imports_the_server_or_storage(path: Path) -> None:
    for name in imported(path):
        assert name.split(".")[0] not in {"siprec_server", "storage"}, f"{path.name} imports {name}"


@pytest.mark.parametrize("module", CORES)
def test_cores_do_no_io(module: str) -> None:
    for name in imported(MEDIA / f"{module}.py"):
        assert name.split(".")[0] not in IO_MODULES, f"{module} imports {name}"
