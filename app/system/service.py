"""The running configuration: showing it (secrets masked) and reloading it from its file."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from app import db
from app.backends.registry import BACKEND_NAMES
from app.config import (
    ConfigError,
    Settings,
    admin_token_notice,
    load_settings,
    resolve_config_path,
    with_generated_admin_token,
)
from app.context import AppContext
from app.system.errors import InvalidConfig
from app.system.schemas import EffectiveConfig, ReloadResult

log = logging.getLogger("panorama.config")


def source_of(context: AppContext) -> str:
    return str(context.config_path) if context.config_path else "(defaults)"


def effective_config(context: AppContext) -> EffectiveConfig:
    return EffectiveConfig(source=source_of(context), config=masked(context.settings))


def masked(settings: Settings) -> dict[str, Any]:
    """The settings as JSON with every secret masked and credentials taken out of URLs."""
    data = settings.model_dump(mode="json")
    data["database"]["url"] = db.display_url(settings.database)
    for name in BACKEND_NAMES:
        data[name]["url"] = getattr(settings, name).display_url
    return data


def _read(context: AppContext) -> tuple[Settings, str | None]:
    """The file's settings, with the generated admin token while ``admin.token`` holds one, and
    what to tell about that token (made just now, or valid beside configured tokens)."""
    settings, token_file = with_generated_admin_token(load_settings(context.config_path))
    return settings, admin_token_notice(token_file) if token_file is not None else None


async def reload(context: AppContext) -> ReloadResult:
    """Re-reads the configuration; on any problem the running one stays untouched."""
    async with context.reload_lock:
        try:
            new, token_notice = await asyncio.to_thread(_read, context)
        except ConfigError as exc:
            log.warning("configuration reload refused", extra={"problems": exc.lines()})
            raise InvalidConfig(exc) from None
        warnings = []
        if token_notice is not None:
            log.warning(token_notice)
            warnings.append(token_notice)
        if new.database != context.settings.database:
            warnings.append("database settings changed; they take effect after a restart")
        if context.config_path is None and (found := resolve_config_path(None, os.environ)) is not None:
            # started before the file was written (a first `make run`): a reload keeps the defaults
            warnings.append(
                f"{found} exists, but this process started without a configuration file and keeps "
                "its defaults: restart it to read the file"
            )
        changed = context.apply(new)
        log.info("configuration reloaded", extra={"source": source_of(context), "changed": changed})
        return ReloadResult(source=source_of(context), changed=changed, warnings=warnings)
