"""The SIP core does no I/O and reads no clock: its modules import only pure standard-library helpers."""

import ast
from pathlib import Path

import siprec_server.sip

PURE_STDLIB = {
    "__future__",
    "collections",
    "contextlib",
    "dataclasses",
    "enum",
    "heapq",
    "ipaddress",
    "itertools",
    "re",
    "secrets",
    "typing",
}


def test_sip_core_imports_nothing_that_does_io() -> None:
    package = Path(siprec_server.sip.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert len(modules) > 10
    for module in modules:
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in PURE_STDLIB, f"{module.name} imports {name}"


def test_public_surface_is_explicit() -> None:
    exported = set(siprec_server.sip.__all__)
    assert {"SipEndpoint", "parse_message", "make_response", "StreamFramer", "Headers", "Address"} <= exported
    assert all(hasattr(siprec_server.sip, name) for name in exported)
