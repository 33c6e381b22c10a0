"""The default-rule-2 mail: values from an envelope or a name never forge a header or a line."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator

import pytest

from core.config import SmtpConfig
from core.mail.notification import Notification, build_notification
from core.mail.smtp import MailDeliveryError, send_mail
from core.text import printable

FORGED = "Bcc: everyone@example.org"
DATE = "Tue, 01 Jan 2030 00:00:00 +0000"


def hostile_notification() -> Notification:
    return build_notification(
        envelope={
            "uuid": "0238cdda-4fd2-473c-a584-bdb1d484f397",
            "subject": f"Order 17\r\n{FORGED}\r\n\r\nPay to IBAN XX00 now\x1b[8m",
            "sender": "Acme\nStatus:    CANCELLED",
            "template": "Purchase order\u2028v9 v1",
            "received_at": "2030-01-01T00:00:00Z",
            "status": "COMPLETED",
        },
        mailbox_name=f"Purchasing\r\n{FORGED}",
        recipient="ops@example.com",
        sender="docbridge@example.com",
    )


def parsed(notification: Notification) -> email.message.EmailMessage:
    raw = notification.to_email(DATE).as_bytes()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_hostile_values_stay_on_their_own_line_of_the_body() -> None:
    notification = hostile_notification()
    lines = notification.body.splitlines()
    assert len(lines) == 10  # as many as for a plain envelope
    assert (
        lines[0]
        == r"Mailbox Purchasing\r\nBcc: everyone@example.org received an envelope on the platform."
    )
    assert lines[2] == (
        r"Subject:   Order 17\r\nBcc: everyone@example.org\r\n\r\nPay to IBAN XX00 now\x1b[8m"
    )
    assert lines[3] == r"Sender:    Acme\nStatus:    CANCELLED"
    assert lines[4] == r"Template:  Purchase order\u2028v9 v1"
    assert [line for line in lines if line.startswith("Status:")] == ["Status:    COMPLETED"]
    assert "\x1b" not in notification.body and "\r" not in notification.body


def test_no_header_carries_a_line_break_or_an_extra_header() -> None:
    notification = hostile_notification()
    assert "\r" not in notification.subject and "\n" not in notification.subject
    message = parsed(notification)
    assert message["Bcc"] is None
    assert sorted(message.keys()) == sorted(
        [
            "From",
            "To",
            "Subject",
            "Message-ID",
            "Date",
            "Content-Type",
            "Content-Transfer-Encoding",
            "MIME-Version",
        ]
    )
    assert message["Subject"] == (
        r"[docbridge] New envelope for Purchasing\r\nBcc: everyone@example.org: "
        r"Order 17\r\nBcc: everyone@example.org\r\n\r\nPay to IBAN XX00 now\x1b[8m"
    )
    body = message.get_content()
    assert r"Subject:   Order 17\r\nBcc:" in body


def test_addresses_with_line_breaks_are_escaped_not_sent_as_headers() -> None:
    """A sender from the config or a queued payload with CR/LF: escaped (the SMTP server then
    refuses the address, a visible and retried failure) instead of a ValueError or a header."""
    notification = Notification(
        message_id="<x.notification@example.com>",
        sender=f"docbridge@example.com\r\n{FORGED}",
        recipient=f"ops@example.com\n{FORGED}",
        subject=f"Hi\r\n{FORGED}",
        body="Hello\n",
    )
    message = parsed(notification)
    assert message["Bcc"] is None
    for name, value in message.items():
        assert "\r" not in value and "\n" not in value, name


def test_printable_keeps_text_and_escapes_what_could_forge_or_recolour() -> None:
    assert printable("Baltic Supplies OÜ — Faktura 7710-24 (€)") == (
        "Baltic Supplies OÜ — Faktura 7710-24 (€)"
    )
    assert printable("a\r\nb\tc\x00d\x1b[31me\x7f") == r"a\r\nb\tc\x00d\x1b[31me\x7f"
    assert printable("\u2028\u2029\u202e\x85") == r"\u2028\u2029\u202e\x85"
    assert printable("bad byte \udcff") == r"bad byte \udcff"  # os.fsdecode of b"\xff"


class Outbox:
    """What an aiosmtpd server on loopback received, and the logins it was offered."""

    def __init__(self) -> None:
        self.logins: list[tuple[bytes, bytes]] = []
        self.messages: list[bytes] = []

    def authenticate(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        from aiosmtpd.smtp import AuthResult, LoginPassword

        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login, auth_data.password))
        accepted = auth_data.password == b"from-the-environment"
        return AuthResult(success=accepted, handled=False)  # aiosmtpd answers 235 or 535

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Outbox, int]]:
    from aiosmtpd.controller import Controller

    outbox = Outbox()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(
        outbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=outbox.authenticate,
        auth_require_tls=False,  # loopback only; production uses tls_mode starttls or tls
    )
    controller.start()
    yield outbox, port
    controller.stop()


async def test_smtp_login_takes_the_password_from_the_environment(
    smtp_server: tuple[Outbox, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox, port = smtp_server
    config = SmtpConfig(port=port, username="gateway", sender="docbridge@example.com")
    message = hostile_notification().to_email(DATE)

    monkeypatch.setenv("DOCBRIDGE_SMTP_PASSWORD", "from-the-environment")
    await send_mail(config, message, timeout_s=10)
    assert outbox.logins == [(b"gateway", b"from-the-environment")]
    assert len(outbox.messages) == 1

    monkeypatch.setenv("DOCBRIDGE_SMTP_PASSWORD", "stale")
    with pytest.raises(MailDeliveryError, match="535"):
        await send_mail(config, message, timeout_s=10)
    assert len(outbox.messages) == 1
