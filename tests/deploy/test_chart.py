"""The Helm chart, rendered by the real helm 4 and helm 3, checked against the Kubernetes schemas
and against what it promises: probes, a non-root read-only container, secrets only by reference,
the migration hook, a config checksum that rolls the pods, refusals that name the value."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app import __version__
from app.config import load_settings
from tests.deploy.dockerfile import final_stage
from tests.deploy.helm import (
    CHART,
    CI_VALUES,
    HELM_VERSIONS,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    RELEASE,
    ROOT,
    Rendered,
    refusal,
    render,
    run_helm,
    schema_path,
)
from tests.harness.processes import require_binaries

POSTGRESQL = CHART / "ci" / "postgresql-values.yaml"
EVERYTHING = CHART / "ci" / "everything-values.yaml"
VALUE_SETS = [pytest.param((), id="defaults")] + [pytest.param((p,), id=p.stem) for p in CI_VALUES]
FULLNAME = f"{RELEASE}-panorama"
# Kinds of the Prometheus Operator: no Kubernetes schema; checked by promtool and by assertions.
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}


@functools.cache
def rendered(version: str, files: tuple[Path, ...]) -> Rendered:
    return render(version, *files)


def secret_env(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in container["env"]
        if "valueFrom" in e
    }


def fake_secret(variable: str, secret: str, key: str) -> str:
    """A made-up value for ``key`` of the Secret ``secret``, shaped as ``variable`` needs it."""
    marker = f"sEcReT-{secret}-{key}-0123456789"
    if variable == "PANORAMA_DATABASE_URL":
        return f"postgresql+asyncpg://panorama:{marker}@postgres.db:5432/panorama"
    if variable.endswith("_URL"):
        return f"https://robot.example.com/send?access_token={marker}"
    return marker


def pod_environment(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment with made-up values for each Secret key it references."""
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env.update({name: fake_secret(name, *ref) for name, ref in secret_env(container).items()})
    return env


