"""docker-compose.yml, Dockerfile and the configs they mount agree with each other and the code.

There is no Docker engine here: these tests read the files and cross-check them.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from leadline.config.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PROMETHEUS = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
ALERTMANAGER_CONFIG = REPO / "prometheus" / "alertmanager" / "alertmanager.yml"

WORKER_ENV = {
    "LEADLINE_BROKER",
    "LEADLINE_REDIS_URL",
    "LEADLINE_WEB_HOST",
    "LEADLINE_WEB_PORT",
    "LEADLINE_TOPIC",
    "LEADLINE_DLQ_TOPIC",
    "LEADLINE_APP_ID",
    "LEADLINE_PARTITIONS",
    "LEADLINE_LOG_LEVEL",
    "LEADLINE_DATA_DIR",
}


def env(service: str) -> dict[str, str]:
    raw = SERVICES[service].get("environment", {})
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: str(v) for k, v in raw.items()}


def mounts(service: str) -> list[tuple[str, str]]:
    """(source, container path) of each volume entry (short syntax)."""
    out = []
    for entry in SERVICES[service].get("volumes", []):
        source, target = entry.split(":")[:2]
        out.append((source, target))
    return out


def container_ports(service: str) -> set[int]:
    """Ports reachable on the compose network (published container side, or exposed)."""
    ports = {int(str(p).split(":")[-1].split("/")[0]) for p in SERVICES[service].get("ports", [])}
    ports |= {int(str(p).split("/")[0]) for p in SERVICES[service].get("expose", [])}
    return ports


def flags(service: str) -> dict[str, str]:
    """``--name=value`` command-line flags of a service (bare flags map to "")."""
    return {f.split("=", 1)[0]: f.partition("=")[2] for f in SERVICES[service]["command"]}


def settings_field(variable: str) -> str:
    assert variable.startswith("LEADLINE_"), variable
    return variable.removeprefix("LEADLINE_").lower()


# --------------------------------------------------------------------------- services


def test_services() -> None:
    assert set(SERVICES) == {
        "kafka",
        "redis",
        "worker",
        "traffic",
        "prometheus",
        "alertmanager",
        "alert-sink",
        "grafana",
    }


def test_images_are_pinned() -> None:
    for name, service in SERVICES.items():
        image = service.get("image")
        assert image, f"{name}: no image"
        if "build" not in service:
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: unpinned {image}"
            assert not image.endswith(":latest"), name
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert SERVICES["grafana"]["image"].startswith("grafana/grafana:11.")


def test_kafka_runs_single_node_kraft() -> None:
    kafka = env("kafka")
    assert set(kafka["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in k for k in kafka)
    assert "PLAINTEXT://kafka:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"


def test_redis_persists() -> None:
    command = SERVICES["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert ("redis-data", "/data") in mounts("redis")


def test_worker_can_scale() -> None:
    worker = SERVICES["worker"]
    assert "build" in worker
    assert "container_name" not in worker and "ports" not in worker
    port = int(env("worker")["LEADLINE_WEB_PORT"])
    assert port in container_ports("worker")


def test_worker_environment_is_exactly_the_real_settings() -> None:
    variables = env("worker")
    assert set(variables) == WORKER_ENV
    for variable in variables:
        assert settings_field(variable) in Settings.model_fields, variable


@pytest.mark.parametrize("service", ["worker", "traffic"])
def test_leadline_environment_values_validate(service: str) -> None:
    values = {settings_field(k): v for k, v in env(service).items()}
    settings = Settings.model_validate(values)
    assert settings.broker_url == "kafka://kafka:9092"
    assert urlparse(settings.redis_url).hostname == "redis"


def test_worker_healthcheck_uses_healthz_on_its_port() -> None:
    test = " ".join(SERVICES["worker"]["healthcheck"]["test"])
    port = env("worker")["LEADLINE_WEB_PORT"]
    assert f"http://localhost:{port}/healthz" in test


def test_traffic_is_a_demo_profile_service() -> None:
    traffic = SERVICES["traffic"]
    assert traffic["profiles"] == ["demo"]
    assert traffic["command"] == ["demo-traffic"]
    assert traffic["image"] == SERVICES["worker"]["image"]
    assert traffic["pull_policy"] == "never" and "build" not in traffic
    for variable in env("traffic"):
        assert settings_field(variable) in Settings.model_fields, variable


def test_depends_on_waits_for_health() -> None:
    for name, service in SERVICES.items():
        for dependency, how in service.get("depends_on", {}).items():
            assert how["condition"] == "service_healthy", f"{name} -> {dependency}"
            assert "healthcheck" in SERVICES[dependency], dependency
    assert set(SERVICES["worker"]["depends_on"]) == {"kafka", "redis"}
    for name in ("kafka", "redis", "worker", "prometheus", "alertmanager", "alert-sink",
                 "grafana"):
        assert "healthcheck" in SERVICES[name], name


def test_mounted_files_exist() -> None:
    named = set(COMPOSE.get("volumes", {}))
    for name in SERVICES:
        for source, _target in mounts(name):
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: {source} missing"
            else:
                assert source in named, f"{name}: undeclared volume {source}"


def test_prometheus_keeps_enough_history_for_the_baselines() -> None:
    retention = flags("prometheus")["--storage.tsdb.retention.time"]
    assert retention.endswith("d") and int(retention[:-1]) >= 45


# ------------------------------------------------------- compose <-> Prometheus/Grafana


def config_dir_in_container() -> str:
    config = flags("prometheus")["--config.file"]
    assert (REPO / "prometheus" / "prometheus.yml", config) in [
        ((REPO / s).resolve(), t) for s, t in mounts("prometheus")
    ]
    return config.rsplit("/", 1)[0]


def test_prometheus_mounts_config_and_rules() -> None:
    directory = config_dir_in_container()
    rules_glob = PROMETHEUS["rule_files"]
    assert rules_glob == ["rules/*.rules.yml"]
    assert ("./prometheus/rules", f"{directory}/rules") in mounts("prometheus")


def test_scrape_job_finds_the_workers() -> None:
    job = next(j for j in PROMETHEUS["scrape_configs"] if j["job_name"] == "leadline")
    (dns,) = job["dns_sd_configs"]
    assert dns["type"] == "A"
    assert dns["names"] == ["worker"] and "worker" in SERVICES
    assert dns["port"] == int(env("worker")["LEADLINE_WEB_PORT"])
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_prometheus_sends_alerts_to_the_alertmanager_service() -> None:
    (am,) = PROMETHEUS["alerting"]["alertmanagers"]
    (target,) = am["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in SERVICES and int(port) in container_ports(host)
    assert ("./prometheus/alertmanager/alertmanager.yml", "/etc/alertmanager/alertmanager.yml") in (
        mounts("alertmanager")
    )


def test_alertmanager_notifies_the_alert_sink() -> None:
    """Every receiver posts to the alert-sink service, on the port its command listens on."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    sink = SERVICES["alert-sink"]
    port = int(sink["command"][sink["command"].index("--port") + 1])
    assert ("./prometheus/alertmanager/sink.py", "/opt/sink.py") in mounts("alert-sink")
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            assert hook["url"].startswith(f"http://alert-sink:{port}/"), receiver["name"]
    assert "alert-sink" in SERVICES["alertmanager"]["depends_on"]


