"""``panorama digest NAME [--date DAY] [--dry-run] [--force]``: render a digest, or send it.

A dry run prints the digest as plain text (``--markdown``: as DingTalk shows it) and sends
nothing. Without ``--dry-run`` the digest goes into the outbox once for that day (the running
service's delivery worker sends it); ``--force`` sends it again. Either way, when
``alerts.public_url`` is not set, it says on stderr, in the digest's language, that the links
use the default base (``serve`` sets it from its own port, a command cannot know it); a run that
queues nothing (already sent) says nothing of links.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from app import db, migrations
from app.config import Settings
from app.digests import service
from app.digests.render import WORDS
from app.errors import PanoramaError


def digest(
    settings: Settings, name: str, *, day: str | None, dry_run: bool, force: bool, markdown: bool
) -> int:
    return asyncio.run(_run(settings, name, day, dry_run, force, markdown, sys.stdout, sys.stderr))


async def _run(
    settings: Settings,
    name: str,
    day: str | None,
    dry_run: bool,
    force: bool,
    markdown: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    engine = db.create_engine(settings.database)
    try:
        revision, head = await migrations.current_revision(engine), migrations.head_revision()
        if revision != head:
            print(
                f"the database is at {revision or 'no revision'}, not {head}: run `panorama migrate`",
                file=err,
            )
            return 1
        sessions = db.create_session_factory(engine)
        try:
            if dry_run:
                report = await service.digest(sessions, settings, name, day, given=service.CLI_DAY)
                print(report.markdown if markdown else report.text, file=out)
                _note_default_links(settings, report.locale, err)
                return 0
            answer = await service.send(
                sessions, settings, name, day, force=force, by="cli", given=service.CLI_DAY
            )
            if answer.sent:  # its links went out with the default base
                _note_default_links(settings, answer.digest.locale, err)
        except PanoramaError as exc:
            print(exc.message, file=err)
            return 2
    finally:
        await engine.dispose()
    if answer.sent:
        channels = ", ".join(answer.channels)
        print(f"digest {name} for {answer.day} queued for {channels} (send {answer.sends})", file=out)
        return 0
    print(f"digest {name} for {answer.day} was already sent; --force sends it again", file=out)
    return 0


def _note_default_links(settings: Settings, locale: str, err: TextIO) -> None:
    """Says on ``err``, in ``locale``, that the digest's links use the default base, when
    ``alerts.public_url`` is not in the configuration (``serve`` would set it from its port)."""
    if "public_url" not in settings.alerts.model_fields_set:
        print(WORDS[locale]["default_links"].format(base=settings.alerts.public_url), file=err)
