"""The alerting configuration: the issue's example shape loads; mistakes name their key."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, load_settings

ISSUE_EXAMPLE = """
alerts:
  webhook_token: "..."
  public_url: "https://panorama.example.com"   # used in ack links
users:
  - {name: alice, mobile: "13800000001", email: alice@example.com}
  - {name: bob, mobile: "13800000002"}
channels:
  - {name: ops-robot, type: dingtalk, url: "https://oapi.dingtalk.com/robot/send?access_token=...",
     secret: "SEC..."}
  - {name: ops-wecom, type: wecom, url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=..."}
  - {name: ops-feishu, type: feishu, url: "https://open.feishu.cn/open-apis/bot/v2/hook/...", secret: "..."}
  - {name: ops-slack, type: slack, url: "https://hooks.slack.com/services/..."}
  - {name: ops-mail, type: email, smtp: {host: ..., port: 587, starttls: true, username: ..., password: ...},
     from: "panorama@example.com"}
  - {name: audit, type: webhook, url: "https://..."}
schedules:
  - name: sre
    timezone: Asia/Shanghai
    rotations:                       # later layers win where they are active
      - {users: [alice, bob], length: 1w, start: "2026-01-05T09:00:00"}
escalations:
  - name: default
    steps:
      - notify: {schedule: sre, channels: [ops-robot]}
      - wait: 5m
      - notify: {users: [bob], channels: [ops-robot, ops-mail]}
    repeat: 2
routes:                              # first match wins unless continue: true
  - {matchers: ['severity="critical"', 'service=~"pay.*"'], escalation: default}
  - {matchers: [], escalation: default}
"""


def load(tmp_path: Path, text: str) -> list[str] | None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    try:
        load_settings(path, {})
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    return None


def test_the_issues_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(ISSUE_EXAMPLE)
    settings = load_settings(path, {})
    assert [c.type for c in settings.channels] == ["dingtalk", "wecom", "feishu", "slack", "email", "webhook"]
    assert [str(m) for m in settings.routes[0].matchers] == ['severity="critical"', 'service=~"pay.*"']
    assert settings.escalations[0].steps[1].wait is not None
    assert settings.escalations[0].steps[1].wait.total_seconds() == 300
    assert settings.schedules[0].rotations[0].length.days == 7
    secrets = settings.secrets()
    assert "SEC..." in secrets  # robot secrets and URLs are redacted from logs
    assert "https://oapi.dingtalk.com/robot/send?access_token=..." in secrets


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("routes:\n  - {matchers: ['severity=critical=x']}\n", None),
        ("routes:\n  - {matchers: ['sev~\"x\"']}\n", "routes[0].matchers[0]: 'sev~\"x\"' is not a matcher"),
        (
            "routes:\n  - {matchers: ['a=~\"(\"']}\n",
            "routes[0].matchers[0]: '(' is not a valid regular expression",
        ),
        ("routes:\n  - {escalation: nope}\n", "routes[0].escalation: unknown escalation 'nope'"),
        (
            "escalations:\n  - {name: e, steps: [{wait: 5m, notify: {channels: [x]}}]}\n",
            "escalations[0].steps[0]: a step is either notify",
        ),
        (
            "escalations:\n  - {name: e, steps: [{wait: soon}]}\n",
            "escalations[0].steps[0].wait: 'soon' is not a duration",
        ),
        (
            "channels:\n  - {name: c, type: dingtalk, url: 'ftp://x'}\n",
            "channels[0].url: must be an http:// or https:// URL",
        ),
        ("channels:\n  - {name: c, type: pager}\n", "channels[0]: Input tag 'pager' found using 'type'"),
        (
            "users: [{name: a}]\nschedules:\n  - {name: s, rotations: "
            "[{users: [a, zed], length: 1d, start: '2026-01-01T00:00:00'}]}\n",
            "schedules[0].rotations[0].users[1]: unknown user 'zed'",
        ),
        (
            "schedules:\n  - {name: s, timezone: Mars/Base, rotations: "
            "[{users: [a], length: 1d, start: '2026-01-01T00:00:00'}]}\n",
            "schedules[0].timezone: unknown time zone 'Mars/Base'",
        ),
        (
            "routes:\n  - {matchers: [], heartbeat: {interval: 5m}}\n",
            "routes[0].heartbeat: name an escalation",
        ),
        ("alerts: {public_url: 'panorama.local'}\n", "alerts.public_url: must be an http:// or https:// URL"),
    ],
)
def test_mistakes_name_their_key(tmp_path: Path, text: str, problem: str | None) -> None:
    found = load(tmp_path, text)
    if problem is None:
        assert found is None  # `severity=critical=x` is a bare value "critical=x", as Alertmanager reads it
        return
    assert found is not None
    assert any(p.startswith(problem) for p in found), found