def test_grafana_reaches_prometheus_and_loads_the_dashboards() -> None:
    provisioning = REPO / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    url = urlparse(datasource["datasources"][0]["url"])
    assert url.hostname in SERVICES and url.port in container_ports(url.hostname)
    provider = yaml.safe_load((provisioning / "dashboards" / "leadline.yaml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert ("./grafana/dashboards", path) in mounts("grafana")
    assert ("./grafana/provisioning", "/etc/grafana/provisioning") in mounts("grafana")
    home = env("grafana")["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(path + "/")
    assert (REPO / "grafana" / "dashboards" / home.removeprefix(path + "/")).is_file()


# ------------------------------------------------------------------------- Dockerfile


def test_dockerfile() -> None:
    text = (REPO / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", text, flags=re.M)
    assert froms and all(f == "python:3.11-slim" for f in froms)
    assert re.search(r"^RUN pip install \.$", text, flags=re.M)
    assert 'ENTRYPOINT ["leadline"]' in text and 'CMD ["worker"]' in text
    users = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^EXPOSE 6066$", text, flags=re.M)


def test_dockerignore_keeps_what_pip_install_needs() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    folders = set(project["tool"]["setuptools"]["package-dir"].values())
    assert set(project["tool"]["setuptools"]["packages"]) == set(
        project["tool"]["setuptools"]["package-dir"])
    needed = {"pyproject.toml", project["project"]["readme"]} | folders
    assert not needed & ignored
    for folder in folders:
        assert (REPO / folder / "__init__.py").is_file(), folder
