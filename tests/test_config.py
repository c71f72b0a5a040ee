"""Configuration: defaults, environment overrides, and errors that name their key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from app.config import (
    DEFAULT_DATABASE_URL,
    ConfigError,
    Settings,
    admin_token_notice,
    format_path,
    load_settings,
    resolve_config_path,
    served_url,
    with_generated_admin_token,
    with_public_url,
)
from app.security import Role

ROOT = Path(__file__).resolve().parent.parent
GOOD_TOKEN = "a-long-enough-token-123"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "panorama.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path | None, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env or {})
    return [str(p) for p in caught.value.problems]


def test_defaults_without_a_file() -> None:
    settings = load_settings(None, {})
    assert settings.database.url.get_secret_value() == DEFAULT_DATABASE_URL
    assert settings.database.dialect == "sqlite"
    assert settings.timezone == "UTC"
    assert not settings.prometheus.configured
    assert settings.auth.tokens == []


def test_the_shipped_example_is_valid() -> None:
    settings = load_settings(ROOT / "panorama.example.yaml", {})
    assert settings.timezone == "Asia/Shanghai"
    assert settings.prometheus.url == "http://127.0.0.1:9090"
    assert settings.elasticsearch.index_pattern == "logstash-*"


def test_environment_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "timezone: UTC\nprometheus:\n  url: http://file:9090\n")
    env = {
        "PANORAMA_DATABASE_URL": "postgresql+asyncpg://panorama:pw-secret@db:5432/panorama",
        "PANORAMA_PROMETHEUS_URL": "http://prom:9090/",
        "PANORAMA_ELASTICSEARCH_URL": "https://es:9200",
        "PANORAMA_JAEGER_URL": "http://jaeger:16686",
        "PANORAMA_TIMEZONE": "Europe/Berlin",
        "PANORAMA_LOG_LEVEL": "debug",
    }
    settings = load_settings(path, env)
    assert settings.database.dialect == "postgresql"
    assert settings.prometheus.url == "http://prom:9090"
    assert settings.elasticsearch.url == "https://es:9200"
    assert settings.jaeger.url == "http://jaeger:16686"
    assert settings.timezone == "Europe/Berlin"
    assert settings.logging.level == "DEBUG"
    assert "pw-secret" in settings.secrets()


def test_admin_token_from_the_environment_joins_the_configured_ones(tmp_path: Path) -> None:
    path = write(tmp_path, f"auth:\n  tokens:\n    - {{name: grafana, role: viewer, token: {GOOD_TOKEN}}}\n")
    settings = load_settings(path, {"PANORAMA_ADMIN_TOKEN": "bootstrap-admin-token-xyz"})
    assert [(t.name, t.role) for t in settings.auth.tokens] == [
        ("grafana", Role.VIEWER),
        ("bootstrap-admin", Role.ADMIN),
    ]


def test_a_short_admin_token_from_the_environment_is_named_as_such() -> None:
    found = problems(None, {"PANORAMA_ADMIN_TOKEN": "short"})
    assert found == [
        "auth.tokens[0].token (from PANORAMA_ADMIN_TOKEN): "
        "a literal token must be at least 16 characters long"
    ]


def test_a_bad_override_names_the_variable() -> None:
    found = problems(None, {"PANORAMA_PROMETHEUS_URL": "prom:9090"})
    assert len(found) == 1
    assert found[0].startswith(
        "prometheus.url (from PANORAMA_PROMETHEUS_URL): must be an http:// or https://"
    )


def test_every_problem_is_reported_with_its_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
timezone: Mars/Olympus
prometheus:
  urll: http://typo:9090
  timeout_s: -1
auth:
  tokens:
    - {name: ok, role: viewer, token: a-long-enough-token-123}
    - {name: bad-role, role: superuser, token: another-long-token-456}
    - {name: short, role: admin, token: tiny}
    - {name: hashed, role: operator, token: "sha256:1234"}
unknown_section: {}
""",
    )
    found = problems(path)
    assert (
        "timezone: unknown time zone 'Mars/Olympus'; use an IANA name such as UTC or Asia/Shanghai" in found
    )
    assert any(p.startswith("prometheus.urll: unknown key") for p in found)
    assert any(p.startswith("prometheus.timeout_s: Input should be greater than 0") for p in found)
    assert any(
        p.startswith("auth.tokens[1].role: Input should be 'screen', 'viewer', 'operator' or 'admin'")
        for p in found
    )
    assert "auth.tokens[2].token: a literal token must be at least 16 characters long" in found
    assert "auth.tokens[3].token: a sha256: token must be followed by 64 hexadecimal digits" in found
    assert any(p.startswith("unknown_section: unknown key") for p in found)
    assert len(found) == 7


