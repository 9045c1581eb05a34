"""Static checks of the container stack: docker-compose.yml, Dockerfile, Prometheus, Grafana.

No Docker engine (and no Compose CLI) is needed: the files are parsed and checked as YAML/JSON.
The compose file was also validated with ``docker compose config -q`` (Compose v2.32) when it was
written; that CLI is not on CI machines, so it is not part of the suite.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.paths import REPO
from tests.unit.ops.dashboard import DOCUMENTED_METRICS

ROOT = REPO
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_FILE = ROOT / "ops" / "prometheus" / "prometheus.yml"
GRAFANA_DIR = ROOT / "ops" / "grafana"
DATASOURCE_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDER_FILE = GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "crm-scoring.json"

SERVICES = frozenset({"kafka", "redis", "worker", "learner", "prometheus", "grafana"})

#: PromQL functions, aggregations and keywords the dashboard may use; any other bare
#: identifier in an expression is taken to be a metric name.
PROMQL_WORDS = frozenset(
    {
        "sum",
        "max",
        "min",
        "avg",
        "count",
        "topk",
        "bottomk",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "offset",
        "rate",
        "irate",
        "increase",
        "delta",
        "deriv",
        "histogram_quantile",
        "sort",
        "sort_desc",
        "clamp_min",
        "clamp_max",
        "abs",
        "vector",
        "scalar",
        "time",
        "label_values",
        "max_over_time",
        "min_over_time",
        "avg_over_time",
    }
)

_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_LABEL_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b")


def _load_yaml(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose.get("services")
    assert isinstance(found, dict)
    return found


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    with DASHBOARD_FILE.open(encoding="utf-8") as handle:
        data = json.load(handle)
    assert isinstance(data, dict)
    return data


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whichever of the two Compose syntaxes it uses."""
    raw = service.get("environment", {})
    if isinstance(raw, list):
        return dict(str(item).split("=", 1) for item in raw)
    assert isinstance(raw, dict)
    return {str(key): str(value) for key, value in raw.items()}


