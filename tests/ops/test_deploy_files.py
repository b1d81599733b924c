"""The shipped deploy files: Prometheus config and rules (promtool), compose, Dockerfile,
Grafana dashboard and provisioning, Kubernetes manifests, and the metric names they query."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from service import constants
from service.config import Settings
from tests.ops import names

ROOT = names.ROOT
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "tgwatch.json"
K8S = DEPLOY / "k8s"
# Component → its command. The bot token allows one reader of updates, so the `bot` component is
# the listener's bot source (channel posts and subscribers' commands); `listener` polls previews.
TGWATCH_SERVICES = {
    "listener": ["listen", "--source", "preview"],
    "worker": ["worker"],
    "bot": ["listen", "--source", "bot"],
    "api": ["api", "--host", "0.0.0.0", "--port", "8090"],
}
SECRET_WORDS = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY", re.IGNORECASE)


# --- promtool -----------------------------------------------------------------------------------
def promtool() -> str:
    path = shutil.which("promtool")
    if path is not None:
        return path
    reason = (
        "promtool not found, so the Prometheus config and alert rules are not checked: install "
        "it (Debian/Ubuntu: `apt-get install -y prometheus`)"
    )
    if os.environ.get("TGWATCH_REQUIRE_PROMTOOL") == "1":  # set by CI, which installs it
        pytest.fail(reason)
    pytest.skip(reason)


def run_promtool(*args: str) -> str:
    done = subprocess.run(
        [promtool(), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_prometheus_config_is_valid() -> None:
    out = run_promtool("check", "config", "prometheus.yml")
    assert "SUCCESS" in out


def test_alert_rules_are_valid() -> None:
    out = run_promtool("check", "rules", "alerts.yml")
    assert "SUCCESS" in out


def test_alert_rules_fire_as_intended() -> None:
    run_promtool("test", "rules", "alerts_test.yml")


def test_scrape_config_covers_every_component() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for component in TGWATCH_SERVICES:
        assert f"tgwatch-{component}" in jobs
    workers = jobs["tgwatch-worker"]["dns_sd_configs"][0]
    assert workers["names"] == ["worker"]
    assert config["rule_files"] == ["alerts.yml"]


def test_alert_rules_cover_the_issue() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {
        "TgwatchQueueBacklogGrowing",
        "TgwatchNoWorkers",
        "TgwatchSourceLagHigh",
        "TgwatchSourceFailing",
        "TgwatchDeliveryFailureRatio",
        "TgwatchDeadLetters",
        "TgwatchTelegram429",
    } <= alerts


# --- metric names -------------------------------------------------------------------------------
def test_every_queried_metric_is_defined() -> None:
    used = names.metric_names_used_by_dashboards_and_alerts()
    assert len(used) > 15
    assert names.undefined_names(used) == set()


def test_every_defined_metric_is_on_the_dashboard_or_in_an_alert() -> None:
    used = names.metric_names_used_by_dashboards_and_alerts()
    families = names.defined_metric_families()
    shown = {names.family_of(name, families) for name in used}
    assert families - shown == set()


def test_names_helper_reads_an_exposition() -> None:
    text = (
        "# HELP tgwatch_workers RQ workers\n# TYPE tgwatch_workers gauge\ntgwatch_workers 2.0\n"
        '# TYPE tgwatch_queue_depth gauge\ntgwatch_queue_depth{queue="q"} 1.0\n'
    )
    missing = names.missing_from_exposition(text)
    assert "tgwatch_workers" not in missing
    assert "tgwatch_queue_depth" not in missing
    assert "tgwatch_posts_enqueued_total" in missing


def test_names_the_running_metrics_export() -> None:
    """A fresh process's exposition declares every queried name; samples come with events."""
    from prometheus_client import generate_latest

    from service.metrics import Metrics

    metrics = Metrics()
    text = generate_latest(metrics.registry).decode()
    from_redis = {"tgwatch_queue_depth", "tgwatch_jobs_failed", "tgwatch_workers"}
    from_redis |= {"tgwatch_redis_up", "tgwatch_webhook_dead_letters"}
    assert names.missing_from_exposition(text, strict=False) == from_redis
    strict = names.missing_from_exposition(text)
    assert "tgwatch_source_errors_total" in strict
    assert "tgwatch_alerts_total" not in strict