def test_duplicate_token_names_are_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"auth:\n  tokens:\n    - {{name: a, role: viewer, token: {GOOD_TOKEN}}}\n"
        f"    - {{name: a, role: admin, token: {GOOD_TOKEN}-2}}\n",
    )
    assert problems(path) == ["auth.tokens: token name 'a' is used twice"]


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "timezone: UTC\nprometheus: {url: 'http://p:9090'}\ntimezone: Asia/Shanghai\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    [found] = caught.value.problems
    assert str(found).startswith("timezone: duplicate key (first at line 1)")
    assert found.line == 3


def test_yaml_syntax_errors_are_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "prometheus:\n  url: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    [found] = caught.value.lines()
    assert found.startswith(f"{path}:3: not valid YAML")
    assert "<unicode string>" not in found


# The file: one pass must report all of it, each problem once, with its line.
ALL_AT_ONCE = """\
timezone: UTC
timezone: Asia/Shanghai
prometheus:
  urll: http://prom:9090
auth:
  tokens:
    - {name: g, role: viewer, token: "${GRAFANA_TOKEN_NOT_SET}"}
channels:
  - {name: ops-robot, type: webhook, url: "http://robot.local/hook"}
  - {name: broken, type: webhook, url: "nope"}
escalations:
  - name: default
    steps:
      - notify: {channels: [ops-robt]}
      - notify: {channels: [broken]}
routes:
  - matchers: ['severity="critical"']
    escalation: pager
"""


def test_every_problem_is_found_in_one_pass_each_once_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, ALL_AT_ONCE)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    found = [(p.line, str(p)) for p in caught.value.problems]
    assert found[0] == (
        2,
        "timezone: duplicate key (first at line 1); YAML would keep only the last: remove one",
    )
    assert found[1] == (4, "prometheus.urll: unknown key: did you mean 'url'?")
    assert found[2] == (7, "auth.tokens[0].token: environment variable GRAFANA_TOKEN_NOT_SET is not set")
    assert found[3][0] == 10
    assert found[3][1].startswith("channels[1].url: ")
    # the cross-references, though other sections failed; none about 'broken', itself reported above
    assert found[4:] == [
        (
            14,
            "escalations[0].steps[0].notify.channels[0]: "
            "unknown channel 'ops-robt'; did you mean 'ops-robot'?",
        ),
        (18, "routes[0].escalation: unknown escalation 'pager' (configured: 'default')"),
    ]
    assert caught.value.lines()[0] == f"{path}:2: {found[0][1]}"


