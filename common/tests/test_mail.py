"""Dev's console mail (common/mail.py): a password-reset link copied from the
console must work, so it is printed whole, never quoted-printable."""

from __future__ import annotations

import io

from django.core.mail import EmailMultiAlternatives

from common.mail import ReadableConsoleEmailBackend

LINK = (
    "http://127.0.0.1:8000/password/reset/MDFhMjUyNmEtOWI0NC03M2Q4LWJlNjktNDc2MjQzYjc0MWQ4"
    "/dj8khq-c8a937dd1f540c74e51f60c4ff2d1d71/"
)


def test_a_long_link_is_printed_on_one_line():
    stream = io.StringIO()
    mail = EmailMultiAlternatives(
        subject="Reset your Doorito password",
        body=f"To choose a new password, open:\n{LINK}\n\nSchöne Grüße\n",
        from_email="Doorito <doorito@localhost>",
        to=["newbie@example.com"],
    )
    mail.attach("notes.txt", "not shown", "text/plain")
    sent = ReadableConsoleEmailBackend(stream=stream).send_messages([mail])
    out = stream.getvalue()
    assert sent == 1
    assert f"\n{LINK}\n" in out
    assert "Schöne Grüße" in out
    assert "Subject: Reset your Doorito password" in out
    assert "To: newbie@example.com" in out
    assert "Attachments: notes.txt" in out
    assert "not shown" not in out
    assert "=\n" not in out
