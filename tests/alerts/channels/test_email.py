"""E-mail against a real SMTP server on loopback (aiosmtpd): content, TLS, AUTH, SMTP codes, timeouts."""

from __future__ import annotations

import socket
from collections.abc import Callable
from email.header import decode_header, make_header
from typing import Any

import pytest

from app.alerts.channels import email
from app.alerts.channels.base import Person
from app.alerts.channels.email import EmailConfig
from tests.alerts.channels.support import (
    ACK_URL,
    ALICE,
    BOB,
    HOSTILE,
    INCIDENT_URL,
    T0_SHANGHAI,
    digest,
    hostile_alert,
    many_alerts,
    notification,
)
from tests.fakes.smtp import Certificate, SmtpSink

StartSmtp = Callable[..., SmtpSink]


def config(server: SmtpSink, *, to: list[str] | None = None, **smtp: Any) -> EmailConfig:
    settings = {"host": server.host, "port": server.port, "starttls": False, **smtp}
    return EmailConfig.model_validate(
        {
            "name": "ops-mail",
            "type": "email",
            "smtp": settings,
            "from": "Panorama <panorama@example.com>",
            "to": ["oncall@example.com"] if to is None else to,
            "timeout_s": 5,
        }
    )


def subject_of(server: SmtpSink) -> str:
    return str(make_header(decode_header(str(server.messages[0].message["Subject"]))))


async def test_a_multipart_message_reaches_the_channel_and_the_paged_users(smtp_server: StartSmtp) -> None:
    server = smtp_server()

    result = await email.send(config(server), notification())

    assert result.ok, result.detail
    [mail] = server.messages
    assert mail.recipients == ["oncall@example.com", "alice@example.com", "bob@example.com"]
    assert mail.sender == "panorama@example.com"
    assert mail.message["References"] == "<incident-42@example.com>"
    assert subject_of(server) == "[Panorama] [严重] 🔴 告警触发：支付服务错误率升高 (未确认)"
    text = mail.part("text/plain")
    for expected in (
        "严重",
        "pay, cart",
        T0_SHANGHAI,
        ACK_URL,
        INCIDENT_URL,
        "HighErrorRate",
        "SlowCheckout",
    ):
        assert expected in text
    html = mail.part("text/html")
    assert f'<a href="{ACK_URL}"' in html
    assert '<html lang="zh-CN">' in html


async def test_english_subject_and_body(smtp_server: StartSmtp) -> None:
    server = smtp_server()

    await email.send(config(server), notification(locale="en", kind="escalate"))

    assert (
        subject_of(server)
        == "[Panorama] [critical] ⏫ Escalation: still not acknowledged: 支付服务错误率升高 (triggered)"
    )
    assert "Started: 2026-01-05 09:30:00 UTC+08:00" in server.messages[0].part("text/plain")


async def test_hostile_values_are_escaped_in_html_and_cannot_add_headers(smtp_server: StartSmtp) -> None:
    server = smtp_server()
    message = notification(alerts=[hostile_alert()], title="evil\r\nBcc: victim@example.com")

    result = await email.send(config(server), message)

    assert result.ok, result.detail
    mail = server.messages[0]
    assert mail.message["Bcc"] is None
    assert "victim@example.com" not in mail.recipients
    html = mail.part("text/html")
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "<b>bold</b>" not in html
    assert HOSTILE["mention_slack"] in mail.part("text/plain"), "plain text shows values as they are"


async def test_nobody_to_send_to_is_a_final_failure_without_connecting(smtp_server: StartSmtp) -> None:
    server = smtp_server()
    nobody = notification(mentions=[Person("carol"), Person("dave", email="not an address")])

    result = await email.send(config(server, to=[]), nobody)

    assert not result.ok
    assert not result.retryable
    assert "nobody to send to" in result.detail
    assert server.messages == []


async def test_recipients_are_deduplicated(smtp_server: StartSmtp) -> None:
    server = smtp_server()

    await email.send(config(server, to=["ALICE@example.com"]), notification(mentions=[ALICE, BOB]))

    assert server.messages[0].recipients == ["ALICE@example.com", "bob@example.com"]


async def test_a_temporary_smtp_error_is_retryable(smtp_server: StartSmtp) -> None:
    server = smtp_server()
    server.fail_with(451, times=1)

    result = await email.send(config(server), notification())

    assert not result.ok
    assert result.retryable
    assert "451" in result.detail


async def test_a_permanent_smtp_error_is_final(smtp_server: StartSmtp) -> None:
    server = smtp_server()
    server.fail_with(554, times=1)

    result = await email.send(config(server), notification())

    assert not result.ok
    assert not result.retryable
    assert "554" in result.detail


