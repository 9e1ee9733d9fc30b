"""Dev's console mail: each message as a person reads it, not as SMTP carries it.

Django's console backend writes the message's wire form. A line longer than
78 characters, such as any password-reset link, goes out quoted-printable
there: the link was cut in two by a soft line break (``…NDc2MjQz=`` and the
rest on the next line), and a link copied from ``make run``'s output did not
work. This one writes the headers a reader looks at and each text part
decoded, so every link is on one line as sent.
"""

from __future__ import annotations

from email.message import Message

from django.core.mail.backends.console import EmailBackend
from django.core.mail.message import EmailMessage

SHOWN_HEADERS = ("From", "To", "Cc", "Reply-To", "Date", "Subject")


def _text_parts(message: Message) -> list[str]:
    parts = message.walk() if message.is_multipart() else [message]
    texts = []
    for part in parts:
        if part.get_content_maintype() != "text" or part.get_filename():
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            texts.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
    return texts


class ReadableConsoleEmailBackend(EmailBackend):
    """``EMAIL_BACKEND`` in Dev: the console backend with decoded bodies."""

    def write_message(self, message: EmailMessage) -> None:
        msg = message.message()
        lines = [f"{name}: {msg[name]}" for name in SHOWN_HEADERS if msg[name]]
        attachments = [p.get_filename() for p in msg.walk() if p.get_filename()]
        if attachments:
            lines.append(f"Attachments: {', '.join(str(a) for a in attachments)}")
        self.stream.write("\n".join(lines) + "\n\n")
        for text in _text_parts(msg):
            self.stream.write(text.rstrip("\n") + "\n\n")
        self.stream.write("-" * 79 + "\n")
