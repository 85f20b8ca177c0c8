"""The shipped Prometheus alert rules: valid for promtool, firing as their unit tests say, and on metrics the
server really exports (a renamed metric would otherwise silence an alert without anyone noticing)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .server import REPO, ServerProcess

RULES = REPO / "deploy" / "prometheus" / "alerts.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, cwd=RULES.parent)


def test_the_rules_pass_promtool_and_their_unit_tests() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def referenced_metrics(rules: Path) -> set[str]:
    expressions = re.findall(r"expr: \|?\n?((?:.+\n)+?)(?:\s+for:|\s+labels:)", rules.read_text())
    return {name for text in expressions for name in re.findall(r"\bhangtar_[a-z_]+", text)}


def test_every_metric_an_alert_uses_is_exported(server: ServerProcess) -> None:
    names = referenced_metrics(RULES)
    assert len(names) >= 10  # the parse found the expressions
    _, text = server.http_get("/metrics")
    typed = re.findall(r"^# TYPE (hangtar_\w+) (counter|gauge|histogram)$", text, re.MULTILINE)
    # A counter's family may be typed with or without _total; its samples always carry it.
    exported = {name for name, _ in typed} | {
        f"{name.removesuffix('_total')}_total" for name, kind in typed if kind == "counter"
    }
    assert names <= exported, sorted(names - exported)
