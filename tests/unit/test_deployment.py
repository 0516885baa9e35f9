"""docker-compose.yml is the deployment path; Docker cannot run here, so its structure is
checked: it parses, its services exist, every file it mounts is in the repository, the
worker's command and settings are real, and the dashboard queries name real metrics."""

import json
import re
import socket
from pathlib import Path

import yaml

from streams.cli import advertised_url, build_parser
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
        secret_file = name.endswith("_file") and name.removesuffix("_file") in fields
        assert (
            name in fields
            or secret_file  # a secret setting read from a file (ADL_SNAPSHOT_KEY_FILE)
            or name in {"metrics_port", "metrics_addr", "api_token_file"}
        ), key


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


def test_kafka_keeps_its_data_and_stays_inside():
    # the image's default log dir is not the volume: without KAFKA_LOG_DIRS a recreated
    # container lost the input history the worker rebuilds from (issue 14)
    kafka = COMPOSE["services"]["kafka"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in kafka["volumes"]}
    data = kafka["environment"]["KAFKA_LOG_DIRS"]
    assert mounts[data] in COMPOSE["volumes"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", kafka["environment"]["CLUSTER_ID"])
    assert "ports" not in kafka  # not published to the host (issue 12)
    assert kafka["healthcheck"]["test"]


def test_services_wait_for_a_healthy_kafka_and_grafana_wants_a_login():
    services = COMPOSE["services"]
    for name in ("worker", "webhooks", "account-agents"):
        assert services[name]["depends_on"]["kafka"]["condition"] == "service_healthy", name
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_SECURITY_ADMIN_PASSWORD__FILE" in grafana


def test_the_webhook_dispatcher_runs_with_its_secret_from_a_file():
    hooks = COMPOSE["services"]["webhooks"]
    args = build_parser().parse_args(
        [a.replace("${ADL_WEBHOOK_URL:-}", "https://desk.example/hooks") for a in hooks["command"]]
    )
    assert args.url == "https://desk.example/hooks"
    assert "--secret" not in hooks["command"]
    mounted = "/run/secrets/webhook_secret"  # where compose mounts the secret named so
    assert hooks["environment"]["ADL_WEBHOOK_SECRET_FILE"] == mounted
    secret_files = [s["file"] for s in COMPOSE["secrets"].values()]
    ignored = (ROOT / ".gitignore").read_text().split()
    assert all(f.removeprefix("./").split("/")[0] + "/" in ignored for f in secret_files)


def test_the_image_is_built_without_local_state():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".cache", ".git", "secrets"} <= set(ignored)


def _locked(path: Path) -> dict[str, list[str]]:
    """Package name -> its sha256 hashes, from a pip-compile lock file."""
    pins: dict[str, list[str]] = {}
    name = ""
    for row in path.read_text().splitlines():
        pinned = re.match(r"^([A-Za-z0-9_.\-]+)==\S+ \\$", row)
        if pinned:
            name = re.sub(r"[-_.]+", "-", pinned.group(1)).lower()
            pins[name] = []
        elif row.strip().startswith("--hash=sha256:"):
            pins[name].append(row.strip().removeprefix("--hash=sha256:").rstrip(" \\"))
    return pins


def test_installs_come_from_the_lock_files_with_hashes():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime, dev = project["dependencies"], project["optional-dependencies"]["dev"]
    for lock, wanted in (("requirements.lock", runtime), ("requirements-dev.lock", runtime + dev)):
        pins = _locked(ROOT / lock)
        for requirement in wanted:
            name = re.sub(r"[-_.]+", "-", re.split(r"[<>=!~ \[;]", requirement)[0]).lower()
            assert name in pins, f"{lock} does not pin {name}"
        assert all(len(h) == 64 for hashes in pins.values() for h in hashes)
        assert all(pins.values()), f"{lock}: a pin without a hash"
    # the Makefile (.ci/run is `make test`) and the image install from them, checking hashes
    assert "--require-hashes -r requirements-dev.lock" in (ROOT / "Makefile").read_text()
    assert "--require-hashes -r requirements.lock" in (ROOT / "Dockerfile").read_text()


def test_both_paths_read_apis_want_the_token_and_are_scraped():
    services = COMPOSE["services"]
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    scraped = {
        port
        for job in prometheus["scrape_configs"]
        for port in [
            t.rsplit(":", 1)[1] for c in job.get("static_configs", []) for t in c["targets"]
        ]
        + [str(c["port"]) for c in job.get("dns_sd_configs", [])]
    }
    for name in ("worker", "account-agents"):
        env = services[name]["environment"]
        assert env["ADL_API_TOKEN_FILE"] == "/run/secrets/api_token", name  # noqa: S105
        assert "api_token" in services[name]["secrets"], name
        assert env["ADL_METRICS_PORT"] in scraped, name


def test_the_worker_snapshots_its_state_with_a_mounted_key():
    # a restart reads the last snapshot, so the inputs need not keep every event forever;
    # the key signs the snapshots (unpickled at start): a secret, never in the file
    worker = COMPOSE["services"]["worker"]
    env = worker["environment"]
    assert env["ADL_SNAPSHOT_KEY_FILE"] == "/run/secrets/snapshot_key"
    assert "ADL_SNAPSHOT_KEY" not in env
    assert "snapshot_key" in worker["secrets"]
    assert COMPOSE["secrets"]["snapshot_key"]["file"].startswith("./secrets/")
    assert int(env["ADL_INPUT_RETENTION_HOURS"]) * 3600 > 10 * Settings().snapshot_interval_s


def test_agents_replicas_advertise_a_name_their_peers_can_dial():
    # listening on every address (the compose setting), a replica advertises its host
    # name (a scaled compose service's containers reach each other by it), not 0.0.0.0
    env = COMPOSE["services"]["account-agents"]["environment"]
    assert env["ADL_METRICS_ADDR"] == "0.0.0.0"  # noqa: S104
    assert "ADL_ADVERTISED_URL" not in env
    url = advertised_url(env["ADL_METRICS_ADDR"], int(env["ADL_METRICS_PORT"]))
    assert url == f"http://{socket.gethostname()}:9465"
    assert advertised_url("10.0.0.7", 9465) == "http://10.0.0.7:9465"