@pytest.mark.parametrize("version", HELM_VERSIONS)
@pytest.mark.parametrize("files", VALUE_SETS)
def test_helm_lint_strict_passes(version: str, files: tuple[Path, ...]) -> None:
    args = [a for f in files for a in ("--values", str(f))]
    done = run_helm(version, "lint", "--strict", str(CHART), *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("version", HELM_VERSIONS)
@pytest.mark.parametrize("files", VALUE_SETS)
def test_every_manifest_is_valid_kubernetes(version: str, files: tuple[Path, ...]) -> None:
    documents = rendered(version, files).documents
    assert documents
    for document in documents:
        where = f"{document['kind']}/{document['metadata']['name']}"
        if document["kind"] in OPERATOR_KINDS:
            assert document["apiVersion"] == "monitoring.coreos.com/v1", where
            continue
        for kubernetes in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(document, kubernetes, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(p) for p in error.path)
                pytest.fail(f"{where} is not valid Kubernetes {kubernetes}: {path}: {error.message}")
        assert document["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE, where


@pytest.mark.parametrize("files", VALUE_SETS)
def test_helm_3_and_4_render_the_same_manifests(files: tuple[Path, ...]) -> None:
    assert rendered("v3", files) == rendered("v4", files)


@pytest.mark.parametrize("files", VALUE_SETS)
def test_the_container_is_probed_non_root_read_only_and_without_capabilities(files: tuple[Path, ...]) -> None:
    chart = rendered("v4", files)
    image = final_stage()
    pod, container = chart.pod, chart.container
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60  # slow starts are not killed
    assert container["args"][:3] == ["serve", "--host", "0.0.0.0"]  # noqa: S104 - what a pod must do
    assert {"requests", "limits"} <= set(container["resources"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == image.uid  # the Dockerfile's user
    assert pod["securityContext"]["fsGroup"] == image.uid
    assert pod["automountServiceAccountToken"] is False
    for each in [container, *pod.get("initContainers", [])]:
        security = each["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["runAsNonRoot"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
        writable = [m["mountPath"] for m in each["volumeMounts"] if not m.get("readOnly")]
        assert writable == [image.data_dir], "the data directory is the only writable path"


def test_sqlite_keeps_one_replica_on_a_kept_volume_and_migrates_in_the_pod() -> None:
    chart = rendered("v4", ())
    deployment = chart.deployment
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # the old pod lets go of the volume
    claim = chart.one("PersistentVolumeClaim")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    [data] = [v for v in chart.pod["volumes"] if v["name"] == "data"]
    assert data["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    [init] = chart.pod["initContainers"]
    assert init["args"] == ["migrate"]
    assert init["image"] == chart.container["image"] == f"panorama:{__version__}"
    assert not chart.all("Job")
    settings = load_settings_from(chart)
    assert settings.database.dialect == "sqlite"
    assert (
        settings.database.url.get_secret_value()
        == f"sqlite+aiosqlite:///{final_stage().data_dir}/panorama.db"
    )
    assert settings.data_dir == final_stage().data_dir


def load_settings_from(chart: Rendered, configmap: str = FULLNAME) -> Any:
    """Panorama's own reading of the ConfigMap's panorama.yaml, in the Deployment's environment."""
    assert Path(chart.container["env"][0]["value"]).name == "panorama.yaml"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "panorama.yaml"
        path.write_text(chart.config_text(configmap))
        return load_settings(path, env=pod_environment(chart.container))


@pytest.mark.parametrize("files", VALUE_SETS)
def test_the_rendered_configuration_loads_in_panorama(files: tuple[Path, ...]) -> None:
    """panorama.yaml from the ConfigMap, with the environment the Deployment gives it, is valid."""
    chart = rendered("v4", files)
    settings = load_settings_from(chart)
    env = pod_environment(chart.container)
    assert env["PANORAMA_CONFIG"] == "/etc/panorama/panorama.yaml"
    mounts = {m["name"]: m["mountPath"] for m in chart.container["volumeMounts"]}
    assert mounts["config"] == "/etc/panorama"
    if files:
        database = fake_secret("PANORAMA_DATABASE_URL", "panorama-database", "url")
        assert settings.database.url.get_secret_value() == database
        webhook = settings.alerts.webhook_token
        assert webhook is not None
        assert webhook.get_secret_value() == fake_secret(
            "PANORAMA_WEBHOOK_TOKEN", "panorama-tokens", "alertmanager"
        )
        assert settings.alerts.public_url == "https://panorama.example.com"


@pytest.mark.parametrize("files", [pytest.param((p,), id=p.stem) for p in CI_VALUES])
def test_no_secret_value_appears_in_any_manifest(files: tuple[Path, ...]) -> None:
    """Every secret Panorama ends up with comes from a Secret reference, and none is in the output."""
    chart = rendered("v4", files)
    assert not chart.all("Secret")
    settings = load_settings_from(chart)
    secrets = settings.secrets()
    references = secret_env(chart.container)
    assert secrets, "the value sets configure secrets"
    made_up = {fake_secret(name, *ref) for name, ref in references.items()}
    for secret in secrets:
        assert any(secret in value for value in made_up), (
            f"a secret Panorama uses did not come from a Secret: {secret}"
        )
    manifests = yaml.safe_dump_all(chart.documents)
    for value in made_up:
        assert value not in manifests
    for name in ("PANORAMA_DATABASE_URL", "PANORAMA_ADMIN_TOKEN", "PANORAMA_WEBHOOK_TOKEN"):
        assert name in references, f"{name} is not taken from a Secret"


def test_more_replicas_need_postgresql_and_roll_without_downtime() -> None:
    chart = rendered("v4", (POSTGRESQL,))
    deployment = chart.deployment
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert "initContainers" not in chart.pod
    assert not chart.all("PersistentVolumeClaim")
    [data] = [v for v in chart.pod["volumes"] if v["name"] == "data"]
    assert "emptyDir" in data
    assert chart.one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert load_settings_from(chart).database.dialect == "postgresql"


def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook_with_postgresql() -> None:
    chart = rendered("v4", (POSTGRESQL,))
    job = chart.one("Job")
    hook_config = chart.one("ConfigMap", f"{FULLNAME}-migrate")
    for hooked in (job, hook_config):
        annotations = hooked["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    # The hook's own copy of the configuration exists before the Job, and equals the release's.
    weights = [int(h["metadata"]["annotations"]["helm.sh/hook-weight"]) for h in (hook_config, job)]
    assert weights[0] < weights[1]
    assert hook_config["data"] == chart.one("ConfigMap", FULLNAME)["data"]
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == ["migrate"]
    assert container["env"] == chart.container["env"]
    assert container["image"] == chart.container["image"]
    assert container["securityContext"] == chart.container["securityContext"]
    assert pod["restartPolicy"] == "Never"
    assert [v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v] == [f"{FULLNAME}-migrate"]
    # Hooks run before the release's ServiceAccount exists: the Job must not need it.
    assert "serviceAccountName" not in pod


def test_the_config_checksum_rolls_the_pods_only_when_the_configuration_changes() -> None:
    base = rendered("v4", (POSTGRESQL,))
    changed = render("v4", POSTGRESQL, values={"config": {"timezone": "Europe/Paris"}})
    unrelated = render("v4", POSTGRESQL, values={"service": {"annotations": {"team": "sre"}}})

    def checksum(chart: Rendered) -> str:
        value: str = chart.deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    assert checksum(base) == hashlib.sha256(base.config_text().encode()).hexdigest()
    assert checksum(changed) != checksum(base)
    assert checksum(unrelated) == checksum(base)
    assert "Europe/Paris" in changed.config_text()


def test_the_prometheus_rule_is_alert_rules_and_promtool_accepts_it(tmp_path: Path) -> None:
    chart = rendered("v4", (EVERYTHING,))
    rule = chart.one("PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    sources = [
        yaml.safe_load(p.read_text())["groups"] for p in sorted((ROOT / "alert_rules").glob("*.rules.yml"))
    ]
    assert sorted(g["name"] for g in rule["spec"]["groups"]) == sorted(g["name"] for s in sources for g in s)
    by_name = {g["name"]: g for g in rule["spec"]["groups"]}
    for groups in sources:
        for group in groups:
            assert by_name[group["name"]] == group
    rules_file = tmp_path / "rendered.rules.yml"
    rules_file.write_text(yaml.safe_dump(rule["spec"]))
    promtool = require_binaries("promtool")["promtool"]
    done = subprocess.run(
        [promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_service_monitor_scrapes_metrics_as_the_job_the_rules_select() -> None:
    chart = rendered("v4", (EVERYTHING,))
    monitor = chart.one("ServiceMonitor")
    service = chart.one("Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert endpoint["path"] == "/metrics"
    [relabel] = endpoint["relabelings"]
    assert relabel == {"action": "replace", "targetLabel": "job", "replacement": "panorama"}
    assert 'job="panorama"' in (ROOT / "alert_rules" / "panorama.rules.yml").read_text()


def test_grafana_gets_every_dashboard_and_the_datasource_through_its_sidecar() -> None:
    chart = rendered("v4", (EVERYTHING,))
    dashboards = [
        c for c in chart.all("ConfigMap") if c["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]
    sources = sorted((ROOT / "dashboards" / "json").glob("*.json"))
    assert len(dashboards) == len(sources)
    served = {name: json.loads(text) for c in dashboards for name, text in c["data"].items()}
    assert served == {p.name: json.loads(p.read_text()) for p in sources}
    [datasource_map] = [
        c for c in chart.all("ConfigMap") if c["metadata"]["labels"].get("grafana_datasource") == "1"
    ]
    provisioning = yaml.safe_load(datasource_map["data"]["panorama-datasource.yaml"])
    [datasource] = provisioning["datasources"]
    assert datasource["uid"] == "panorama"
    assert datasource["type"] == "simpod-json-datasource"
    assert datasource["url"] == f"http://{FULLNAME}.{NAMESPACE}.svc:8000/grafana"
    assert datasource["secureJsonData"] == {"httpHeaderValue1": "Bearer ${PANORAMA_GRAFANA_TOKEN}"}


def test_the_network_policy_opens_the_http_port_to_the_listed_peers() -> None:
    chart = rendered("v4", (EVERYTHING,))
    policy = chart.one("NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == chart.deployment["spec"]["selector"]["matchLabels"]
    [ingress] = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert len(ingress["from"]) == 2
    assert policy["spec"]["egress"][0]["ports"] == [
        {"port": 53, "protocol": "UDP"},
        {"port": 53, "protocol": "TCP"},
    ]
    hpa = chart.one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == chart.deployment["metadata"]["name"]
    assert "replicas" not in chart.deployment["spec"]  # the autoscaler owns it


def test_the_chart_follows_the_repository() -> None:
    """Chart.yaml's appVersion is Panorama's; the chart's copies equal alert_rules/ and dashboards/."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sync_chart.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"the chart is stale; run `make chart`:\n{done.stdout}{done.stderr}"


# --- refusals: what would lose data, or a mistyped value, fails with its path ------------------

REFUSED_COMBINATIONS = [
    pytest.param({"replicaCount": 3}, "replicaCount: 3 replicas need PostgreSQL", id="replicas-on-sqlite"),
    pytest.param(
        {"autoscaling": {"enabled": True}},
        "autoscaling.enabled: autoscaling needs PostgreSQL",
        id="hpa-on-sqlite",
    ),
    pytest.param(
        {"persistence": {"enabled": False}},
        "persistence.enabled: SQLite without a persistent volume",
        id="sqlite-without-volume",
    ),
    pytest.param(
        {"database": {"existingSecret": "db"}},
        "auth: with PostgreSQL every replica needs the same tokens",
        id="postgresql-without-tokens",
    ),
]


@pytest.mark.parametrize("version", HELM_VERSIONS)
@pytest.mark.parametrize(("values", "message"), REFUSED_COMBINATIONS)
def test_combinations_that_lose_data_are_refused(version: str, values: dict[str, Any], message: str) -> None:
    assert message in refusal(version, values=values)


SCHEMA_ERRORS = [
    pytest.param({"replicaCount": "three"}, "replicaCount", "integer", id="type"),
    pytest.param(
        {"config": {"alerts": {"publik_url": "https://x"}}}, "config.alerts", "publik_url", id="config-typo"
    ),
    pytest.param({"config": {"timezon": "UTC"}}, "config", "timezon", id="config-top-level-typo"),
    pytest.param(
        {"config": {"channels": [{"name": "r", "type": "dingtalk", "url": "${U}", "secret": "SEClit3ral"}]}},
        "config.channels[0].secret",
        "pattern",
        id="literal-secret",
    ),
    pytest.param(
        {"config": {"database": {"url": "sqlite+aiosqlite:///x"}}},
        "config.database",
        "url",
        id="chart-owned-key",
    ),
    pytest.param(
        {"prometheusRule": {"groups": ["servces"]}}, "prometheusRule.groups[0]", "", id="unknown-rules-file"
    ),
    pytest.param(
        {
            "auth": {
                "tokens": [{"name": "x", "role": "root", "existingSecret": "s", "existingSecretKey": "k"}]
            }
        },
        "auth.tokens[0].role",
        "",
        id="role",
    ),
    pytest.param({"securityContext": {"runAsNonRoot": False}}, "securityContext.runAsNonRoot", "", id="root"),
]


@pytest.mark.parametrize("version", HELM_VERSIONS)
@pytest.mark.parametrize(("values", "path", "detail"), SCHEMA_ERRORS)
def test_a_mistyped_value_fails_with_its_path(
    version: str, values: dict[str, Any], path: str, detail: str
) -> None:
    error = refusal(version, values=values)
    assert "schema" in error
    assert re.search(rf"(^|\W){re.escape(schema_path(version, path))}(\W|$)", error), error
    assert detail in error


def test_the_schema_takes_what_panorama_takes_in_its_own_words() -> None:
    """Values Panorama reads its own way (``5m``, ``'a="b"'`` matchers, ``info``) are not refused."""
    values = {
        "config": {
            "logging": {"level": "info"},
            "rollups": {"step": 300, "retry_interval": "10m"},
            "routes": [{"matchers": ['severity="critical"', {"name": "team", "op": "=", "value": "pay"}]}],
            "time_intervals": [
                {
                    "name": "nights",
                    "time_intervals": [
                        {"times": [{"start_time": "22:00", "end_time": "24:00"}], "years": [2026]}
                    ],
                }
            ],
        }
    }
    chart = render("v3", values=values)
    assert load_settings_from(chart).logging.level == "INFO"
    render("v4", values=values)


def test_notes_connect_alertmanager_grafana_and_the_wall_screen() -> None:
    """helm 4 prints the NOTES on a client-side dry run (helm 3 wants a cluster for that)."""
    done = run_helm(
        "v4",
        "install",
        RELEASE,
        str(CHART),
        "--dry-run=client",
        "--namespace",
        NAMESPACE,
        "--values",
        str(EVERYTHING),
    )
    assert done.returncode == 0, done.stderr
    notes = done.stdout[done.stdout.index("NOTES:") :]
    service = f"http://{FULLNAME}.{NAMESPACE}.svc:8000"
    assert f"url: {service}/api/v1/alerts/alertmanager" in notes
    assert "credentials_file: /etc/alertmanager/secrets/panorama-tokens/alertmanager" in notes
    assert f"URL:    {service}/grafana" in notes
    assert "https://panorama.example.com/screen?token=<screen token>" in notes
    assert "PANORAMA_GRAFANA_TOKEN" in notes
    assert "sEcReT" not in notes