# --- Grafana ------------------------------------------------------------------------------------
def test_dashboard_is_valid_and_uses_the_provisioned_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "tgwatch"
    datasources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = datasources["datasources"][0]["uid"]
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert panels
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


def test_dashboard_covers_the_issue() -> None:
    exprs = " ".join(names.dashboard_expressions())
    for name in (
        "tgwatch_posts_enqueued_total",  # ingest rate per source and channel
        "tgwatch_source_lag_seconds",
        "tgwatch_queue_depth",
        "tgwatch_stage_duration_seconds_bucket",
        "tgwatch_end_to_end_latency_seconds_bucket",
        "tgwatch_alerts_total",
        "tgwatch_deliveries_total",
        "tgwatch_telegram_429_total",
        "tgwatch_webhook_dead_letters",
    ):
        assert name in exprs
    for queue in re.findall(r'queue="([^"]+)"', exprs):
        assert queue in (constants.POSTS_QUEUE, constants.DELIVERIES_QUEUE)


def test_dashboard_provider_points_at_the_mounted_dashboards() -> None:
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "tgwatch.yml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    grafana = yaml.safe_load(COMPOSE.read_text())["services"]["grafana"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in grafana["volumes"]


# --- docker compose -----------------------------------------------------------------------------
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def docker_compose_works() -> bool:
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, timeout=30, check=False
    )
    return done.returncode == 0


def test_compose_config_with_docker() -> None:
    if not docker_compose_works():
        pytest.skip("no docker compose plugin here; the structural checks below stand in")
    done = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_compose_services() -> None:
    services = compose()["services"]
    assert set(services) >= {"redis", "prometheus", "grafana", *TGWATCH_SERVICES}
    for name, command in TGWATCH_SERVICES.items():
        service = services[name]
        assert service["command"] == ["tgwatch", *command]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert any(str(entry["path"]) == ".env" for entry in service["env_file"])
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        environment = service["environment"]
        assert environment["TGWATCH_REDIS_URL"].startswith("redis://redis:")
        assert environment["TGWATCH_METRICS_PORT"] == "9100"
        for key in environment:
            assert not SECRET_WORDS.search(key), f"{name}: secret {key} set in the compose file"


