"""Upload requests: links that let people without an account send files to the owner.

The link's token (192 random bits) is shown once; only its SHA-256 is kept,
so a database leak gives no working link, and the lookup is one indexed
read (the token is random enough that a slow hash would add nothing).

A sender's visit is a *submission*: one batch owned by the requester that
all of that sender's files land in. The public page hands the browser a
signed *credential* naming the submission; the tus endpoint accepts it to
create and continue uploads of that submission only (``portal.services.tus``
checks ``UploadSession.submission``), never to read, list or delete.

Limits hold on the server, at tus creation (``upload_request_admit``): the
request row is locked and the uploads it already admitted are counted in
the same transaction that records the new one, so parallel senders can
never take it past ``max_files`` or ``max_bytes``. Uploads that ended
without a file (refused, terminated, expired) give their place back,
because only live and finished uploads are counted.
"""

from __future__ import annotations

import logging
import mimetypes
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.core import signing
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.urls import reverse
from django.utils import timezone

from accounts.emails import normalize_email
from accounts.services.sign_in_throttle import (
    SignInAttempt,
    sign_in_attempt_count,
    sign_in_attempts_clear,
)
from accounts.services.tokens import token_hash
from common.exceptions import (
    ApplicationError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from common.services.emit import emit_event
from common.services.text import clean_text
from portal.models import UploadBatch, UploadFile, UploadRequest, UploadRequestSubmission
from portal.models import UploadSession as Session
from portal.services.batches import batch_close
from portal.services.payloads import upload_request_submitted_payload
from portal.storage import site_url

logger = logging.getLogger(__name__)

TOKEN_BYTES = 24  # 192 bits
TITLE_MAX_LENGTH = 200
MESSAGE_MAX_LENGTH = 5000
SENDER_NAME_MAX_LENGTH = 200
PASSWORD_MAX_LENGTH = 1024
MAX_ALLOWED_TYPES = 50
CREDENTIAL_SALT = "portal.upload_request.submission"
CREDENTIAL_HEADER = "Upload-Request-Token"
NOTIFY_TASK = "portal.tasks.upload_request_notify_owner_task"


class UploadRequestClosedError(ApplicationError):
    """The link was revoked or has expired: the page and tus both answer 410."""

    code = "upload_request_closed"
    status_code = 410
    default_message = "This upload link is no longer open."


class UploadRequestPasswordThrottled(ApplicationError):
    code = "throttled"
    status_code = 429
    default_message = "Too many wrong passwords from your address; try again later."


# --- tokens and links -------------------------------------------------------------


def upload_request_url(raw_token: str, *, request: Any = None) -> str:
    """The absolute public link of a request (only its creator ever sees it)."""
    return site_url(request) + reverse("frontend:upload_request_page", args=[raw_token])


def upload_request_by_token(raw: str) -> UploadRequest | None:
    if not raw or len(raw) > 100:
        return None
    return UploadRequest.objects.select_related("owner").filter(token_hash=token_hash(raw)).first()


def upload_request_state(upload_request: UploadRequest, *, now: datetime | None = None) -> str:
    """``open``, ``revoked`` or ``expired``."""
    if upload_request.revoked_at is not None:
        return "revoked"
    if upload_request.expires_at <= (now or timezone.now()):
        return "expired"
    return "open"


def upload_request_check_open(upload_request: UploadRequest) -> None:
    state = upload_request_state(upload_request)
    if state != "open":
        raise UploadRequestClosedError(
            "This upload link was revoked by its owner."
            if state == "revoked"
            else "This upload link has expired.",
            details={"upload_request_id": str(upload_request.id), "state": state},
        )


# --- create, revoke ------------------------------------------------------------------


def _clean_allowed_types(value: Any) -> list[str]:
    """MIME types (``image/*`` wildcards), each one the portal's allow-list allows."""
    from portal.services.content_types import type_allowed

    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_ALLOWED_TYPES:
        raise ValidationError(
            f"allowed_types must be a list of at most {MAX_ALLOWED_TYPES} MIME types.",
            details={"field": "allowed_types"},
        )
    portal_types = [t for t in (settings.FILE_UPLOAD_ALLOWED_TYPES or []) if t]
    cleaned: list[str] = []
    for entry in value:
        kind = str(entry).strip().lower() if isinstance(entry, str) else ""
        major, slash, minor = kind.partition("/")
        if not slash or not major or not minor or len(kind) > 255 or " " in kind:
            raise ValidationError(
                f"{entry!r} is not a MIME type such as application/pdf or image/*.",
                details={"field": "allowed_types", "value": str(entry)[:255]},
            )
        if kind in ("*/*", "*"):
            continue
        if portal_types and not type_allowed(kind, portal_types):
            raise ValidationError(
                f"{kind} is not allowed by this portal; a request may only narrow its types.",
                details={"field": "allowed_types", "value": kind, "portal_types": portal_types},
            )
        if kind not in cleaned:
            cleaned.append(kind)
    return cleaned


def _positive_or_none(value: Any, *, field: str, upper: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= upper:
        raise ValidationError(
            f"{field} must be a whole number from 1 to {upper}.", details={"field": field}
        )
    return value


def upload_request_create(
    *,
    owner: Any,
    title: str,
    message: str = "",
    expires_in_hours: int | None = None,
    password: str | None = None,
    max_files: int | None = None,
    max_bytes: int | None = None,
    require_sender: bool = False,
    allowed_types: list[str] | None = None,
) -> tuple[UploadRequest, str]:
    """Make a request; return it with the plain token (the caller shows the link once)."""
    title = clean_text((title or "").strip(), field="title")
    if not title or len(title) > TITLE_MAX_LENGTH:
        raise ValidationError(
            f"title must be 1 to {TITLE_MAX_LENGTH} characters.", details={"field": "title"}
        )
    message = clean_text((message or "").strip(), field="message")
    if len(message) > MESSAGE_MAX_LENGTH:
        raise ValidationError(
            f"message is at most {MESSAGE_MAX_LENGTH} characters.", details={"field": "message"}
        )
    max_hours = int(settings.UPLOAD_REQUEST_MAX_HOURS)
    if expires_in_hours is None:
        expires_in_hours = min(int(settings.UPLOAD_REQUEST_DEFAULT_HOURS), max_hours)
    hours = _positive_or_none(expires_in_hours, field="expires_in_hours", upper=max_hours)
    max_files = _positive_or_none(max_files, field="max_files", upper=100_000)
    max_bytes = _positive_or_none(max_bytes, field="max_bytes", upper=2**62)
    if password is not None and (
        not isinstance(password, str) or not password or len(password) > PASSWORD_MAX_LENGTH
    ):
        raise ValidationError(
            f"password must be 1 to {PASSWORD_MAX_LENGTH} characters.",
            details={"field": "password"},
        )
    types = _clean_allowed_types(allowed_types)
    raw = secrets.token_urlsafe(TOKEN_BYTES)
    with transaction.atomic():
        upload_request = UploadRequest.objects.create(
            owner=owner,
            title=title,
            message=message,
            token_hash=token_hash(raw),
            password_hash=make_password(password) if password else "",
            expires_at=timezone.now() + timedelta(hours=hours or max_hours),
            max_files=max_files,
            max_bytes=max_bytes,
            require_sender=bool(require_sender),
            allowed_types=types,
        )
    logger.info("Upload request %s created by %s", upload_request.id, owner.pk)
    return upload_request, raw


def upload_request_revoke(*, upload_request: UploadRequest, actor: Any) -> UploadRequest:
    """Close the link now; revoking twice keeps the first time. Files already sent stay."""
    if upload_request.owner_id != actor.pk and not actor.is_staff:
        raise NotFoundError(
            "Upload request not found.", details={"upload_request_id": str(upload_request.id)}
        )
    if upload_request.revoked_at is None:
        upload_request.revoked_at = timezone.now()
        upload_request.save(update_fields=["revoked_at", "updated_at"])
    return upload_request


# --- the outsider's side: password, sender, credential -----------------------------


def upload_request_check_password(
    *, upload_request: UploadRequest, password: str, address: str
) -> bool:
    """Whether ``password`` opens the request, counted per client address first.

    The count is the sign-in throttle's (one statement, before the hash is
    checked), keyed by the request, so a burst of parallel guesses gets no
    more tries than ``AXES_FAILURE_LIMIT`` per ``AXES_COOLOFF_MINUTES``.
    """
    if not upload_request.password_hash:
        return True
    key = f"upload-request:{upload_request.id}"
    attempt: SignInAttempt = sign_in_attempt_count(username=key, address=address)
    if not attempt.allowed:
        raise UploadRequestPasswordThrottled(
            f"Too many wrong passwords; try again in {attempt.lockout.minutes_left()} minutes.",
            details={"retry_after_minutes": attempt.lockout.minutes_left()},
        )
    if check_password(password or "", upload_request.password_hash):
        sign_in_attempts_clear(username=key, address=address)
        return True
    return False


def submission_start(
    *, upload_request: UploadRequest, sender_name: str = "", sender_email: str = ""
) -> UploadRequestSubmission:
    """A sender begins: their own batch (owned by the requester) and submission."""
    upload_request_check_open(upload_request)
    name = clean_text((sender_name or "").strip(), field="sender_name")
    if len(name) > SENDER_NAME_MAX_LENGTH:
        raise ValidationError(
            f"Your name is at most {SENDER_NAME_MAX_LENGTH} characters.",
            details={"field": "sender_name"},
        )
    email = (sender_email or "").strip()
    if email:
        if "@" not in email or len(email) > 254:
            raise ValidationError("Enter a valid email address.", details={"field": "sender_email"})
        email = normalize_email(email)
    if upload_request.require_sender and not (name and email):
        raise ValidationError(
            "Please give your name and email address.",
            details={"field": "sender_name" if not name else "sender_email"},
        )
    label = name or email or "someone"
    with transaction.atomic():
        batch = UploadBatch.objects.create(
            owner=upload_request.owner,
            metadata={
                "name": f"{upload_request.title} — {label}"[:200],
                "upload_request_id": str(upload_request.id),
            },
        )
        submission = UploadRequestSubmission.objects.create(
            request=upload_request, batch=batch, sender_name=name, sender_email=email
        )
    return submission


def submission_credential(submission: UploadRequestSubmission) -> str:
    """The signed value the public page sends in ``Upload-Request-Token``."""
    return signing.dumps(
        {"s": str(submission.id), "r": str(submission.request_id)}, salt=CREDENTIAL_SALT
    )


def submission_from_credential(raw: str) -> UploadRequestSubmission:
    """The submission a credential names (401 if forged); 410 when its request closed."""
    try:
        value = signing.loads(raw, salt=CREDENTIAL_SALT)
        submission = (
            UploadRequestSubmission.objects.select_related("request", "request__owner")
            .filter(id=value["s"], request_id=value["r"])
            .first()
        )
    except (signing.BadSignature, KeyError, TypeError, ValueError, ApplicationError):
        submission = None
    if submission is None:
        raise AuthenticationError("The upload request credential is not valid.")
    if not submission.request.owner.is_active:
        raise AuthenticationError("The upload request credential is not valid.")
    upload_request_check_open(submission.request)
    return submission


def submission_file_fields(submission: UploadRequestSubmission | None) -> dict[str, Any]:
    """The fields a file sent in ``submission`` carries (none for other files)."""
    if submission is None:
        return {}
    return {
        "upload_request_id": submission.request_id,
        "sender_name": submission.sender_name,
        "sender_email": submission.sender_email,
    }


def submission_allowed_types(submission: UploadRequestSubmission | None) -> list[str] | None:
    if submission is None or not submission.request.allowed_types:
        return None
    return list(submission.request.allowed_types)


# --- admission: the limits, under concurrency ------------------------------------------


def _declared_type(filename: str, filetype: str) -> str | None:
    guessed = mimetypes.guess_type(filename or "", strict=False)[0]
    for candidate in (filetype, guessed):
        kind = (candidate or "").split(";", 1)[0].strip().lower()
        if kind and kind != "application/octet-stream" and "/" in kind:
            return kind
    return None


@dataclass(frozen=True)
class Admitted:
    files: int
    bytes: int


def upload_request_admit(
    *, submission: UploadRequestSubmission, length: int, filename: str, filetype: str
) -> Admitted:
    """Admit one upload of ``length`` bytes into ``submission``, or refuse it.

    Runs inside the transaction that creates the upload session: the request
    row is locked, so admissions into one request happen one at a time and
    each sees every earlier one (PostgreSQL's READ COMMITTED reads afresh
    per statement). This is the one place an upload for a request is
    admitted: a per-owner quota check belongs here too.
    """
    from portal.services.content_types import type_allowed

    upload_request = UploadRequest.objects.select_for_update(no_key=True).get(
        pk=submission.request_id
    )
    upload_request_check_open(upload_request)
    if submission.submitted_at is not None:
        raise ConflictError(
            "These uploads were already sent; open the link again to send more.",
            code="submission_finished",
            details={"submission_id": str(submission.id)},
        )
    if upload_request.allowed_types:
        kind = _declared_type(filename, filetype)
        if kind is None or not type_allowed(kind, upload_request.allowed_types):
            raise UnsupportedMediaTypeError(
                f"This link accepts only {', '.join(upload_request.allowed_types)}.",
                code="upload_request_type",
                details={
                    "limit": "allowed_types",
                    "content_type": kind or "",
                    "allowed_types": upload_request.allowed_types,
                },
            )
    now = timezone.now()
    # Deleted since (COMPLETE without a file) still counts: it was received.
    live = Session.objects.filter(submission__request_id=upload_request.id).filter(
        Q(status=Session.Status.COMPLETE) | Q(status=Session.Status.ACTIVE, expires_at__gt=now)
    )
    totals = live.aggregate(files=Count("id"), bytes=Sum("length"))
    files = int(totals["files"] or 0)
    used = int(totals["bytes"] or 0)
    if upload_request.max_files is not None and files + 1 > upload_request.max_files:
        raise PermissionDeniedError(
            f"This link takes at most {upload_request.max_files} files, and has them all.",
            code="upload_request_max_files",
            details={"limit": "max_files", "max_files": upload_request.max_files},
        )
    if upload_request.max_bytes is not None and used + length > upload_request.max_bytes:
        remaining = max(0, upload_request.max_bytes - used)
        raise PayloadTooLargeError(
            f"This link takes at most {upload_request.max_bytes} bytes in all; "
            f"{remaining} bytes are left.",
            code="upload_request_max_bytes",
            details={
                "limit": "max_bytes",
                "max_bytes": upload_request.max_bytes,
                "remaining_bytes": remaining,
                "length": length,
            },
        )
    return Admitted(files=files + 1, bytes=used + length)


def upload_request_usage(upload_request: UploadRequest) -> Admitted:
    """Files and bytes received so far (stored files of the request)."""
    totals = UploadFile.objects.filter(
        upload_request=upload_request, status=UploadFile.Status.STORED
    ).aggregate(bytes=Sum("size"))
    count = UploadFile.objects.filter(
        upload_request=upload_request, status=UploadFile.Status.STORED
    ).count()
    return Admitted(files=count, bytes=int(totals["bytes"] or 0))


# --- the end of a sender's uploads ---------------------------------------------------------


def submission_finish(*, submission: UploadRequestSubmission) -> UploadRequestSubmission:
    """The sender's uploads have ended: close their batch, tell the owner (once).

    Emits ``upload_request.submitted`` and queues the owner's email after
    commit. A submission with no file ends quietly; finishing twice is a no-op.
    """
    if submission.submitted_at is not None:
        return submission
    if submission.batch is not None:
        # Its own transaction; closing twice changes nothing.
        batch_close(batch=submission.batch, actor=submission.request.owner)
    with transaction.atomic():
        locked = (
            UploadRequestSubmission.objects.select_for_update(no_key=True, of=("self",))
            .select_related("request", "request__owner", "batch")
            .get(pk=submission.pk)
        )
        if locked.submitted_at is not None:
            return locked
        if UploadFile.objects.filter(
            batch_id=locked.batch_id, status=UploadFile.Status.SCANNING
        ).exists():
            # Files still being verified: the submission is sent when the
            # last of them is (``submission_finish_verified``), so the event
            # lists them stored, or leaves out those quarantined or rejected.
            logger.info("Upload request submission %s waits for verification", locked.id)
            return locked
        locked.submitted_at = timezone.now()
        locked.save(update_fields=["submitted_at", "updated_at"])
        files = list(
            UploadFile.objects.filter(batch_id=locked.batch_id)
            .select_related("owner")
            .order_by("created_at")
        )
        if any(f.status == UploadFile.Status.STORED for f in files):
            emit_event(
                aggregate_type="upload_request",
                aggregate_id=locked.request_id,
                event_type="upload_request.submitted",
                payload=upload_request_submitted_payload(locked, files),
                idempotency_key=str(locked.id),
            )
            transaction.on_commit(lambda: _notify_owner_later(locked.id))
    logger.info("Upload request %s: submission %s sent", locked.request_id, locked.id)
    return locked


def submission_finish_verified(*, batch_id: Any) -> None:
    """A file of ``batch_id`` finished its verification: if it belongs to an
    outsider's submission whose sender had finished (its batch closed) and
    that was waiting for it, send that submission now."""
    submission = (
        UploadRequestSubmission.objects.filter(
            batch_id=batch_id, submitted_at__isnull=True, batch__closed_at__isnull=False
        )
        .select_related("request", "request__owner", "batch")
        .first()
    )
    if submission is not None:
        submission_finish(submission=submission)


def submissions_finish_idle(*, idle_minutes: int, limit: int = 200) -> dict[str, int]:
    """Send the submissions whose sender left without finishing (the page closed).

    A submission counts as ended when it has a stored file, none of its
    uploads is still receiving (an unfinished one expires after
    ``RESUMABLE_UPLOAD_EXPIRY_HOURS``), and nothing has moved for
    ``idle_minutes``. Each is finished as if the sender had pressed
    "I'm done": batch closed, ``upload_request.submitted``, the owner's email.
    """
    now = timezone.now()
    quiet_since = now - timedelta(minutes=idle_minutes)
    receiving = Session.objects.filter(
        submission=OuterRef("pk"), status=Session.Status.ACTIVE, expires_at__gt=now
    )
    recent = Session.objects.filter(submission=OuterRef("pk"), updated_at__gt=quiet_since)
    stored = UploadFile.objects.filter(
        batch_id=OuterRef("batch_id"), status=UploadFile.Status.STORED
    )
    idle = (
        UploadRequestSubmission.objects.filter(submitted_at__isnull=True, batch__isnull=False)
        .filter(Exists(stored), ~Exists(receiving), ~Exists(recent))
        .select_related("request", "request__owner", "batch")
        .order_by("created_at")
    )
    found = list(idle[: limit + 1])
    for submission in found[:limit]:
        submission_finish(submission=submission)
    return {"finished": len(found[:limit]), "remaining": max(0, len(found) - limit)}


def _notify_owner_later(submission_id: Any) -> None:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        upload_request_notify_owner(submission_id=submission_id)
        return
    current_app.send_task(NOTIFY_TASK, args=[str(submission_id)])


def upload_request_notify_owner(*, submission_id: Any) -> bool:
    """Email the owner that a sender's files arrived (Django's email, the task's body)."""
    from django.core.mail import send_mail

    submission = (
        UploadRequestSubmission.objects.select_related("request", "request__owner", "batch")
        .filter(pk=submission_id)
        .first()
    )
    if submission is None or not submission.request.owner.email:
        return False
    upload_request = submission.request
    files = list(UploadFile.objects.filter(batch_id=submission.batch_id).order_by("created_at"))
    stored = [f for f in files if f.status == UploadFile.Status.STORED]
    who = submission.sender_name or "Someone"
    if submission.sender_email:
        who += f" <{submission.sender_email}>"
    lines = [
        f"{who} sent {len(stored)} file{'s' if len(stored) != 1 else ''} "
        f"through your upload request “{upload_request.title}”.",
        "",
        *(f"  - {f.filename} ({f.size} bytes)" for f in stored[:50]),
    ]
    if len(stored) > 50:
        lines.append(f"  … and {len(stored) - 50} more")
    refused = len(files) - len(stored)
    if refused:
        lines += ["", f"{refused} file{'s were' if refused != 1 else ' was'} refused."]
    if submission.batch_id:
        link = site_url() + reverse("frontend:batch_detail", args=[submission.batch_id])
        lines += ["", f"See them in Doorito: {link}"]
    send_mail(
        subject=f"Files received: {upload_request.title}"[:200],
        message="\n".join(lines) + "\n",
        from_email=None,
        recipient_list=[upload_request.owner.email],
    )
    logger.info("Upload request %s: owner told of submission %s", upload_request.id, submission.id)
    return True
