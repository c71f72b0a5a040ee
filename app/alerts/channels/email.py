"""E-mail over SMTP (STARTTLS or implicit TLS), with an async client.

The message is multipart/alternative (plain text and HTML) to ``to`` plus the
mentioned users' addresses. Every message of an incident carries the same
``References`` header, so mail clients thread an incident's trigger, updates and
resolution together.

Classification follows SMTP's own codes: 4xx (and a dropped or slow connection)
is temporary, 5xx is final. A TLS or authentication failure is a configuration
problem and final; so is a message nobody is addressed to.
"""

from __future__ import annotations

import re
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from functools import lru_cache
from typing import Literal

import aiosmtplib
from pydantic import Field, SecretStr, model_validator

from app.alerts.channels.base import Digest, Message, Notice, Person, SendResult
from app.alerts.channels.common import ChannelBase
from app.alerts.channels.dialects import PLAIN
from app.alerts.channels.notices import lay_out, plain
from app.alerts.channels.render import render
from app.alerts.channels.views import Prepared
from app.alerts.failures import failure
from app.config_types import Model

MAX_ALERTS = 100
MAX_DIGEST_ITEMS = 100
SUBJECT_CHARS = 200
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")


class SmtpSettings(Model):
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    tls: bool = Field(default=False, description="Implicit TLS (port 465) instead of STARTTLS")
    username: str | None = None
    password: SecretStr | None = None
    ca_file: str | None = Field(
        default=None,
        description="PEM file of the CA that signed the server's certificate; default: the system's CAs",
    )

    @model_validator(mode="after")
    def _one_tls(self) -> SmtpSettings:
        if self.tls and self.starttls:
            raise ValueError("set either tls (implicit, port 465) or starttls, not both")
        return self


class EmailConfig(ChannelBase):
    type: Literal["email"]
    smtp: SmtpSettings
    from_: str = Field(alias="from", description="Sender address")
    to: list[str] = Field(
        default_factory=list, description="Always sent to; plus the mentioned users' e-mails"
    )


def recipients(config: EmailConfig, message: Message | Notice) -> list[str]:
    """``to``, then the mentioned users' addresses; each once, malformed ones skipped."""
    found: dict[str, str] = {}
    for address in [*config.to, *(p.email for p in message.mentions if p.email)]:
        address = address.strip()
        if _ADDRESS.match(address):
            found.setdefault(address.lower(), address)
    return list(found.values())


def compose(config: EmailConfig, message: Message, to: list[str]) -> EmailMessage:
    """The multipart message: subject, plain text and HTML from the e-mail templates."""
    prepared = Prepared(message, PLAIN, _name, multiline=True)
    cap = MAX_DIGEST_ITEMS if isinstance(message, Digest) else MAX_ALERTS
    view = prepared.view(min(cap, prepared.total))
    subject = PLAIN.text(render("email.subject.j2", v=view, t=view.t), SUBJECT_CHARS)
    domain = parseaddr(config.from_)[1].rpartition("@")[2] or "panorama.invalid"
    mail = EmailMessage()
    mail["Subject"] = subject
    mail["From"] = config.from_
    mail["To"] = ", ".join(to)
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = make_msgid(domain=domain)
    if not isinstance(message, Digest):
        mail["References"] = f"<incident-{message.incident_id}@{domain}>"
    mail.set_content(render("email.txt.j2", v=view, t=view.t) + "\n")
    mail.add_alternative(render("email.html.j2", v=view, t=view.t) + "\n", subtype="html")
    return mail


def compose_notice(config: EmailConfig, notice: Notice, to: list[str]) -> EmailMessage:
    """A plain-text mail for a hand-over or swap notice."""
    text = lay_out(notice, PLAIN)
    domain = parseaddr(config.from_)[1].rpartition("@")[2] or "panorama.invalid"
    mail = EmailMessage()
    mail["Subject"] = PLAIN.text(text.title, SUBJECT_CHARS)
    mail["From"] = config.from_
    mail["To"] = ", ".join(to)
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = make_msgid(domain=domain)
    mail.set_content(f"{plain(text)}\n\n-- \n{text.footer}\n")
    return mail


async def send(config: EmailConfig, message: Message | Notice) -> SendResult:
    to = recipients(config, message)
    if not to:
        return SendResult.failure(
            "email: nobody to send to: set `to` on the channel or give the paged users an e-mail address",
            retryable=False,
            problem=failure("no_recipients"),
        )
    if isinstance(message, Notice):
        mail = compose_notice(config, message, to)
    else:
        mail = compose(config, message, to)
    smtp = config.smtp
    try:
        errors, _ = await aiosmtplib.send(
            mail,
            sender=parseaddr(config.from_)[1] or config.from_,
            recipients=to,
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.username if smtp.username and smtp.password else None,
            password=smtp.password.get_secret_value() if smtp.username and smtp.password else None,
            use_tls=smtp.tls,
            start_tls=smtp.starttls,
            tls_context=_tls_context(smtp.ca_file) if smtp.ca_file else None,
            timeout=config.timeout_s,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [refusal.code for refusal in exc.recipients]
        said = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        return SendResult.failure(
            f"email: every recipient refused: {said}",
            retryable=all(400 <= c < 500 for c in codes),
            problem=failure("recipients_refused", said),
        )
    except aiosmtplib.SMTPAuthenticationError as exc:
        return SendResult.failure(
            f"email: authentication failed: {exc.code} {exc.message}",
            retryable=400 <= exc.code < 500,
            problem=failure("auth_failed", exc.message, code=exc.code),
        )
    except aiosmtplib.SMTPResponseException as exc:
        return SendResult.failure(
            f"email: the server said {exc.code} {exc.message}",
            retryable=400 <= exc.code < 500,
            problem=failure("refused", exc.message, code=exc.code),
        )
    except aiosmtplib.SMTPTimeoutError as exc:
        return SendResult.failure(
            f"email: no answer within {config.timeout_s:g}s: {exc}",
            retryable=True,
            timeout=True,
            problem=failure("timeout", str(exc), seconds=config.timeout_s),
        )
    except ssl.SSLError as exc:
        return SendResult.failure(
            f"email: TLS failed: {exc}", retryable=False, problem=failure("tls_failed", str(exc))
        )
    except aiosmtplib.SMTPNotSupported as exc:
        return SendResult.failure(
            f"email: the server does not support it: {exc}",
            retryable=False,
            problem=failure("not_supported", str(exc)),
        )
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, OSError) as exc:
        return SendResult.failure(
            f"email: connection failed: {exc}", retryable=True, problem=failure("network", str(exc))
        )
    except aiosmtplib.SMTPException as exc:
        return SendResult.failure(f"email: {exc}", retryable=False, problem=failure("other", str(exc)))
    if errors:
        refused = ", ".join(f"{address}: {reply.code} {reply.message}" for address, reply in errors.items())
        return SendResult.success(f"sent to {len(to) - len(errors)} of {len(to)}; refused {refused}")
    return SendResult.success(f"sent to {len(to)}")


def _name(person: Person) -> str:
    return PLAIN.text(person.name, 40)


@lru_cache(maxsize=8)
def _tls_context(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)