def _published_ports(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(host_ip, host_port, container_port)`` for every published port of a service."""
    result: list[tuple[str, str, str]] = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            result.append(
                (
                    str(entry.get("host_ip", "")),
                    str(entry.get("published", "")),
                    str(entry["target"]),
                )
            )
            continue
        spec = str(entry).split("/", 1)[0]
        parts = spec.split(":")
        if len(parts) == 3:
            result.append((parts[0], parts[1], parts[2]))
        elif len(parts) == 2:
            result.append(("", parts[0], parts[1]))
        else:
            result.append(("", "", parts[0]))
    return result


def _healthcheck_command(service: dict[str, Any]) -> str:
    check = service.get("healthcheck")
    assert isinstance(check, dict), "service has no healthcheck"
    assert check.get("disable") is not True
    test = check.get("test")
    if isinstance(test, list):
        assert test[0] in ("CMD", "CMD-SHELL"), test
        return " ".join(str(part) for part in test[1:])
    assert isinstance(test, str)
    return test


def _walk_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All panels, including those nested in collapsed rows."""
    result: list[dict[str, Any]] = []
    for panel in panels:
        result.append(panel)
        result.extend(_walk_panels(panel.get("panels", [])))
    return result


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label names, functions, numbers removed)."""
    text = _STRING.sub(" ", expr)
    text = _LABEL_MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\$\w+", " ", text)
    text = _NUMBER.sub(" ", text)
    names = set(_IDENTIFIER.findall(text)) - PROMQL_WORDS
    # label_values(metric, label): the second argument is a label, not a metric.
    for match in re.finditer(r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,\s*(\w+)\s*\)", expr):
        names.discard(match.group(2))
    return names


# --------------------------------------------------------------------------- docker compose


def test_metric_name_extraction() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le) (rate(crm_event_to_score_seconds_bucket"
        '{instance=~"$i", topic="crm.purchase"}[$__rate_interval])))'
    )
    assert metric_names(expr) == {"crm_event_to_score_seconds_bucket"}
    assert metric_names("sum by (topic, partition) (crm_consumer_lag) / up") == {
        "crm_consumer_lag",
        "up",
    }
    assert metric_names("label_values(crm_events_total, instance)") == {"crm_events_total"}


def test_the_six_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= SERVICES


def test_every_published_port_is_bound_to_loopback(services: dict[str, dict[str, Any]]) -> None:
    published = {name: _published_ports(service) for name, service in services.items()}
    for name, ports in published.items():
        for host_ip, _, _ in ports:
            assert host_ip == "127.0.0.1", f"{name} publishes a port on {host_ip or 'all'}"
    host_ports = {name: {host for _, host, _ in ports} for name, ports in published.items()}
    assert host_ports["kafka"] == {"9092"}
    assert host_ports["redis"] == {"6379"}
    assert host_ports["worker"] == {"6066"}
    assert host_ports["learner"] == {"6067"}
    assert host_ports["prometheus"] == {"9090"}
    assert host_ports["grafana"] == {"3000"}
    for service in services.values():
        assert service.get("network_mode") != "host"


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image")
        if image is None:
            assert "build" in service, f"{name} has neither image nor build"
            continue
        if "build" in service:
            continue  # the name given to a locally built image
        repo, sep, tag = str(image).rpartition(":")
        assert sep, f"{name}: image {image!r} has no tag"
        assert "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} is not pinned"
        assert re.match(r"v?\d+(\.\d+)*", tag), f"{name}: tag {tag!r} is not a version"
        assert repo
    assert services["kafka"]["image"] == "apache/kafka:3.9.2"
    assert str(services["redis"]["image"]).startswith("redis:7")
    assert str(services["prometheus"]["image"]).startswith("prom/prometheus:")
    assert str(services["grafana"]["image"]).startswith("grafana/grafana:")


def test_kafka_is_single_node_kraft(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    env = _environment(kafka)
    roles = {role.strip() for role in env["KAFKA_PROCESS_ROLES"].split(",")}
    assert roles == {"broker", "controller"}
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    node_id = env["KAFKA_NODE_ID"]
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert len(voters) == 1
    assert voters[0].split("@", 1)[0] == node_id
    controller_names = set(env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(","))

    listeners = dict(item.split("://", 1) for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://", 1) for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    protocols = dict(
        item.split(":", 1) for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert controller_names <= set(listeners)
    assert set(listeners) <= set(protocols)
    assert not controller_names & set(advertised), "controller listener must not be advertised"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised

    # In-network clients reach kafka:9092; host clients reach the published 127.0.0.1:9092.
    by_address = {address: name for name, address in advertised.items()}
    assert "kafka:9092" in by_address
    assert "127.0.0.1:9092" in by_address
    internal_port = listeners[by_address["kafka:9092"]].rsplit(":", 1)[1]
    host_listener_port = listeners[by_address["127.0.0.1:9092"]].rsplit(":", 1)[1]
    assert internal_port == "9092"
    assert ("127.0.0.1", "9092", host_listener_port) in _published_ports(kafka)

    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", key
    assert env["CLUSTER_ID"]

    health = _healthcheck_command(kafka)
    assert "kafka-broker-api-versions" in health or "kafka-topics" in health

    data_mounts = [str(v).split(":") for v in kafka.get("volumes", [])]
    log_dirs = env["KAFKA_LOG_DIRS"]
    assert any(mount[1] == log_dirs for mount in data_mounts if len(mount) >= 2)


def test_redis_uses_aof_and_a_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    redis = services["redis"]
    command = redis["command"]
    args = command if isinstance(command, list) else str(command).split()
    args = [str(arg) for arg in args]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "everysec"
    mounts = [str(v).split(":") for v in redis.get("volumes", [])]
    data = [mount for mount in mounts if len(mount) >= 2 and mount[1] == "/data"]
    assert data, "redis /data is not on a volume"
    assert data[0][0] in compose["volumes"], "redis data is not a named volume"
    assert "redis-cli" in _healthcheck_command(redis)


def test_worker_builds_here_and_waits_for_healthy_dependencies(
    services: dict[str, dict[str, Any]],
) -> None:
    worker = services["worker"]
    build = worker["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    assert (ROOT / context).resolve() == ROOT
    env = _environment(worker)
    assert env["CRM_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["CRM_REDIS_URL"] == "redis://redis:6379/0"
    assert env["CRM_WEB_HOST"] == "0.0.0.0"
    assert env.get("CRM_WEB_PORT", "6066") == "6066"
    assert ("127.0.0.1", "6066", "6066") in _published_ports(worker)

    depends = worker["depends_on"]
    assert isinstance(depends, dict), "depends_on must use the long form with conditions"
    for dependency in ("kafka", "redis"):
        assert depends[dependency]["condition"] == "service_healthy"
        _healthcheck_command(services[dependency])  # a dependency waited on must have one


def test_the_learner_runs_as_its_own_service_and_not_in_the_worker(
    services: dict[str, dict[str, Any]],
) -> None:
    worker, learner = services["worker"], services["learner"]
    assert _environment(worker)["CRM_LEARNER_ENABLED"] == "false"
    assert learner["command"] == ["learner"]
    assert learner["image"] == worker["image"]
    assert learner["build"] == worker["build"]
    env = _environment(learner)
    for name in ("CRM_KAFKA_BOOTSTRAP", "CRM_REDIS_URL", "CRM_PARTITIONS", "CRM_TOPIC_PREFIX"):
        assert env[name] == _environment(worker)[name], name
    assert env["CRM_WEB_PORT"] == "6067"
    assert ("127.0.0.1", "6067", "6067") in _published_ports(learner)
    for dependency in ("kafka", "redis"):
        assert learner["depends_on"][dependency]["condition"] == "service_healthy"


def test_named_volumes_are_declared(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    used: dict[str, set[str]] = {}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith((".", "/", "~")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
                continue
            used.setdefault(name, set()).add(source)
            assert source in declared, f"{name} uses undeclared volume {source}"
    for name in ("kafka", "redis", "prometheus", "grafana"):
        assert used.get(name), f"{name} keeps its data on no named volume"


@pytest.mark.parametrize("target", ["worker:6066", "learner:6067"])
def test_prometheus_scrapes_the_worker_and_the_learner(
    services: dict[str, dict[str, Any]], target: str
) -> None:
    config = _load_yaml(PROMETHEUS_FILE)
    jobs = [
        job
        for job in config["scrape_configs"]
        if any(target in group["targets"] for group in job.get("static_configs", []))
    ]
    assert len(jobs) == 1
    job = jobs[0]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job.get("scheme", "http") == "http"
    assert job["scrape_interval"] == "5s"
    if "scrape_timeout" in job:
        assert int(str(job["scrape_timeout"]).rstrip("s")) <= 5

    mounts = [str(v) for v in services["prometheus"]["volumes"]]
    assert any(
        m.startswith("./ops/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml")
        for m in mounts
    )


def test_grafana_is_provisioned_and_locked_down(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    env = _environment(grafana)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert re.fullmatch(r"\$\{[A-Z_]+:-[^}]+\}", env["GF_SECURITY_ADMIN_PASSWORD"]), (
        "admin password must come from the environment with a default"
    )
    mounts = {
        str(v).split(":")[0]: str(v).split(":")[1]
        for v in grafana["volumes"]
        if str(v).startswith(".")
    }
    assert mounts["./ops/grafana/provisioning"] == "/etc/grafana/provisioning"

    datasources = _load_yaml(DATASOURCE_FILE)["datasources"]
    assert [ds["uid"] for ds in datasources] == ["prometheus"]
    assert datasources[0]["type"] == "prometheus"
    assert datasources[0]["url"] == "http://prometheus:9090"

    providers = _load_yaml(DASHBOARD_PROVIDER_FILE)["providers"]
    paths = {provider["options"]["path"] for provider in providers}
    assert paths == {mounts["./ops/grafana/dashboards"]}, "provider path is not the mount target"


def test_dashboard_loads(dashboard: dict[str, Any]) -> None:
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] == "crm-scoring"
    assert dashboard["title"]
    assert dashboard["panels"]


def test_dashboard_panel_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in _walk_panels(dashboard["panels"])]
    assert all(isinstance(panel_id, int) for panel_id in ids)
    assert len(ids) == len(set(ids))


def test_dashboard_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], int] = {}
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for row in range(pos["y"], pos["y"] + pos["h"]):
            for col in range(pos["x"], pos["x"] + pos["w"]):
                assert (row, col) not in cells, (
                    f"panel {panel['id']} overlaps panel {cells[(row, col)]}"
                )
                cells[(row, col)] = panel["id"]


def test_dashboard_queries_only_documented_metrics(dashboard: dict[str, Any]) -> None:
    used: set[str] = set()
    for panel in _walk_panels(dashboard["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "prometheus", panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target.get("datasource", {"uid": "prometheus"})["uid"] == "prometheus"
            expr = target["expr"]
            assert expr.count("(") == expr.count(")"), expr
            names = metric_names(expr)
            assert names, f"no metric in {expr!r}"
            assert names <= DOCUMENTED_METRICS, (
                f"undocumented metric(s) {names - DOCUMENTED_METRICS}"
            )
            used |= names
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else str(query)
        assert metric_names(text) <= DOCUMENTED_METRICS
    assert used == DOCUMENTED_METRICS, f"metrics with no panel: {DOCUMENTED_METRICS - used}"


def test_dashboard_histograms_show_p50_and_p99(dashboard: dict[str, Any]) -> None:
    exprs = [
        target["expr"]
        for panel in _walk_panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]
    for histogram in (
        "crm_event_to_score_seconds_bucket",
        "crm_ingest_to_alert_seconds_bucket",
        "crm_redis_roundtrip_seconds_bucket",
        "crm_api_request_seconds_bucket",
    ):
        quantiles = {
            match.group(1)
            for expr in exprs
            if histogram in expr
            for match in re.finditer(r"histogram_quantile\(\s*([0-9.]+)", expr)
        }
        assert {"0.5", "0.99"} <= quantiles, histogram
    rates_by_topic = [e for e in exprs if "crm_events_total" in e and "by (topic)" in e]
    assert rates_by_topic
    assert all("rate(" in expr for expr in rates_by_topic)


def test_dockerfile_builds_a_non_root_worker() -> None:
    lines = [
        line.strip()
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    args = {m.group(1): m.group(2) for line in lines if (m := re.match(r"ARG (\w+)=(\S+)", line))}
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], line.split()[1])
        for line in lines
        if line.startswith("FROM ")
    ]
    assert bases
    assert all(base == "python:3.11-slim" for base in bases)
    assert any(re.search(r"pip install (--\S+ )*\.(\s|$)", line) for line in lines)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    final_stage = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    entrypoint = [
        json.loads(line[len("ENTRYPOINT ") :])
        for line in final_stage
        if line.startswith("ENTRYPOINT ")
    ]
    cmd = [json.loads(line[len("CMD ") :]) for line in final_stage if line.startswith("CMD ")]
    assert entrypoint, "no exec-form ENTRYPOINT"
    assert [*entrypoint[-1], *(cmd[-1] if cmd else [])] == ["crm-score", "worker"]


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".services", ".env"} <= patterns
    for needed in ("pyproject.toml", "crm_score", "README.md"):
        assert needed not in patterns, f"{needed} is needed by `pip install .`"