def test_cross_references_keep_the_files_indexes_when_an_item_before_them_is_left_out(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
routes:
  - {matchers: ['a="1"'], escalaton: default}
  - {matchers: ['a="2"'], escalation: nowhere}
""",
    )
    assert problems(path) == [
        "routes[0].escalaton: unknown key: did you mean 'escalation'?",
        "routes[1].escalation: unknown escalation 'nowhere': none is configured",
    ]


def test_a_misspelt_reference_to_an_invalid_entry_is_told_its_name_not_that_none_is_configured(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        """\
escalations:
  - {name: oncall, steps: []}
routes:
  - {matchers: [], escalation: oncal}
  - {matchers: [], escalation: zzz}
""",
    )
    found = problems(path)
    assert found[0].startswith("escalations[0].steps: ")  # its own problem
    assert found[1:] == [
        "routes[0].escalation: unknown escalation 'oncal'; did you mean 'oncall'?",
        "routes[1].escalation: unknown escalation 'zzz' (configured: 'oncall')",
    ]


def test_a_misspelt_key_in_a_channel_gets_a_suggestion(tmp_path: Path) -> None:
    path = write(
        tmp_path, "channels:\n  - {name: r, type: dingtalk, url: 'https://oapi.example.com/x', secrte: s}\n"
    )
    assert "channels[0].secrte: unknown key: did you mean 'secret'?" in problems(path)


def test_an_unknown_key_far_from_any_gets_no_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "prometheus:\n  zzzzzz: 1\n")
    [found] = problems(path)
    assert found.startswith("prometheus.zzzzzz: unknown key (not a Panorama setting")


def test_the_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert problems(write(tmp_path, "- a\n- b\n")) == ["the top level must be a mapping of keys"]


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    [found] = problems(tmp_path / "nope.yaml")
    assert found.startswith("cannot read the file")


def test_environment_references_are_expanded(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "prometheus:\n  url: http://${PROM_HOST}:9090\n  bearer_token: ${PROM_TOKEN}\n"
        "elasticsearch:\n  index_pattern: cost-$$-logs\n",
    )
    settings = load_settings(path, {"PROM_HOST": "prom.monitoring", "PROM_TOKEN": "tok-from-env-123"})
    assert settings.prometheus.url == "http://prom.monitoring:9090"
    assert settings.prometheus.bearer_token is not None
    assert settings.prometheus.bearer_token.get_secret_value() == "tok-from-env-123"
    assert settings.elasticsearch.index_pattern == "cost-$-logs"


def test_an_unset_environment_reference_names_key_and_variable_once(tmp_path: Path) -> None:
    path = write(tmp_path, "auth:\n  tokens:\n    - {name: g, role: viewer, token: '${NOT_SET_ANYWHERE}'}\n")
    found = problems(path)
    assert found == ["auth.tokens[0].token: environment variable NOT_SET_ANYWHERE is not set"]


def test_database_url_must_use_an_async_driver() -> None:
    [found] = problems(None, {"PANORAMA_DATABASE_URL": "postgresql://db/panorama"})
    assert found.startswith("database.url (from PANORAMA_DATABASE_URL): must start with sqlite+aiosqlite://")


def test_backend_auth_combinations_are_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "prometheus:\n  url: http://p:9090\n  password: x-password\n"
        "elasticsearch:\n  url: http://e:9200\n  api_key: k\n  username: u\n",
    )
    found = problems(path)
    assert "prometheus: password is set but username is not" in found
    assert "elasticsearch: set one of api_key, username/password or bearer_token" in found


def test_secrets_are_masked_when_printed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"auth:\n  tokens:\n    - {{name: g, role: viewer, token: {GOOD_TOKEN}}}\n"
        "database:\n  url: postgresql+asyncpg://u:db-password-1@db/p\n",
    )
    settings = load_settings(path, {})
    printed = repr(settings) + str(settings.model_dump()) + settings.model_dump_json()
    assert GOOD_TOKEN not in printed
    assert "db-password-1" not in printed
    assert GOOD_TOKEN in settings.secrets()
    assert "db-password-1" in settings.secrets()


def test_display_urls_drop_credentials() -> None:
    settings = load_settings(None, {"PANORAMA_ELASTICSEARCH_URL": "https://elastic:changeme@es.local:9200/"})
    assert settings.elasticsearch.display_url == "https://es.local:9200"
    assert "changeme" in settings.secrets()


def test_config_path_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_config_path(None, {}) is None
    (tmp_path / "panorama.yaml").write_text("{}")
    assert resolve_config_path(None, {}) == Path("panorama.yaml")
    assert resolve_config_path(None, {"PANORAMA_CONFIG": "/etc/p.yaml"}) == Path("/etc/p.yaml")
    assert resolve_config_path("cli.yaml", {"PANORAMA_CONFIG": "/etc/p.yaml"}) == Path("cli.yaml")


def test_format_path() -> None:
    assert format_path(("routes", 2, "matchers", 0)) == "routes[2].matchers[0]"
    assert format_path(("timezone",)) == "timezone"
    assert format_path(()) == ""


def test_generated_admin_token_is_made_once_and_kept_private(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": str(tmp_path / "data")})
    first, made = with_generated_admin_token(settings)
    assert made is not None
    path = made.path
    assert path == tmp_path / "data" / "admin.token"
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
    token = path.read_text().strip()
    assert len(token) >= 32
    assert [(t.name, t.role) for t in first.auth.tokens] == [("generated-admin", Role.ADMIN)]
    notice = admin_token_notice(made)
    assert notice is not None
    assert "an admin token was generated" in notice
    assert str(path) in notice
    assert token not in notice
    again, reused = with_generated_admin_token(settings)
    assert again.auth.tokens[0].token.get_secret_value() == token
    assert reused is not None
    assert not reused.created
    assert admin_token_notice(reused) is None  # the "generated" warning is for the start that made it


def test_the_generated_admin_token_stays_valid_beside_configured_tokens(tmp_path: Path) -> None:
    """Adding a Grafana viewer token must not lock out the admin whose token was generated."""
    with_generated_admin_token(Settings.model_validate({"data_dir": str(tmp_path)}))
    token = (tmp_path / "admin.token").read_text().strip()
    viewer = {"name": "grafana", "role": "viewer", "token": GOOD_TOKEN}
    settings = Settings.model_validate({"data_dir": str(tmp_path), "auth": {"tokens": [viewer]}})
    both, kept = with_generated_admin_token(settings)
    assert [(t.name, t.role) for t in both.auth.tokens] == [
        ("grafana", Role.VIEWER),
        ("generated-admin", Role.ADMIN),
    ]
    assert both.auth.tokens[1].token.get_secret_value() == token
    assert kept is not None
    assert kept.beside_configured
    assert not kept.created
    notice = admin_token_notice(kept)
    assert notice is not None
    assert "delete the file to revoke it" in notice
    (tmp_path / "admin.token").unlink()
    alone, none = with_generated_admin_token(settings)
    assert none is None
    assert [t.name for t in alone.auth.tokens] == ["grafana"]


def test_configured_tokens_mean_no_generated_one(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"x" * 20).hexdigest()
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "auth": {"tokens": [{"name": "g", "role": "viewer", "token": f"sha256:{digest}"}]},
        }
    )
    same, path = with_generated_admin_token(settings)
    assert path is None
    assert same is settings
    assert not (tmp_path / "admin.token").exists()


def test_public_url_follows_the_address_served_unless_set(tmp_path: Path) -> None:
    assert served_url("127.0.0.1", 9000) == "http://127.0.0.1:9000"
    assert served_url("0.0.0.0", 9000) == "http://127.0.0.1:9000"  # noqa: S104
    assert served_url("::1", 9000) == "http://[::1]:9000"
    assert served_url("panorama.lan", 8080) == "http://panorama.lan:8080"
    unset = load_settings(write(tmp_path, "timezone: UTC\n"), {})
    assert with_public_url(unset, "http://127.0.0.1:9000").alerts.public_url == "http://127.0.0.1:9000"
    assert with_public_url(unset, None).alerts.public_url == "http://127.0.0.1:8000"
    explicit = load_settings(write(tmp_path, "alerts: {public_url: 'https://panorama.example.com/'}\n"), {})
    assert (
        with_public_url(explicit, "http://127.0.0.1:9000").alerts.public_url == "https://panorama.example.com"
    )


def test_references_inside_an_entry_with_a_bad_value_are_still_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
users:
  - {name: alice}
schedules:
  - name: sre
    timezone: Mars/Base
    rotations: [{users: [alice, carol], length: 1w, start: "2026-01-05T09:00:00"}]
""",
    )
    found = problems(path)
    assert found[0].startswith("schedules[0].timezone: unknown time zone 'Mars/Base'")
    assert found[1:] == ["schedules[0].rotations[0].users[1]: unknown user 'carol' (configured: 'alice')"]
