"""A real SMTP server on loopback (aiosmtpd) that records what it receives.

It can require STARTTLS, speak implicit TLS, require AUTH (PLAIN/LOGIN, after TLS
unless told otherwise), refuse given recipients, and fail or stall on demand:
``fail_with(451)`` answers DATA with a temporary error, ``fail_with(550)`` with a
permanent one, ``hang(10)`` sits on DATA (to test the client's timeout); faults
queue as in :class:`~tests.fakes.faults.FaultInjector`.

:func:`self_signed_certificate` makes a certificate for 127.0.0.1 with the
``openssl`` command (the ``cryptography`` package is not installed here).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.fakes.faults import FaultInjector

_REASONS = {
    421: "4.3.2 Service not available, closing transmission channel",
    451: "4.3.0 Requested action aborted: try again later",
    452: "4.3.1 Insufficient system storage",
    550: "5.7.1 Message rejected",
    552: "5.3.4 Message size exceeds fixed maximum message size",
    554: "5.7.1 Transaction failed",
}


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@dataclass(frozen=True)
class Mail:
    """One message the server accepted."""

    sender: str
    recipients: list[str]
    message: EmailMessage
    tls: bool
    login: str | None

    def part(self, content_type: str) -> str:
        """The decoded text of the ``text/plain`` or ``text/html`` part."""
        body = self.message.get_body(preferencelist=(content_type.split("/")[1],))
        assert body is not None, f"no {content_type} part"
        assert body.get_content_type() == content_type, f"no {content_type} part"
        content: str = body.get_content()
        return content


def self_signed_certificate(directory: Path) -> Certificate | None:
    """A certificate and key for 127.0.0.1 in ``directory``; None when ``openssl`` is missing."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return Certificate(cert, key)


class SmtpSink(FaultInjector):
    """The handler of an aiosmtpd server: records mail, applies faults. Start it with :meth:`start`."""

    def __init__(
        self,
        *,
        certificate: Certificate | None = None,
        require_starttls: bool = False,
        implicit_tls: bool = False,
        users: dict[str, str] | None = None,
        auth_require_tls: bool = True,
        refuse: Iterable[str] = (),
    ) -> None:
        super().__init__()
        if (require_starttls or implicit_tls) and certificate is None:
            raise ValueError("TLS needs a certificate")
        self.certificate = certificate
        self.require_starttls = require_starttls
        self.implicit_tls = implicit_tls
        self.users = dict(users or {})
        self.auth_require_tls = auth_require_tls
        self.refused = {address.lower() for address in refuse}
        self.host = "127.0.0.1"
        self.port = 0
        self._messages: list[Mail] = []
        self._lock = threading.Lock()
        self._controller: _LoopbackController | None = None

    @property
    def messages(self) -> list[Mail]:
        with self._lock:
            return list(self._messages)

    def start(self) -> None:
        context = self.certificate.server_context() if self.certificate else None
        kwargs: dict[str, Any] = {
            "server_hostname": "smtp.sink.test",
            "require_starttls": self.require_starttls,
            "tls_context": None if self.implicit_tls else context,
            "ssl_context": context if self.implicit_tls else None,
        }
        if self.users:
            kwargs.update(
                auth_required=True,
                auth_require_tls=self.auth_require_tls,
                authenticator=self._authenticate,
            )
        self._controller = _LoopbackController(self, hostname=self.host, port=0, **kwargs)
        self._controller.start()
        self.port = self._controller.port
        self.bind_stop(self._stop_server)

    def _stop_server(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    # -- aiosmtpd hooks -----------------------------------------------------------------------

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower() in self.refused:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        fault = self._take_fault()
        if fault is not None:
            if fault.delay_s:
                await asyncio.to_thread(self._closing.wait, fault.delay_s)
            if fault.failure is not None:
                status = fault.failure.status
                default = "4.0.0 Simulated failure" if status < 500 else "5.0.0 Simulated failure"
                return f"{status} {_REASONS.get(status, default)}"
        content = envelope.original_content or b""
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        mail = Mail(
            sender=str(envelope.mail_from),
            recipients=list(envelope.rcpt_tos),
            message=parsed,
            tls=session.ssl is not None or _over_tls(server),
            login=login,
        )
        with self._lock:
            self._messages.append(mail)
        return "250 2.0.0 OK: queued"

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if self.users.get(login) == password:
                return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)


def _over_tls(server: SMTP) -> bool:
    """Whether the connection itself is TLS (implicit TLS; STARTTLS shows in ``session.ssl``)."""
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


class _LoopbackController(Controller):
    """aiosmtpd's controller on a port the OS picks (it wants a fixed one)."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        sockets: Sequence[socket.socket] = getattr(self.server, "sockets", ())
        self.port = sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]  # aiosmtpd leaves it unannotated
