"""The shipped Prometheus alert rules: valid for promtool, firing as their unit tests say, and on metrics the
server really exports (a renamed metric would otherwise silence an alert without anyone noticing). Metrics that
docs/metrics.md marks conditional (the S3 store's) are exported only where that feature is configured."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from .server import REPO, ServerProcess
from .test_metrics_reference import documented_metrics

RULES = REPO / "deploy" / "prometheus" / "alerts.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, cwd=RULES.parent)


def test_the_rules_pass_promtool_and_their_unit_tests() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def referenced_metrics(rules: Path) -> set[str]:
    """The server's metrics an alert expression reads (its own and its process collector's)."""
    expressions = re.findall(r"expr: \|?\n?((?:.+\n)+?)(?:\s+for:|\s+labels:)", rules.read_text())
    return {name for text in expressions for name in re.findall(r"\b(?:hangtar|process)_[a-z0-9_]+", text)}


def test_every_metric_an_alert_uses_is_exported(server: ServerProcess) -> None:
    reference = documented_metrics()
    conditional = {name for name, doc in reference.items() if doc.conditional}
    conditional |= {f"{name}_bucket" for name in conditional}
    used = referenced_metrics(RULES)
    assert len(used) >= 20  # the parse found the expressions
    assert {"hangtar_s3_upload_failures_total", "process_cpu_seconds_total"} <= used
    _, text = server.http_get("/metrics")
    typed = re.findall(r"^# TYPE ((?:hangtar|process)_\w+) (counter|gauge|histogram)$", text, re.MULTILINE)
    # A counter's family may be typed with or without _total; its samples always carry it.
    exported = {name for name, _ in typed} | {
        f"{name.removesuffix('_total')}_total" for name, kind in typed if kind == "counter"
    }
    exported |= {f"{name}_bucket" for name, kind in typed if kind == "histogram"}
    assert used - conditional <= exported, sorted(used - conditional - exported)


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    rules = yaml.safe_load(RULES.read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((RULES.parent / "alerts_test.yml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    quiet = {
        case["alertname"] for test in tests for case in test["alert_rule_test"] if not case["exp_alerts"]
    }
    assert len(alerts) >= 25
    assert alerts <= fired, f"alerts no test fires: {sorted(alerts - fired)}"
    # and each is also seen not firing (before its condition or its `for:` holds); the certificates' tests show
    # a certificate far from expiry that does not fire beside the one that does
    certificates = {"HangtarCertificateExpiresSoon", "HangtarNodeCertificateExpiresSoon"}
    assert alerts - quiet <= certificates, sorted(alerts - quiet)
