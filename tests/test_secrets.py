"""Secrets (API tokens, the webhook token and password, robot URLs and secrets, SMTP, database,
backend passwords, the signing key, ntfy tokens and passwords, Twilio and Alibaba Cloud keys,
Apprise URLs) never appear in logs, /readyz, answers, errors or what the
command line prints: a real `panorama` is configured with each and everything it says is searched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from sqlalchemy.engine import make_url

from tests.alerts.support import alert, payload
from tests.harness.intake import applied_sync
from tests.harness.processes import free_port

PANORAMA = Path(sys.executable).parent / "panorama"
SECRETS = {
    "api token": "admin-api-token-secret-4711",
    "env admin token": "env-admin-token-secret-4712",
    "webhook token": "webhook-token-secret-4713",
    "webhook password": "webhook-basic-password-4714",
    "robot access token": "robot-access-token-secret-4715",
    "robot signing secret": "SECrobot-signing-secret-4716",
    "feishu secret": "feishu-signing-secret-4717",
    "webhook channel token": "webhook-channel-bearer-4718",
    "smtp password": "smtp-password-secret-4719",
    "database password": "database-password-secret-4720",
    "elasticsearch password": "es-password-secret-4721",
    "jaeger token": "jaeger-bearer-secret-4722",
    "prometheus password": "prom-password-secret-4723",
    "signing key": "ack-signing-key-secret-4724",
    "ntfy token": "tk_ntfy-token-secret-4725",
    "ntfy password": "ntfy-password-secret-4726",
    "twilio auth token": "twilio-auth-token-secret-4727",
    "aliyun access key secret": "aliyun-access-key-secret-4728",
    "apprise url password": "apprise-url-password-4729",
}


def configuration(closed: str) -> dict[str, object]:
    """Every secret configured, every backend and channel pointed at a closed port (so each fails
    and says why)."""
    s = SECRETS
    return {
        "auth": {"tokens": [{"name": "ops", "role": "admin", "token": s["api token"]}]},
        "prometheus": {
            "url": closed,
            "username": "panorama",
            "password": s["prometheus password"],
            "retries": 0,
        },
        "elasticsearch": {
            "url": closed,
            "username": "panorama",
            "password": s["elasticsearch password"],
            "retries": 0,
        },
        "jaeger": {"url": closed, "bearer_token": s["jaeger token"], "retries": 0},
        "alerts": {
            "webhook_token": s["webhook token"],
            "webhook_basic_auth": {"username": "alertmanager", "password": s["webhook password"]},
            "signing_key": s["signing key"],
            "worker_interval": "100ms",
        },
        "channels": [
            {
                "name": "robot",
                "type": "dingtalk",
                "url": f"{closed}/robot/send?access_token={s['robot access token']}",
                "secret": s["robot signing secret"],
            },
            {
                "name": "lark",
                "type": "feishu",
                "url": f"{closed}/open-apis/bot/v2/hook/x",
                "secret": s["feishu secret"],
            },
            {
                "name": "hook",
                "type": "webhook",
                "url": f"{closed}/hook",
                "bearer_token": s["webhook channel token"],
            },
            {
                "name": "mail",
                "type": "email",
                "from": "panorama@example.com",
                "to": ["ops@example.com"],
                "smtp": {
                    "host": "127.0.0.1",
                    "port": int(closed.rsplit(":", 1)[1]),
                    "starttls": False,
                    "username": "panorama",
                    "password": s["smtp password"],
                },
            },
            {"name": "push", "type": "ntfy", "url": closed, "token": s["ntfy token"]},
            {
                "name": "push-basic",
                "type": "ntfy",
                "url": closed,
                "username": "panorama",
                "password": s["ntfy password"],
            },
            *(
                {
                    "name": name,
                    "type": kind,
                    "account_sid": "AC" + "0" * 32,
                    "auth_token": s["twilio auth token"],
                    "from": "+15550001111",
                    "api_url": closed,
                    "timeout_s": 2,
                }
                for name, kind in (("call", "twilio_call"), ("text", "twilio_sms"))
            ),
            {
                "name": "cn-sms",
                "type": "aliyun_sms",
                "access_key_id": "LTAI-secrets-test",
                "access_key_secret": s["aliyun access key secret"],
                "endpoint": closed,
                "sign_name": "Panorama",
                "template_code": "SMS_1",
            },
            {
                "name": "cn-call",
                "type": "aliyun_call",
                "access_key_id": "LTAI-secrets-test",
                "access_key_secret": s["aliyun access key secret"],
                "endpoint": closed,
                "tts_code": "TTS_1",
                "timeout_s": 2,
            },
            {
                "name": "longtail",
                "type": "apprise",
                "url": f"json://panorama:{s['apprise url password']}@{closed.split('://')[1]}/hook",
                "timeout_s": 3,
            },
        ],
        "users": [
            {
                "name": "oncall",
                "ntfy_topic": "oncall-pages",
                "phone": "+8613800000009",
                "sms": "+8613800000009",
            }
        ],
        "escalations": [
            {
                "name": "all",
                "steps": [
                    {
                        "notify": {
                            "users": ["oncall"],
                            "channels": [
                                "robot",
                                "lark",
                                "hook",
                                "mail",
                                "push",
                                "push-basic",
                                "call",
                                "text",
                                "cn-sms",
                                "cn-call",
                                "longtail",
                            ],
                        }
                    }
                ],
            }
        ],
        "routes": [{"matchers": [], "escalation": "all"}],
    }


def leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def test_no_secret_is_ever_said(tmp_path: Path, postgres_url: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    config_file = tmp_path / "panorama.yaml"
    config_file.write_text(yaml.safe_dump(configuration(closed)))
    database = make_url(postgres_url).set(password=SECRETS["database password"])  # trust auth takes any
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PANORAMA_", "OTEL_"))},
        "PANORAMA_CONFIG": str(config_file),
        "PANORAMA_DATABASE_URL": database.render_as_string(hide_password=False),
        "PANORAMA_ADMIN_TOKEN": SECRETS["env admin token"],
        "PANORAMA_DATA_DIR": str(tmp_path / "data"),
    }
    said: list[str] = []

    def run(*args: str, config: Path = config_file) -> None:
        done = subprocess.run(
            [str(PANORAMA), *args],
            env={**env, "PANORAMA_CONFIG": str(config)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        said.append(f"$ panorama {' '.join(args)} -> {done.returncode}\n{done.stdout}{done.stderr}")

    run("migrate")
    run("check-config")
    broken = tmp_path / "broken.yaml"
    broken_config = configuration(closed)
    broken_config["prometheus"] = {"url": f"ftp://panorama:{SECRETS['prometheus password']}@prometheus:9090"}
    broken_config["auth"] = {"tokens": [{"name": "ops", "role": "boss", "token": SECRETS["api token"]}]}
    broken.write_text(yaml.safe_dump(broken_config))
    run("check-config", str(broken))
    run("serve", config=broken)

    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(PANORAMA), "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    admin = {"Authorization": f"Bearer {SECRETS['api token']}"}
    try:
        _wait_up(base, server, log)
        with httpx.Client(base_url=base, timeout=20) as client:
            hook = {"Authorization": f"Bearer {SECRETS['webhook token']}"}
            created = client.post(
                "/api/v1/alerts/alertmanager", json=payload("Down", [alert("Down")]), headers=hook
            )
            said.append(created.text)
            incident = applied_sync(client, created, token=SECRETS["api token"])
            # the worker tries every channel, each fails and says why (in the incident's timeline)
            _wait_tried(client, f"/api/v1/incidents/{incident}", admin, CHANNELS)
            for path in (
                "/readyz",
                "/api/v1/config",
                f"/api/v1/incidents/{incident}",
                "/api/v1/logs?q=error",
                "/api/v1/traces/4bf92f3577b34da6a3ce929d0e0e4736",
                "/api/v1/reports/services?from=2026-01-01&to=2026-01-02",
                "/grafana/",
            ):
                said.append(f"GET {path}: " + client.get(path, headers=admin).text)
            said.append(client.post("/api/v1/rollups/run", json={"date": "2026-01-01"}, headers=admin).text)
            said.append(
                client.get("/api/v1/whoami", headers={"Authorization": "Bearer wrong-token-value-000"}).text
            )
            basic = httpx.BasicAuth("alertmanager", "wrong-password")
            said.append(client.post("/api/v1/alerts/alertmanager", json={}, auth=basic).text)
            said.append(client.post("/api/v1/alerts/alertmanager", content=b"{not json", headers=hook).text)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=40)
    output = log.read_text()
    everything = "\n".join(said) + output
    assert "delivery_failed" in everything  # the channels really failed, and said so
    for channel in CHANNELS:
        assert f'"channel":"{channel}"' in everything, channel  # each new channel tried, and said so
    assert "elasticsearch" in everything
    assert leaks(everything) == []


CHANNELS = ("push", "push-basic", "call", "text", "cn-sms", "cn-call", "longtail")


def _wait_tried(
    client: httpx.Client, incident: str, headers: dict[str, str], channels: tuple[str, ...]
) -> None:
    """Until the incident's timeline shows a try of every channel (at most 30 s; the assertions
    after it name any channel still missing). Failed tries that will be retried are told in the
    timeline only, not in the log."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        said = client.get(incident, headers=headers).text
        if all(f'"channel":"{channel}"' in said for channel in channels):
            return
        time.sleep(0.2)


def _wait_up(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"panorama serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"panorama serve did not come up:\n{log.read_text()}")
