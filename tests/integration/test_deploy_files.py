"""The deployment files in deploy/: each checked by the tool that runs it (promtool, systemd-analyze, kamailio),
the Grafana dashboard's queries against the metrics a node exports, the examples' configuration against the
server's own configuration loader, and Kamailio's dispatcher in front of a real node placing a real call."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from siprec_server.config import load_config
from tests.peers.kamailio import KAMAILIO_CFG, kamailio_args, running_kamailio

from .server import REPO, ServerProcess, free_port
from .sip_probe import UdpProbe, request, status_of
from .test_metrics_reference import documented_metrics

DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "hangtar-capacity.json"
UNIT = DEPLOY / "systemd" / "hangtar.service"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PJSUA_SRC = REPO / "tests" / "peers" / "pjsua_src.py"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=cwd)


# -- Prometheus ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.compose.yml"])
def test_the_prometheus_configurations_pass_promtool(config: str) -> None:
    checked = run("promtool", "check", "config", config, cwd=DEPLOY / "prometheus")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = sum(len(group["rules"]) for group in yaml.safe_load(ALERTS.read_text())["groups"])
    assert f"SUCCESS: {rules} rules found" in checked.stdout + checked.stderr  # it loaded alerts.yml too


def test_the_scrape_jobs_are_the_ones_the_alerts_name() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"hangtar", "node", "hangtar-tls"} <= jobs.keys()
    assert jobs["hangtar-tls"]["params"]["module"] == ["sip_tls"]
    blackbox = yaml.safe_load((DEPLOY / "prometheus" / "blackbox.yml").read_text())
    assert blackbox["modules"]["sip_tls"]["tcp"]["tls"] is True
    alerts = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    assert set(re.findall(r'job="([\w-]+)"', alerts)) <= jobs.keys()


# -- the Grafana dashboard ----------------------------------------------------------------------------------------
_CLAUSES = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
}


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads: what is left once strings, label matchers, ranges,
    grouping clauses, functions, keywords and numbers are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _CLAUSES.sub(" ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)\s*(\()?", text):
        name, call = match.groups()
        if call is None and name not in _KEYWORDS:
            names.add(name)
    return names


def test_the_name_parser_finds_metrics_and_nothing_else() -> None:
    expression = (
        'sum by (instance) (rate(hangtar_rtp_lost_total{job="hangtar", instance=~"$instance"}[5m])) '
        "/ clamp_min(sum by (instance) (rate(hangtar_rtp_expected_total[5m])), 1) > 0.01 and on (instance) up"
        ' or histogram_quantile(0.99, sum by (le) (rate(foo_bucket{a="b(c)"}[1h]))) * 1e6 offset 5m'
    )
    assert metric_names(expression) == {
        "hangtar_rtp_lost_total",
        "hangtar_rtp_expected_total",
        "up",
        "foo_bucket",
    }


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def expressions(dashboard: dict[str, Any]) -> list[str]:
    found = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":  # label_values(SELECTOR, LABEL): the selector is PromQL
            selector = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["query"]["query"])
            assert selector is not None, variable["query"]
            found.append(selector.group(1))
    return found


def as_promql(expression: str) -> str:
    """Grafana's variables replaced by values Prometheus would see."""
    return expression.replace("$__rate_interval", "5m").replace("$instance", ".*")


def test_every_panel_queries_prometheus(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "hangtar-capacity" and dashboard["title"]
    panels = dashboard["panels"]
    assert len(panels) >= 12
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]
            assert target["datasource"] == panel["datasource"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )


def test_the_dashboard_reads_only_metrics_a_node_exports(dashboard: dict[str, Any]) -> None:
    exported = {name for name, doc in documented_metrics().items() if not doc.conditional}
    exported |= {f"{name}_bucket" for name in exported}
    used = {name for expression in expressions(dashboard) for name in metric_names(as_promql(expression))}
    unknown = {name for name in used - exported if not name.startswith("process_") and name != "up"}
    assert not unknown, sorted(unknown)
    # what capacity planning needs: calls against CPU, memory and loss, recordings, backlogs
    assert {
        "hangtar_active_calls",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "hangtar_rtp_lost_total",
        "hangtar_rtp_expected_total",
        "hangtar_recordings_finished_total",
        "hangtar_delivery_backlog",
        "hangtar_transcode_backlog",
    } <= used


