"""Upload requests' pages: the owner's (create, list, revoke) and the outsider's steps.

Plus the owner's email, sent through a real SMTP server on 127.0.0.1 (aiosmtpd).
"""

from __future__ import annotations

import re
import socket
from email import message_from_bytes
from email.message import Message
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller
from django.test import Client

from frontend.tests.conftest import PortalClient
from portal.models import UploadBatch, UploadRequest, UploadRequestSubmission
from portal.services.upload_requests import (
    submission_finish,
    submission_start,
    upload_request_create,
    upload_request_revoke,
)

pytestmark = pytest.mark.django_db


def _link_of(response) -> str:
    match = re.search(rb'id="request-url">([^<]+)<', response.content)
    assert match, response.content
    return match.group(1).decode()


def test_the_owner_creates_a_request_sees_its_link_once_and_revokes_it(client_user, user):
    created = client_user.post_form(
        "/requests/",
        {
            "title": "Passport scans",
            "message": "Both sides please",
            "expires_in_hours": "72",
            "password": "",
            "max_files": "2",
            "max_mib": "5",
            "allowed_types": "application/pdf, image/*",
            "require_sender": "on",
        },
    )
    assert created.status_code == 201
    link = _link_of(created)
    assert "/r/" in link
    upload_request = UploadRequest.objects.get(owner=user)
    assert upload_request.max_bytes == 5 * 1024 * 1024
    assert upload_request.allowed_types == ["application/pdf", "image/*"]
    listing = client_user.get("/requests/")
    assert b"Passport scans" in listing.content
    assert link.encode() not in listing.content  # the link is never shown again
    detail = client_user.get(f"/requests/{upload_request.id}/")
    assert link.encode() not in detail.content
    # Revoke: one click (a POST with the page's CSRF token).
    revoked = client_user.post_form(f"/requests/{upload_request.id}/revoke/", page="/requests/")
    assert revoked.status_code == 302
    upload_request.refresh_from_db()
    assert upload_request.revoked_at is not None
    assert Client().get(link.split("testserver", 1)[1]).status_code == 410


def test_revoke_needs_csrf_and_another_users_request_is_a_404(client_user, client_other, user):
    upload_request, _ = upload_request_create(owner=user, title="Mine")
    assert client_user.post(f"/requests/{upload_request.id}/revoke/").status_code == 403
    assert client_other.get(f"/requests/{upload_request.id}/").status_code == 404
    response = client_other.post_form(f"/requests/{upload_request.id}/revoke/", page="/requests/")
    assert response.status_code == 404
    upload_request.refresh_from_db()
    assert upload_request.revoked_at is None


def test_an_unknown_link_is_a_404():
    assert Client().get("/r/not-a-real-token/").status_code == 404


def test_the_outsider_gives_the_password_then_their_name_then_uploads(user):
    _upload_request, raw = upload_request_create(
        owner=user, title="Contracts", password="letmein", require_sender=True
    )
    page = f"/r/{raw}/"
    sender = PortalClient()
    first = sender.get(page)
    assert first.status_code == 200
    assert b'name="password"' in first.content
    assert b"uppy" not in first.content.lower()
    wrong = sender.post_form(page, {"step": "password", "password": "nope"})
    assert wrong.status_code == 400
    right = sender.post_form(page, {"step": "password", "password": "letmein"})
    assert right.status_code == 302
    asks = sender.get(page)
    assert b'name="sender_email"' in asks.content
    missing = sender.post_form(page, {"step": "sender", "sender_name": "Ada"})
    assert missing.status_code == 400
    assert not UploadRequestSubmission.objects.exists()
    sent = sender.post_form(
        page, {"step": "sender", "sender_name": "Ada", "sender_email": "Ada@Example.com"}
    )
    assert sent.status_code == 302
    uploader = sender.get(page)
    assert b"data-request-token=" in uploader.content
    assert uploader["Referrer-Policy"] == "same-origin"
    submission = UploadRequestSubmission.objects.get()
    assert (submission.sender_name, submission.sender_email) == ("Ada", "ada@example.com")
    assert submission.batch.owner == user
    # Another browser has neither the password nor the submission.
    assert b'name="password"' in PortalClient().get(page).content


