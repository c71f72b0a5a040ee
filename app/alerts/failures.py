"""What went wrong delivering a message, as data a page can say in its reader's language.

A failed :class:`~app.alerts.channels.base.SendResult` carries two wordings, as Panorama's errors
do (:mod:`app.errors`): ``detail``, English and machine-stable (the outbox row's ``last_error``,
the timeline entry's ``error``, the API, the logs), and a :class:`Failure`: the kind of failure,
its values (a status, a robot's code, seconds) and what the far end said in its own words (an HTTP
body, a robot's ``errmsg``, an exception's text), kept apart and verbatim. The delivery worker
stores it in the timeline entry (``failure``) beside ``error``; a page says the kind as a
:class:`~app.errors.Phrase` (``delivery.failure.<kind>``) and shows the far end's words as theirs.
A dead letter also records why it was given up (``gave_up``), said as ``delivery.gave_up.<why>``.

Entries recorded before this have only the English text: :func:`parse` finds nothing there, and
pages show the text as it is. Nothing here knows about languages or HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from app.errors import Phrase

Kind = Literal[
    "network",  # no connection (refused, DNS, TLS, reset): said = the error's own text
    "timeout",  # no answer in time: seconds
    "bad_url",  # a URL the HTTP client cannot use: said = why
    "http_status",  # an HTTP status that is not success: status, said = the body
    "redirect",  # a 3xx (not followed): status
    "refused",  # refused inside the usual answer: code (a robot's errcode), said = its errmsg; robot
    # (dingtalk, wecom, feishu, twilio, aliyun) when the channel knows the code:
    # delivery.code.<robot>.<code> says it
    "unexpected_answer",  # an answer that is not the far end's documented shape: said = the body
    "too_large",  # over the far end's limit even without alerts: unit (bytes, characters, blocks), limit
    "not_configured",  # the channel is no longer configured
    "pages_only",  # a notice to a channel that carries pages only: channel_type
    "calls_only",  # a call carries a page only
    "no_contact",  # the paged people have no phone, mobile, topic...: people, contact
    "not_answered",  # a call nobody answered: said = the call's final state, as the provider names it
    "target_refused",  # the target did not take it (Apprise says no more): nothing
    "no_recipients",  # an e-mail with nobody to send it to
    "recipients_refused",  # the mail server refused every recipient: said = its replies
    "auth_failed",  # the server refused Panorama's credentials: code, said = its reply
    "tls_failed",  # TLS could not be set up: said = why
    "not_supported",  # the server does not support what was asked (STARTTLS, AUTH): said = why
    "unexpected_error",  # a bug while sending: said = the exception
    "other",  # a failure the far end names in its own words only: said
]
GaveUp = Literal["not_retryable", "too_old", "not_configured"]
Value = str | int | float


@dataclass(frozen=True)
class Failure:
    """One failed delivery: its ``kind``, the ``values`` its phrase is filled with, and ``said``,
    the far end's own words (already cut to a readable length and with secrets hidden)."""

    kind: Kind
    said: str = ""
    values: Mapping[str, Value] = field(default_factory=dict)

    def stored(self) -> dict[str, object]:
        """The form kept in a timeline entry's ``failure``: ``{"kind", **values, "said"}``."""
        return {"kind": self.kind, **self.values, **({"said": self.said} if self.said else {})}

    def phrase(self) -> Phrase:
        """Panorama's words about it (the far end's are :attr:`said`, shown apart); a ``unit`` picks
        the wording (``delivery.failure.too_large.bytes``)."""
        unit = self.values.get("unit")
        key = f"delivery.failure.{self.kind}" + (f".{unit}" if unit else "")
        values: dict[str, object] = {k: v for k, v in self.values.items() if k not in ("unit", "robot")}
        robot = self.values.get("robot")
        if self.kind == "refused" and robot:  # a code its channel knows: what it means, said too
            return Phrase(
                "delivery.failure.refused.known",
                **values,
                meaning=Phrase(f"delivery.code.{robot}.{values['code']}"),
            )
        return Phrase(key, **values)


def failure(kind: Kind, said: str = "", **values: Value) -> Failure:
    """``failure("http_status", body, status=503)``; a whole number of seconds kept as one (10, not 10.0)."""
    return Failure(kind, said, {k: _whole(v) for k, v in values.items()})


def refused(said: str, code: int | str, robot: str, *, known: bool) -> Failure:
    """A robot's (or a provider's: Twilio, Alibaba Cloud) refusal with its ``code``; ``known``: the
    channel knows what the code means (the catalogue says it, ``delivery.code.<robot>.<code>``)."""
    return failure("refused", said, code=code, robot=robot) if known else failure("refused", said, code=code)


def people(names: Sequence[str]) -> str:
    """Who was paged, as a failure names them (``no_contact``): their names, or "—" for nobody."""
    return ", ".join(names) or "—"


def _whole(value: Value) -> Value:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def parse(stored: object) -> Failure | None:
    """A timeline entry's ``failure`` back into a :class:`Failure`; None for an entry recorded
    before failures were (only the English ``error`` then) or one this version does not know."""
    if not isinstance(stored, Mapping) or stored.get("kind") not in KINDS:
        return None
    said = stored.get("said")
    values = {
        str(k): v
        for k, v in stored.items()
        if k not in ("kind", "said") and isinstance(v, str | int | float) and not isinstance(v, bool)
    }
    return Failure(stored["kind"], said if isinstance(said, str) else "", values)


def gave_up_phrase(why: object, attempts: object) -> Phrase | None:
    """Why a dead letter was given up, for a page (``delivery.gave_up.<why>``); None when the entry
    does not say (one recorded before: its English ``reason`` is shown as it is)."""
    if why not in GAVE_UP:
        return None
    return Phrase(f"delivery.gave_up.{why}", n=attempts if isinstance(attempts, int) else "?")


KINDS: frozenset[str] = frozenset(get_args(Kind))
GAVE_UP: frozenset[str] = frozenset(get_args(GaveUp))