def test_every_dashboard_query_parses_for_promtool(dashboard: dict[str, Any], tmp_path: Path) -> None:
    """Each query as a recording rule: `promtool check rules` parses its PromQL."""
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": as_promql(expression)}
                    for i, expression in enumerate(
                        e for e in expressions(dashboard) if "label_values" not in e
                    )
                ],
            }
        ]
    }
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    checked = run("promtool", "check", "rules", "dashboard.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = {
        "groups": [{"name": "x", "rules": [{"record": "x:y", "expr": "rate(hangtar_active_calls[5m]"}]}]
    }
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    assert run("promtool", "check", "rules", "broken.yml", cwd=tmp_path).returncode != 0


# -- systemd ------------------------------------------------------------------------------------------------------
def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    # The unit names /opt/hangtar/bin/hangtar, which a test machine does not have: verify a copy naming this
    # checkout's entry point instead (systemd-analyze checks that the command exists).
    entry = Path(sys.executable).with_name("hangtar")
    assert entry.exists()
    copy = tmp_path / "hangtar.service"
    copy.write_text(UNIT.read_text().replace("/opt/hangtar/bin/hangtar", str(entry)))
    verified = run("systemd-analyze", "verify", str(copy))
    # systemd-analyze exits 0 on directives it cannot parse; it warns about them on stderr
    assert verified.returncode == 0 and verified.stderr.strip() == "", verified.stdout + verified.stderr


