"""Which routes an alert group takes, and whether anybody is paged for it now."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from app.alerts import reasons
from app.alerts.config import NamedTimeIntervals, Route
from app.alerts.matchers import Matcher, matches_all
from app.alerts.timeintervals import in_any

log = logging.getLogger("panorama.alerts")


@dataclass(frozen=True)
class Window:
    """A maintenance window, from the configuration or the API."""

    matchers: Sequence[Matcher]
    start: datetime
    end: datetime
    comment: str


def matching_routes(routes: Sequence[Route], labels: Mapping[str, str]) -> list[tuple[int, Route]]:
    """First match wins, unless the matching route says ``continue: true``."""
    matched = []
    for index, route in enumerate(routes):
        if matches_all(route.matchers, labels):
            matched.append((index, route))
            if not route.continue_:
                break
    return matched


def muted_by_interval(route: Route, intervals: Sequence[NamedTimeIntervals], at: datetime) -> str | None:
    by_name = {named.name: named for named in intervals}
    for name in route.mute_time_intervals:
        named = by_name.get(name)
        if named is not None and in_any(named.time_intervals, at):
            return reasons.INTERVAL.format(name=name)
    return None


def in_maintenance(
    windows: Sequence[Window], label_sets: Sequence[Mapping[str, str]], at: datetime
) -> Window | None:
    """The active window that covers every given alert, if any."""
    for window in windows:
        if window.start <= at < window.end and all(
            matches_all(window.matchers, labels) for labels in label_sets
        ):
            return window
    return None


def log_paged_nobody(
    incident_id: int,
    group_key: str,
    labels: Mapping[str, str],
    routes: Sequence[tuple[int, Route]],
    muted: str | None,
) -> None:
    """One log line saying why a new incident pages nobody: without it an alert that no route
    takes is kept and shown, but silently. A deliberate mute (time interval, maintenance) is
    information; an alert no route pages for is a warning, since it is usually a routing gap."""
    if muted is not None:
        level, reason = logging.INFO, f"muted: {muted}"
    elif not routes:
        level, reason = logging.WARNING, "no route matches its labels"
    else:
        names = ", ".join(f"routes[{index}]" for index, _ in routes)
        level, reason = logging.WARNING, f"the matching route ({names}) names no escalation"
    log.log(
        level,
        "incident %s pages nobody: %s",
        incident_id,
        reason,
        extra={
            "incident_id": incident_id,
            "group_key": group_key,
            "alertname": labels.get("alertname"),
            "reason": reason,
        },
    )
