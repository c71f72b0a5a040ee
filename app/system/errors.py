"""Errors of the system endpoints."""

from __future__ import annotations

from app.config import ConfigError
from app.errors import PanoramaError


class InvalidConfig(PanoramaError):
    """A reload found problems; the running configuration stays as it was."""

    status_code = 400
    code = "invalid_config"

    def __init__(self, error: ConfigError) -> None:
        super().__init__(
            f"{error.source}: the configuration was not reloaded: "
            + "; ".join(str(p) for p in error.problems),
            problems=error.lines(),  # as check-config prints them: file:line: key.path: message
        )
