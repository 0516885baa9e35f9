"""docker-compose.yml is the deployment path; Docker cannot run here, so its structure is
checked: it parses, its services exist, every file it mounts is in the repository, the
worker's command and settings are real, and the dashboard queries name real metrics."""

import json
import re
from pathlib import Path

import yaml

from streams.cli import build_parser
from streams.pipeline.metrics import Metrics
from streams.pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_mounted_files_exist():
    services = COMPOSE["services"]
    assert {"kafka", "worker", "prometheus", "alertmanager", "grafana"} <= services.keys()
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert (ROOT / services["worker"]["build"] / "Dockerfile").is_file()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_worker_command_and_settings_are_real():
    worker = COMPOSE["services"]["worker"]
    build_parser().parse_args(worker["command"])  # a real subcommand
    fields = set(Settings.__dataclass_fields__)
    for key in worker["environment"]:
        name = key.removeprefix("ADL_").lower()
        assert name in fields or name in {"metrics_port", "metrics_addr"}, key


def test_prometheus_scrapes_the_worker_and_loads_the_rules():
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    port = COMPOSE["services"]["worker"]["environment"]["ADL_METRICS_PORT"]
    assert targets == [f"worker:{port}"]
    rules = Path(prom["rule_files"][0].replace("/etc/prometheus", str(ROOT / "deploy/prometheus")))
    assert yaml.safe_load(rules.read_text())["groups"]


def test_dashboards_query_metrics_the_worker_exports():
    families = {m.name for m in Metrics().registry.collect()}
    suffixes = ("", "_total", "_bucket", "_count", "_sum")
    exported = {f"{name}{suffix}" for name in families for suffix in suffixes}
    for path in (ROOT / "dashboards").glob("*.json"):
        dash = json.loads(path.read_text())
        assert dash["schemaVersion"] >= 36
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        for expr in exprs:
            for name in re.findall(r"\b(adl_[a-z0-9_]+)", expr):
                assert name in exported, (path.name, name)
            assert all(p["datasource"]["uid"] == "prometheus" for p in dash["panels"])
