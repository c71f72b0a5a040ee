"""The names an incident's timeline and ``acknowledged_by`` give to acts that name nobody, and how
people are shown them.

Why a module of its own: the stored names are keys (the on-call history counts an act by a group's
ack link for the incident, not a person) and values of the API; pages and notifications show them
in the reader's language. Both read them here, without the database code of :mod:`app.alerts.ack`.
"""

from __future__ import annotations

LINK_ACTOR = "ack link"  # who acknowledged through a link that names nobody (posted to a group)
CALL_ACTOR = "phone call ({number})"  # a key pressed on a call that names nobody
_CALL_PREFIX, _CALL_SUFFIX = CALL_ACTOR.split("{number}")


def actor_label(actor: str, *, link: str, call: str) -> str:
    """Who acted, in the reader's words: a group's ack link is ``link`` ("确认链接"), an unnamed call
    ``call`` with its ``{number}``; a person's or a token's name stays as it is. The stored names
    are the on-call history's keys and the API's values, never shown to people as such."""
    if actor == LINK_ACTOR:
        return link
    if actor.startswith(_CALL_PREFIX) and actor.endswith(_CALL_SUFFIX):
        return call.format(number=actor[len(_CALL_PREFIX) : -len(_CALL_SUFFIX)])
    return actor