async def test_some_recipients_refused_is_success_that_says_so(smtp_server: StartSmtp) -> None:
    server = smtp_server(refuse=["bob@example.com"])

    result = await email.send(config(server), notification())

    assert result.ok
    assert "bob@example.com" in result.detail
    assert server.messages[0].recipients == ["oncall@example.com", "alice@example.com"]


async def test_every_recipient_refused_is_final(smtp_server: StartSmtp) -> None:
    server = smtp_server(refuse=["oncall@example.com"])

    result = await email.send(config(server), notification(mentions=[]))

    assert not result.ok
    assert not result.retryable


async def test_a_server_that_stalls_is_retryable(smtp_server: StartSmtp) -> None:
    server = smtp_server()
    server.hang(10, times=1)

    result = await email.send(config(server).model_copy(update={"timeout_s": 0.3}), notification())

    assert not result.ok
    assert result.retryable


async def test_a_server_that_is_down_is_retryable(smtp_server: StartSmtp) -> None:
    server = smtp_server()
    server.stop()

    result = await email.send(config(server), notification())

    assert not result.ok
    assert result.retryable


async def test_requiring_starttls_from_a_server_without_it_is_final(smtp_server: StartSmtp) -> None:
    server = smtp_server()

    result = await email.send(config(server, starttls=True), notification())

    assert not result.ok
    assert not result.retryable
    assert server.messages == []


async def test_many_alerts_are_capped_and_counted(smtp_server: StartSmtp) -> None:
    server = smtp_server()

    await email.send(config(server), notification(alerts=many_alerts(130), firing=130))

    text = server.messages[0].part("text/plain")
    assert "PodCrashLooping0099" in text
    assert "PodCrashLooping0100" not in text
    assert "…以及另外 30 条告警" in text


async def test_a_digest_lists_its_notifications(smtp_server: StartSmtp) -> None:
    server = smtp_server()

    await email.send(config(server), digest(3))

    assert subject_of(server) == "[Panorama] 📋 告警汇总：3 条通知"
    text = server.messages[0].part("text/plain")
    assert all(f"incident {i}" in text for i in range(3))
    assert server.messages[0].message["References"] is None


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_auth_without_tls_when_the_server_allows_it(smtp_server: StartSmtp) -> None:
    server = smtp_server(users={"panorama": "s3cret"}, auth_require_tls=False)

    good = await email.send(config(server, username="panorama", password="s3cret"), notification())
    bad = await email.send(config(server, username="panorama", password="wrong"), notification())

    assert good.ok, good.detail
    assert server.messages[0].login == "panorama"
    assert not bad.ok
    assert not bad.retryable
    assert "535" in bad.detail


# -- TLS: a self-signed certificate made with openssl ------------------------------------------------


async def test_starttls_with_auth(smtp_server: StartSmtp, smtp_certificate: Certificate) -> None:
    server = smtp_server(certificate=smtp_certificate, require_starttls=True, users={"panorama": "s3cret"})

    result = await email.send(
        config(
            server, starttls=True, username="panorama", password="s3cret", ca_file=str(smtp_certificate.cert)
        ),
        notification(),
    )

    assert result.ok, result.detail
    [mail] = server.messages
    assert mail.tls
    assert mail.login == "panorama"


async def test_a_server_that_requires_starttls_refuses_plain_mail(
    smtp_server: StartSmtp, smtp_certificate: Certificate
) -> None:
    server = smtp_server(certificate=smtp_certificate, require_starttls=True)

    result = await email.send(config(server, starttls=False), notification())

    assert not result.ok
    assert not result.retryable
    assert "530" in result.detail
    assert server.messages == []


async def test_an_untrusted_certificate_is_final(
    smtp_server: StartSmtp, smtp_certificate: Certificate
) -> None:
    server = smtp_server(certificate=smtp_certificate, require_starttls=True)

    result = await email.send(config(server, starttls=True), notification())

    assert not result.ok
    assert not result.retryable
    assert "certificate" in result.detail.lower()


async def test_implicit_tls(smtp_server: StartSmtp, smtp_certificate: Certificate) -> None:
    server = smtp_server(certificate=smtp_certificate, implicit_tls=True)

    result = await email.send(
        config(server, starttls=False, tls=True, ca_file=str(smtp_certificate.cert)), notification()
    )

    assert result.ok, result.detail
    assert server.messages[0].tls


def test_nothing_listens_on_the_port_of_a_stopped_server(smtp_server: StartSmtp) -> None:
    server = smtp_server()
    server.stop()

    address = (server.host, server.port)
    with pytest.raises(ConnectionRefusedError), socket.create_connection(address, timeout=1):
        pass