def test_wrong_passwords_are_throttled_per_address(user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    _upload_request, raw = upload_request_create(owner=user, title="Locked", password="right")
    page = f"/r/{raw}/"
    sender = PortalClient()
    codes = [
        sender.post_form(page, {"step": "password", "password": "wrong"}).status_code
        for _ in range(3)
    ]
    assert codes == [400, 400, 400]
    # Even the right password is refused now, from this address.
    locked = sender.post_form(page, {"step": "password", "password": "right"})
    assert locked.status_code == 429
    assert b"Too many wrong passwords" in locked.content
    other_address = PortalClient(REMOTE_ADDR="192.0.2.7")
    token = other_address.csrf_token(page)
    ok = other_address.post(
        page, {"step": "password", "password": "right", "csrfmiddlewaretoken": token}
    )
    assert ok.status_code == 302


@pytest.mark.parametrize("how", ["revoked", "expired"])
def test_a_closed_link_answers_410(user, how):
    from datetime import timedelta

    from django.utils import timezone

    upload_request, raw = upload_request_create(owner=user, title="Closed")
    if how == "revoked":
        upload_request_revoke(upload_request=upload_request, actor=user)
    else:
        UploadRequest.objects.filter(pk=upload_request.pk).update(
            expires_at=timezone.now() - timedelta(minutes=1)
        )
    response = Client().get(f"/r/{raw}/")
    assert response.status_code == 410
    assert b"no longer takes files" in response.content


def test_the_owner_lists_submissions_that_sent_something(client_user, user):
    from portal.services.file_records import upload_file_record_stored

    upload_request, _ = upload_request_create(owner=user, title="Receipts")
    submission = submission_start(
        upload_request=upload_request, sender_name="Bo", sender_email="bo@example.com"
    )
    submission_start(upload_request=upload_request)  # a visit that sent nothing
    upload_file_record_stored(
        owner=user,
        storage_key="uploads/2026/01/x",
        filename="r.pdf",
        content_type="application/pdf",
        size=10,
        sha256="0" * 64,
        batch=submission.batch,
        origin={"upload_request_id": upload_request.id, "sender_name": "Bo"},
    )
    detail = client_user.get(f"/requests/{upload_request.id}/")
    assert detail.content.count(b"bo@example.com") == 1
    assert b"1 stored" in detail.content
    assert b"Nobody has sent" not in detail.content


# --- the owner's email, through a real SMTP server ----------------------------------------------


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"


@pytest.fixture
def smtp_server(settings):
    inbox = _Inbox()
    with socket.socket() as probe:  # a free port (aiosmtpd checks it can connect to it)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.DEFAULT_FROM_EMAIL = "Doorito <doorito@example.com>"
        yield inbox
    finally:
        controller.stop()


@pytest.mark.django_db(transaction=True)
def test_the_owner_gets_an_email_when_a_sender_is_done(user, smtp_server, settings):
    from portal.services.file_records import upload_file_record_stored

    settings.CELERY_TASK_ALWAYS_EAGER = True  # the task's body runs in this process
    upload_request, _ = upload_request_create(owner=user, title="Year-end papers")
    submission = submission_start(
        upload_request=upload_request, sender_name="Cy Client", sender_email="cy@example.com"
    )
    upload_file_record_stored(
        owner=user,
        storage_key="uploads/2026/01/y",
        filename="balance.pdf",
        content_type="application/pdf",
        size=2048,
        sha256="0" * 64,
        batch=submission.batch,
        origin={"upload_request_id": upload_request.id},
    )
    submission_finish(submission=submission)
    assert len(smtp_server.messages) == 1
    mail = smtp_server.messages[0]
    assert mail["To"] == user.email
    assert mail["From"] == "Doorito <doorito@example.com>"
    assert mail["Subject"] == "Files received: Year-end papers"
    body = mail.get_body().get_content()
    assert "Cy Client <cy@example.com> sent 1 file" in body
    assert "balance.pdf (2048 bytes)" in body
    assert f"/batches/{submission.batch_id}/" in body
    assert UploadBatch.objects.get(pk=submission.batch_id).closed_at is not None
    # Finishing again sends nothing more.
    submission_finish(submission=UploadRequestSubmission.objects.get(pk=submission.pk))
    assert len(smtp_server.messages) == 1


@pytest.mark.django_db(transaction=True)
def test_a_sender_who_sent_nothing_makes_no_email(user, smtp_server, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    upload_request, _ = upload_request_create(owner=user, title="Nothing")
    submission_finish(submission=submission_start(upload_request=upload_request))
    assert smtp_server.messages == []


def test_a_sender_who_finished_without_a_file_is_not_told_the_owner_was(user):
    # "I'm done" before any file: the page said "Thank you — your files were
    # sent … has been told", but nothing is sent for an empty submission.
    _upload_request, raw = upload_request_create(owner=user, title="Receipts")
    page = f"/r/{raw}/"
    sender = PortalClient()
    assert sender.post_form(page, {"step": "sender"}).status_code == 302
    assert sender.post_form(f"{page}finish/", {}).status_code == 302
    done = sender.get(page).content.decode()
    assert "Nothing was sent" in done
    assert "your files were sent" not in done
    assert "has been told" not in done
    assert "Send files" in done


@pytest.mark.django_db(transaction=True)
def test_a_sender_who_left_without_finishing_is_sent_by_the_hourly_run(user, settings):
    from datetime import timedelta

    from django.core import mail
    from django.utils import timezone

    from common.models import OutboxEvent
    from portal.models import UploadSession
    from portal.services.file_records import upload_file_record_stored
    from portal.services.upload_requests import submissions_finish_idle
    from portal.tasks import finish_idle_upload_request_submissions_task

    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    upload_request, _ = upload_request_create(owner=user, title="Left early")
    left = submission_start(upload_request=upload_request, sender_name="Gone")
    still = submission_start(upload_request=upload_request, sender_name="Busy")
    empty = submission_start(upload_request=upload_request, sender_name="Nothing")
    for submission in (left, still):
        upload_file_record_stored(
            owner=user,
            storage_key=f"uploads/2026/01/{submission.id.hex}",
            filename="a.pdf",
            content_type="application/pdf",
            size=5,
            sha256="0" * 64,
            batch=submission.batch,
            origin={"upload_request_id": upload_request.id},
        )
    # "Busy" has an upload still receiving.
    UploadSession.objects.create(
        owner=user,
        batch=still.batch,
        submission=still,
        length=10,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    assert submissions_finish_idle(idle_minutes=60) == {"finished": 1, "remaining": 0}
    assert UploadRequestSubmission.objects.get(pk=left.pk).submitted_at is not None
    assert UploadRequestSubmission.objects.get(pk=still.pk).submitted_at is None
    assert UploadRequestSubmission.objects.get(pk=empty.pk).submitted_at is None
    assert OutboxEvent.objects.filter(event_type="upload_request.submitted").count() == 1
    assert len(mail.outbox) == 1
    # The task (as beat runs it) finds nothing more to do.
    assert finish_idle_upload_request_submissions_task.apply().get() == {
        "finished": 0,
        "remaining": 0,
    }
    assert settings.CELERY_BEAT_SCHEDULE["finish-idle-upload-request-submissions"]["task"] == (
        finish_idle_upload_request_submissions_task.name
    )