def test_the_unit_sandboxes_the_node_and_lets_calls_finish() -> None:
    settings = unit_settings()
    assert settings["ProtectSystem"] == ["strict"]
    assert settings["ReadWritePaths"] == ["/var/lib/hangtar"]
    for flag in ("NoNewPrivileges", "PrivateTmp", "ProtectHome"):
        assert settings[flag] == ["yes"], flag
    assert settings["CapabilityBoundingSet"] == [""]
    assert set(settings["RestrictAddressFamilies"][0].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert int(settings["LimitNOFILE"][0]) >= 65536
    assert settings["Restart"] == ["on-failure"] and settings["KillSignal"] == ["SIGTERM"]
    environment = dict(value.split("=", 1) for value in settings["Environment"])
    config = load_config(environ=environment | {"HANGTAR_CONFIG": ""})
    stop = settings["TimeoutStopSec"][0]
    assert stop.endswith("min")
    assert int(stop.removesuffix("min")) * 60 >= config.shutdown_grace + 60  # a minute to finalise
    assert str(config.data_dir) == "/var/lib/hangtar"


# -- Kamailio -----------------------------------------------------------------------------------------------------
def test_the_kamailio_configuration_passes_its_syntax_check(tmp_path: Path) -> None:
    assert shutil.which("kamailio"), "kamailio (Debian package kamailio) is required"
    for dispatcher_list in (
        DEPLOY / "kamailio" / "dispatcher.list",
        DEPLOY / "kamailio" / "dispatcher.compose.list",
    ):
        checked = run(*kamailio_args(dispatcher_list, tmp_path, "-c"))
        assert checked.returncode == 0 and "config file ok" in checked.stdout + checked.stderr, checked.stderr
    broken = tmp_path / "broken.cfg"
    broken.write_text(
        KAMAILIO_CFG.read_text().replace("ds_select_dst(RECORDERS, DS_ALG)", "ds_select_dst(RECORDERS")
    )
    assert run("kamailio", "-c", "-f", str(broken), "-Y", str(tmp_path)).returncode != 0


def test_the_dispatcher_lists_name_set_1() -> None:
    for path in (DEPLOY / "kamailio" / "dispatcher.list", DEPLOY / "kamailio" / "dispatcher.compose.list"):
        entries = [
            line.split() for line in path.read_text().splitlines() if line and not line.startswith("#")
        ]
        assert len(entries) >= 2
        assert all(entry[0] == "1" and entry[1].startswith("sip:") for entry in entries)


@pytest.fixture
def kamailio(server: ServerProcess, tmp_path: Path) -> Iterator[int]:
    """Kamailio with kamailio.cfg on a free port, dispatching to the real node and to a node that is down."""
    port = free_port()
    nodes = [("down", free_port()), ("rec1", server.sip_port)]  # nothing listens on the first
    with running_kamailio(nodes, port, tmp_path):
        yield port


def options_status(port: int) -> int | None:
    probe = UdpProbe()
    try:
        probe.send(request("OPTIONS", port=port, local_port=probe.port), port)
        answer = probe.receive(timeout=5.0)
    finally:
        probe.sock.close()
    return None if answer is None else status_of(answer)


def test_kamailio_dispatches_a_recording_call_to_the_node_that_is_up(
    server: ServerProcess, kamailio: int, tmp_path: Path
) -> None:
    # An SBC's OPTIONS keep-alive through Kamailio: answered by a node once the dispatcher runs.
    deadline = time.monotonic() + 20
    while (status := options_status(kamailio)) != 200:
        assert time.monotonic() < deadline, f"no 200 to OPTIONS through Kamailio (last: {status})"
        time.sleep(0.2)  # the next probe, after a 503 (no node active yet) or a timeout
    report_file = tmp_path / "pjsua.json"
    placed = subprocess.run(
        [
            sys.executable,
            str(PJSUA_SRC),
            "--target",
            f"sip:srs@127.0.0.1:{kamailio}",
            "--duration",
            "3",
            "--json-out",
            str(report_file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = (tmp_path / "kamailio.log").read_text()
    assert placed.returncode == 0, f"{placed.stdout}\n{placed.stderr}\nkamailio:\n{log[-3000:]}"
    report = json.loads(report_file.read_text())
    assert report["status"] == 200
    # The BYE found the node through the Route set Kamailio recorded: the recording finished at hang-up.
    row = server.wait_for_recording(
        lambda r: r["call_id"] == report["call_id"] and r["status"] != "recording"
    )
    assert row["status"] == "complete", row
    assert all(stream["packets"] >= 140 for stream in row["streams"]), row["streams"]


# -- the examples -------------------------------------------------------------------------------------------------
def test_the_compose_example_has_its_services_and_files() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services.keys() == {
        "postgres",
        "seaweedfs",
        "hangtar1",
        "hangtar2",
        "kamailio",
        "prometheus",
        "grafana",
    }
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).exists()
    assert (DEPLOY / "docker" / "Dockerfile").exists()
    names = set()
    for node in ("hangtar1", "hangtar2"):
        config = load_config(environ=services[node]["environment"])  # the variable names are real
        names.add(config.node_name)
        assert config.database_dsn.startswith("postgresql://") and "@postgres:5432/" in config.database_dsn
        assert config.key_file == "/var/lib/hangtar-keys/keys.json"
        address = services[node]["networks"]["hangtar"]["ipv4_address"]
        assert config.sip_advertised_host == address
        assert f"sip:{address}:5060" in (DEPLOY / "kamailio" / "dispatcher.compose.list").read_text()
    assert names == {"rec1", "rec2"}


def test_the_kubernetes_example_is_a_statefulset_on_the_host_network(tmp_path: Path) -> None:
    documents = [d for d in yaml.safe_load_all((DEPLOY / "k8s" / "hangtar.yaml").read_text()) if d]
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in documents}
    service = by_kind["Service", "hangtar"]
    assert service["spec"]["clusterIP"] == "None"
    statefulset = by_kind["StatefulSet", "rec"]
    assert statefulset["spec"]["serviceName"] == "hangtar"
    pod = statefulset["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    toml = tmp_path / "hangtar.toml"
    toml.write_text(by_kind["ConfigMap", "hangtar-config"]["data"]["hangtar.toml"])
    config = load_config(config_file=toml, environ={})  # the configuration map is a valid configuration
    assert pod["terminationGracePeriodSeconds"] > config.shutdown_grace
    assert config.http_host == "0.0.0.0" and config.max_calls == 500
