"""One Settings object, read from a YAML file with PANORAMA_* environment overrides.

The file is validated whole before Panorama starts: every problem is reported
with the path of the offending key (``auth.tokens[1].role: ...``), unknown keys
are errors, and secrets are held as ``SecretStr`` so they never print.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from app.alerts.channels.config import ChannelConfig
from app.alerts.config import (
    AlertsSettings,
    Escalation,
    MaintenanceWindow,
    NamedTimeIntervals,
    Route,
    Schedule,
    User,
    cross_check,
)

# ConfigError, ConfigProblem and format_path live in app/config_file.py and are imported from here too.
from app.config_file import ConfigError as ConfigError
from app.config_file import ConfigProblem as ConfigProblem
from app.config_file import (
    Document,
    Loc,
    cross_problems,
    parse_path,
    read_document,
    root_lines,
    suggestion,
)
from app.config_file import format_path as format_path
from app.config_types import Model
from app.correlation.config import CorrelationSettings
from app.digests.config import DigestConfig
from app.digests.config import cross_check as digests_cross_check
from app.grafana.config import GrafanaSettings
from app.rollups.config import RollupSettings, SloObjective
from app.screen.config import ScreenSettings
from app.screen.config import cross_check as screen_cross_check
from app.security import Role, generate_token, token_spec_problem
from app.server_config import ServerSettings
from app.web.config import WebSettings

DEFAULT_CONFIG_FILE = Path("panorama.yaml")
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/panorama.db"

# Environment variables that override one key each (what deployments set per environment).
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "PANORAMA_DATABASE_URL": ("database", "url"),
    "PANORAMA_PROMETHEUS_URL": ("prometheus", "url"),
    "PANORAMA_ELASTICSEARCH_URL": ("elasticsearch", "url"),
    "PANORAMA_ELASTICSEARCH_USERNAME": ("elasticsearch", "username"),
    "PANORAMA_ELASTICSEARCH_PASSWORD": ("elasticsearch", "password"),
    "PANORAMA_ELASTICSEARCH_API_KEY": ("elasticsearch", "api_key"),
    "PANORAMA_JAEGER_URL": ("jaeger", "url"),
    "PANORAMA_TIMEZONE": ("timezone",),
    "PANORAMA_LOG_LEVEL": ("logging", "level"),
    "PANORAMA_DATA_DIR": ("data_dir",),
}
ADMIN_TOKEN_ENV = "PANORAMA_ADMIN_TOKEN"
CONFIG_PATH_ENV = "PANORAMA_CONFIG"
BOOTSTRAP_ADMIN_NAME = "bootstrap-admin"
GENERATED_TOKEN_NAME = "generated-admin"
GENERATED_TOKEN_FILE = "admin.token"

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class BackendSettings(Model):
    """How to reach one backend. A backend without ``url`` is not configured."""

    url: str | None = Field(default=None, description="Base URL, e.g. http://prometheus:9090")
    timeout_s: float = Field(default=30.0, gt=0, le=600, description="Per-call timeout")
    connect_timeout_s: float = Field(default=3.0, gt=0, le=60)
    retries: int = Field(default=2, ge=0, le=10, description="Retries of idempotent reads")
    retry_backoff_s: float = Field(default=0.2, ge=0, le=10, description="First retry delay; doubles")
    username: str | None = None
    password: SecretStr | None = None
    bearer_token: SecretStr | None = None
    tls_verify: bool = True
    ca_file: str | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = value.replace(f":{parts.password}@", ":***@") if parts.password else value
            raise ValueError(f"must be an http:// or https:// URL with a host, got {shown!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_auth(self) -> BackendSettings:
        if self.bearer_token is not None and self.username is not None:
            raise ValueError("set either username/password or bearer_token, not both")
        if (self.password is not None) and self.username is None:
            raise ValueError("password is set but username is not")
        return self

    @property
    def configured(self) -> bool:
        return self.url is not None

    @property
    def display_url(self) -> str | None:
        """The URL without any credentials it may embed, fit for logs and API answers."""
        if self.url is None:
            return None
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class PrometheusSettings(BackendSettings):
    pass


class ElasticsearchSettings(BackendSettings):
    api_key: SecretStr | None = None
    index_pattern: str = Field(default="logstash-*", description="Indices holding the logs")

    @model_validator(mode="after")
    def _check_api_key(self) -> ElasticsearchSettings:
        if self.api_key is not None and (self.username is not None or self.bearer_token is not None):
            raise ValueError("set one of api_key, username/password or bearer_token")
        return self


class JaegerSettings(BackendSettings):
    ui_url: str | None = Field(
        default=None,
        description="Jaeger's UI as browsers reach it; pages then link each trace there too",
    )

    @field_validator("ui_url")
    @classmethod
    def _check_ui_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value.rstrip("/")


class DatabaseSettings(Model):
    url: SecretStr = Field(default=SecretStr(DEFAULT_DATABASE_URL))
    pool_size: int = Field(default=5, ge=1, le=100)
    max_overflow: int = Field(default=10, ge=0, le=100)
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if not raw.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// (embedded) or postgresql+asyncpg:// (production)"
            )
        return value

    @property
    def dialect(self) -> Literal["sqlite", "postgresql"]:
        return "sqlite" if self.url.get_secret_value().startswith("sqlite") else "postgresql"


class ApiToken(Model):
    name: str = Field(pattern=_NAME_PATTERN)
    role: Role
    token: SecretStr = Field(description="The token itself, or sha256:<hex> of it")

    @field_validator("token")
    @classmethod
    def _check_token(cls, value: SecretStr) -> SecretStr:
        problem = token_spec_problem(value.get_secret_value())
        if problem:
            raise ValueError(problem)
        return value


class AuthSettings(Model):
    tokens: list[ApiToken] = Field(default_factory=list)

    @field_validator("tokens")
    @classmethod
    def _unique_names(cls, tokens: list[ApiToken]) -> list[ApiToken]:
        seen: set[str] = set()
        for token in tokens:
            if token.name in seen:
                raise ValueError(f"token name {token.name!r} is used twice")
            seen.add(token.name)
        return tokens


class LoggingSettings(Model):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class Settings(Model):
    timezone: str = Field(default="UTC", description="IANA time zone of report days")
    data_dir: str = Field(default="./data", description="Where local state lives (SQLite, generated token)")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    elasticsearch: ElasticsearchSettings = Field(default_factory=ElasticsearchSettings)
    jaeger: JaegerSettings = Field(default_factory=JaegerSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    correlation: CorrelationSettings = Field(default_factory=CorrelationSettings)
    rollups: RollupSettings = Field(default_factory=RollupSettings)
    slo: list[SloObjective] = Field(default_factory=list, description="Service level objectives")
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    users: list[User] = Field(default_factory=list)
    channels: list[ChannelConfig] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)
    escalations: list[Escalation] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list, description="First match wins unless continue: true")
    time_intervals: list[NamedTimeIntervals] = Field(default_factory=list)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    web: WebSettings = Field(default_factory=WebSettings)
    grafana: GrafanaSettings = Field(default_factory=GrafanaSettings)
    screen: ScreenSettings = Field(default_factory=ScreenSettings)
    digests: list[DigestConfig] = Field(default_factory=list, description="Daily ops digests (运维日报)")

    @model_validator(mode="after")
    def _references(self) -> Settings:
        problems = cross_check(self) + screen_cross_check(self.screen, [s.name for s in self.schedules])
        problems += digests_cross_check(
            self.digests, {c.name: c.type for c in self.channels}, [s.name for s in self.schedules]
        )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as UTC or Asia/Shanghai"
            ) from None
        return value

    @property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def secrets(self) -> list[str]:
        """Every secret value in the settings, for log redaction.

        A secret URL (a chat robot's) counts whole and by each credential it carries
        (password, query parameter values), since logs show it with more parameters
        appended. The database URL is not secret as a whole (its password-free form
        is logged), only its password.
        """
        found: list[str] = []
        _collect_secrets(self, found)
        database = self.database.url.get_secret_value()
        return [s for s in found if len(s) >= 4 and s != database]


def _collect_secrets(value: Any, found: list[str]) -> None:
    if isinstance(value, SecretStr):
        raw = value.get_secret_value()
        found.append(raw)
        found.extend(_url_credentials(raw))
    elif isinstance(value, str):
        found.extend(_url_credentials(value, query=False))
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _collect_secrets(getattr(value, name), found)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect_secrets(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            _collect_secrets(item, found)


def _url_credentials(raw: str, *, query: bool = True) -> list[str]:
    """The password of a URL and, when ``query``, the values of its query parameters."""
    if "://" not in raw:
        return []
    try:
        parts = urlsplit(raw)
        password = parts.password
    except ValueError:
        return []
    found = [password] if password else []
    if query:
        found.extend(value for _, value in parse_qsl(parts.query) if len(value) >= 8)
    return found


def resolve_config_path(cli_path: str | None, env: Mapping[str, str]) -> Path | None:
    """``--config``, else ``$PANORAMA_CONFIG``, else ``./panorama.yaml`` when it exists."""
    if cli_path:
        return Path(cli_path)
    if env.get(CONFIG_PATH_ENV):
        return Path(env[CONFIG_PATH_ENV])
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def _expand_env_refs(value: Any, env: Mapping[str, str], loc: Loc, unset: dict[Loc, list[str]]) -> Any:
    """Replaces ``${VAR}`` in string values with the environment's value (``$$`` is a ``$``);
    ``unset`` collects, by key path, the variables that are not set."""
    if isinstance(value, dict):
        return {k: _expand_env_refs(v, env, (*loc, str(k)), unset) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env_refs(v, env, (*loc, i), unset) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        if name not in env:
            unset.setdefault(loc, []).append(name)
            return ""
        return env[name]

    return _ENV_REF.sub(substitute, value)


def _apply_env_overrides(
    data: dict[str, Any], env: Mapping[str, str]
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    origins: dict[tuple[str, ...], str] = {}
    for var, path in ENV_OVERRIDES.items():
        value = env.get(var)
        if value is None or value == "":
            continue
        node = data
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[path[-1]] = value
        origins[path] = var
    admin = env.get(ADMIN_TOKEN_ENV)
    if admin:
        auth = data.setdefault("auth", {})
        if isinstance(auth, dict):
            tokens = auth.setdefault("tokens", [])
            if isinstance(tokens, list):
                tokens.append({"name": BOOTSTRAP_ADMIN_NAME, "role": "admin", "token": admin})
                origins[("auth", "tokens", str(len(tokens) - 1))] = ADMIN_TOKEN_ENV
    return data, origins


CHANNEL_TYPES = frozenset(
    {
        "dingtalk",
        "wecom",
        "feishu",
        "slack",
        "email",
        "webhook",
        "ntfy",
        "twilio_sms",
        "twilio_call",
        "aliyun_sms",
        "aliyun_call",
        "apprise",
    }
)


def _without_union_tags(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Pydantic puts the ``type`` of a channel into the path (``channels[0].dingtalk.url``): drop it."""
    kept: list[str | int] = []
    for part in loc:
        if part in CHANNEL_TYPES and kept and isinstance(kept[-1], int):
            continue
        kept.append(part)
    return tuple(kept)


def _problems_from(
    errors: list[ErrorDetails], origins: dict[tuple[str, ...], str], document: Document, unset: set[Loc]
) -> list[ConfigProblem]:
    problems = []
    for error in errors:
        loc = _without_union_tags(tuple(error["loc"]))
        message = error["msg"]
        if not loc and error["type"] == "value_error":
            # Cross-reference problems: one per line, each starting with its own path.
            for said in root_lines(message):
                path, _, text = said.partition(": ")
                problems.append(ConfigProblem(path, text, document.line_of(parse_path(path))))
            continue
        if any(loc[: len(where)] == where for where in unset):
            continue  # the unset variable is the problem, already reported
        if error["type"] == "extra_forbidden":
            close = suggestion(Settings, tuple(error["loc"]))
            message = (
                f"unknown key: did you mean {close!r}?"
                if close
                else "unknown key (not a Panorama setting; check its spelling and indentation)"
            )
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        path, line = format_path(loc), document.line_of(loc)
        for origin_path, var in origins.items():
            if tuple(str(p) for p in loc[: len(origin_path)]) == origin_path:
                path, line = f"{path} (from {var})", None
                break
        problems.append(ConfigProblem(path, message, line))
    return problems


def load_settings(path: Path | None, env: Mapping[str, str] | None = None) -> Settings:
    """Reads, overrides and validates the configuration; raises ConfigError listing every problem,
    each once, with its line in the file (see ``app/config_file.py``)."""
    environ = os.environ if env is None else env
    source = str(path) if path else "(defaults)"
    document = read_document(path) if path else Document({}, {}, [])
    unset: dict[Loc, list[str]] = {}
    expanded = _expand_env_refs(document.data, environ, (), unset)
    problems = list(document.problems)
    problems += [
        ConfigProblem(format_path(loc), f"environment variable {name} is not set", document.line_of(loc))
        for loc, names in unset.items()
        for name in names
    ]
    data, origins = _apply_env_overrides(expanded, environ)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        problems += _problems_from(errors, origins, document, set(unset))
        if any(error["loc"] for error in errors):  # the cross-references were not checked yet
            for loc, text in cross_problems(Settings.model_validate, data, errors):
                problems.append(ConfigProblem(format_path(loc), text, document.line_of(loc)))
        raise ConfigError(source, problems) from None
    if problems:
        raise ConfigError(source, problems)
    return settings


WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - names the wildcard, binds nothing


def served_url(host: str, port: int) -> str:
    """The URL of the address ``panorama serve`` listens on; a wildcard address reads as 127.0.0.1."""
    shown = "127.0.0.1" if host in WILDCARD_HOSTS else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def with_public_url(settings: Settings, served: str | None) -> Settings:
    """``alerts.public_url`` from the address served (``served_url``) when the file does not set it,
    so that ``serve --port 9000`` makes ack links on port 9000. An explicit value always wins."""
    if served is None or "public_url" in settings.alerts.model_fields_set:
        return settings
    alerts = settings.alerts.model_copy(update={"public_url": served})
    return settings.model_copy(update={"alerts": alerts})


@dataclass(frozen=True)
class GeneratedAdminToken:
    """The admin token kept in ``data_dir/admin.token``, and whether this call made it."""

    path: Path
    created: bool
    beside_configured: bool  # auth.tokens are configured too: the file's token still works


def with_generated_admin_token(settings: Settings) -> tuple[Settings, GeneratedAdminToken | None]:
    """Adds the admin token kept in ``data_dir/admin.token``, making it first when no token is configured.

    A first run on a laptop then works without editing anything; the token is written to a
    file only its owner can read, and never logged. The token stays valid for as long as the
    file holds it, also once ``auth.tokens`` are configured (a viewer token added for Grafana
    must not lock out the admin who added it): deleting the file revokes it, at the next reload
    or start. Returns the settings with that token, and where it came from (None when tokens are
    configured and there is no file).
    """
    path = Path(settings.data_dir) / GENERATED_TOKEN_FILE
    configured = settings.auth.tokens
    created = False
    if path.is_file():
        token = path.read_text(encoding="utf-8").strip()
    elif configured:
        return settings, None
    else:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        token = generate_token()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(token + "\n")
        created = True
    if (problem := token_spec_problem(token)) is not None:
        raise ConfigError(
            str(path), [ConfigProblem("", f"the generated admin token file is unusable: {problem}")]
        )
    if any(t.name == GENERATED_TOKEN_NAME for t in configured):
        raise ConfigError(
            str(path),
            [
                ConfigProblem(
                    "auth.tokens", f"the name {GENERATED_TOKEN_NAME!r} belongs to the token in this file"
                )
            ],
        )
    generated = ApiToken.model_validate({"name": GENERATED_TOKEN_NAME, "role": Role.ADMIN, "token": token})
    tokens = AuthSettings(tokens=[*configured, generated])
    found = GeneratedAdminToken(path=path, created=created, beside_configured=bool(configured))
    return settings.model_copy(update={"auth": tokens}), found


def admin_token_notice(found: GeneratedAdminToken) -> str | None:
    """What to tell the operator about the token in ``admin.token``: that it was just made, or that
    it still works beside the configured tokens; None when it is simply in use again."""
    if found.created:
        return (
            f"no API tokens are configured: an admin token was generated; read it from {found.path} "
            "(configure auth.tokens or PANORAMA_ADMIN_TOKEN for a real deployment)"
        )
    if found.beside_configured:
        return (
            f"the generated admin token in {found.path} stays valid beside auth.tokens; "
            "delete the file to revoke it"
        )
    return None
