"""Why an incident pages nobody (``incidents.muted`` and its ``muted`` timeline entry), written and
read in one place.

The reason is stored as English text (the API answers it as such; older rows keep theirs); people
read it in their language. :func:`parse` turns a stored reason back into its kind and values so
that pages say it in their words; a reason it does not know is shown as stored. No imports
beyond the standard library: the web shell reads it too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

NO_ROUTE = "no route pages anybody"
INTERVAL = "mute time interval {name}"
MAINTENANCE = "maintenance until {until}: {comment}"  # the comment may be empty: then no ": "

_INTERVAL = re.compile(r"mute time interval (?P<name>.+)", re.DOTALL)
_MAINTENANCE = re.compile(r"maintenance until (?P<until>\S+?)(?:: (?P<comment>.*))?", re.DOTALL)


def maintenance(until: datetime, comment: str) -> str:
    return MAINTENANCE.format(until=until.isoformat(), comment=comment).rstrip(": ")


@dataclass(frozen=True)
class Muted:
    kind: str  # "no_route", "interval", "maintenance", or "other" (shown as stored)
    name: str = ""  # the time interval's
    until: datetime | None = None  # the maintenance window's end
    comment: str = ""  # the maintenance window's, or the stored text of another reason


def parse(reason: str) -> Muted:
    if reason == NO_ROUTE:
        return Muted("no_route")
    if found := _INTERVAL.fullmatch(reason):
        return Muted("interval", name=found["name"])
    if found := _MAINTENANCE.fullmatch(reason):
        try:
            until = datetime.fromisoformat(found["until"])
        except ValueError:
            return Muted("other", comment=reason)
        return Muted("maintenance", until=until, comment=found["comment"] or "")
    return Muted("other", comment=reason)