def test_compose_redis_is_durable_and_checked() -> None:
    data = compose()
    redis = data["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert redis["healthcheck"]["test"][-1] == "ping"
    volume = redis["volumes"][0].split(":")
    assert volume[1] == "/data"
    assert volume[0] in data["volumes"]


def test_compose_workers_scale() -> None:
    worker = compose()["services"]["worker"]
    assert worker["deploy"]["replicas"] >= 1
    # --scale needs containers without a fixed name or host port.
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["environment"]["TGWATCH_WORKERS"] == "1"


def test_compose_mounts_exist() -> None:
    data = compose()
    for name, service in data["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} missing"
            else:
                assert source in data["volumes"], f"{name}: volume {source} not declared"
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file()


def test_env_example_lists_settings_without_values() -> None:
    text = (ROOT / ".env.example").read_text()
    from service.config import BotSettings, DeliverySettings, LimitSettings, MtprotoSettings

    fields = {f"TGWATCH_{name.upper()}" for name in Settings.model_fields}
    fields |= {f"TGWATCH_BOT_{name.upper()}" for name in BotSettings.model_fields}
    fields |= {f"TGWATCH_DELIVERY_{name.upper()}" for name in DeliverySettings.model_fields}
    fields |= {f"TGWATCH_LIMIT_{name.upper()}" for name in LimitSettings.model_fields}
    fields |= {f"TGWATCH_MTPROTO_{name.upper()}" for name in MtprotoSettings.model_fields}
    mentioned = set(re.findall(r"\bTGWATCH_[A-Z_]+[A-Z]", text))
    assert mentioned - fields == set()
    assert {"TGWATCH_TELEGRAM_TOKEN", "TGWATCH_WEBHOOK_SECRET", "TGWATCH_CHANNELS"} <= mentioned
    for line in text.splitlines():
        key, _, value = line.lstrip("# ").partition("=")
        if SECRET_WORDS.search(key) and "=" in line:
            assert value.strip() == "", f"{key} has a value in .env.example"
    assert ".env" in (ROOT / ".gitignore").read_text().split()


# --- Dockerfile ---------------------------------------------------------------------------------
def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def test_dockerfile_lint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed; test_dockerfile_structure stands in")
    done = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout


def test_dockerfile_structure() -> None:
    instructions = dockerfile_instructions()
    words = [word for word, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [rest for word, rest in instructions if word == "USER"]
    assert users, "the image must not run as root"
    assert users[-1] not in ("root", "0"), users[-1]
    assert "HEALTHCHECK" in words
    assert any(word == "RUN" and "pip install" in rest for word, rest in instructions)
    for word, rest in instructions:
        if word in ("ENV", "ARG"):
            assert not SECRET_WORDS.search(rest), f"secret in {word} {rest}"
        if word in ("COPY", "ADD"):
            assert ".env" not in rest.split(), rest
    # The healthcheck runs as the final user after the install, on the metrics port.
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN")


def test_dockerignore_keeps_secrets_and_noise_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".git", ".venv", "data"} <= set(ignored)
    for needed in ("service", "workers", "pyproject.toml", "README.md"):
        assert needed not in ignored


# --- Kubernetes ---------------------------------------------------------------------------------
def k8s_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def test_k8s_deployments() -> None:
    deployments = {d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == "Deployment"}
    assert set(deployments) == {f"tgwatch-{name}" for name in TGWATCH_SERVICES}
    for name, command in TGWATCH_SERVICES.items():
        spec = deployments[f"tgwatch-{name}"]["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        (container,) = spec["containers"]
        assert container["command"] == ["tgwatch", *command]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        refs = {next(iter(ref)) for ref in container["envFrom"]}
        assert refs == {"configMapRef", "secretRef"}


def test_k8s_secret_template_has_no_values() -> None:
    (secret,) = (d for d in k8s_documents() if d["kind"] == "Secret")
    assert secret["stringData"]
    assert all(value == "" for value in secret["stringData"].values())
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]
    listed = set(kustomization["resources"])
    shipped = {path.name for path in K8S.glob("*.yaml")}
    assert listed == shipped - {"kustomization.yaml", "secret.example.yaml"}


def test_k8s_workers_scale_on_queue_depth() -> None:
    (scaled,) = (d for d in k8s_documents() if d["kind"] == "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "tgwatch-worker"
    queries = [trigger["metadata"]["query"] for trigger in scaled["spec"]["triggers"]]
    assert any(f'tgwatch_queue_depth{{queue="{constants.POSTS_QUEUE}"}}' in q for q in queries)
    assert names.undefined_names({n for q in queries for n in names.NAME.findall(q)}) == set()


def test_the_api_is_reachable_in_compose_and_k8s() -> None:
    """The API listens on every interface of its container and a port or Service exposes it
    (issue 9: it listened on 127.0.0.1 with nothing in front)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    api = compose["services"]["api"]
    command = api["command"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    port = command[command.index("--port") + 1]
    assert any(str(mapping).endswith(f":{port}") for mapping in api["ports"])
    docs = k8s_documents()
    [deployment] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] ==
                    "tgwatch-api"]  # fmt: skip
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"][container["command"].index("--host") + 1] == "0.0.0.0"
    http = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    [service] = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] ==
                 "tgwatch-api"]  # fmt: skip
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    assert str(http) == port
