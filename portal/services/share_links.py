"""Share links: made by a file's (or batch's) owner, used by anyone holding them.

A link's token carries 256 bits from ``secrets``; only its SHA-256 is stored
(like API tokens), so the plain link exists once, in the answer that made it.
A download is counted before its bytes go out by one conditional UPDATE
(``share_link_claim_download``): PostgreSQL re-checks the WHERE clause on
the row it locked, so however many downloads start at once, at most
``max_downloads`` are let through. A download cut short still uses its turn:
giving it back would let a client fetch almost all of a file again and again.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.hashers import check_password, make_password
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.services.sign_in_throttle import (
    SignInLockout,
    sign_in_attempt_count,
    sign_in_attempts_clear,
)
from accounts.services.tokens import token_hash
from common.exceptions import ConflictError, PermissionDeniedError, ValidationError
from portal.models import ShareLink, UploadBatch, UploadFile

# The default life of a link made without ``expires_in_hours`` (never past the file's).
DEFAULT_HOURS = 24
# A link may not outlive a year even on a file that never expires.
MAX_HOURS = 24 * 365
MAX_DOWNLOADS = 1_000_000
PASSWORD_MAX_LENGTH = 128


class ShareLinkState:
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    USED_UP = "used_up"


def share_link_state(link: ShareLink) -> str:
    """Whether the link still hands out its file: active, or why not."""
    return link.state


def _latest_expiry(*, file: UploadFile | None, batch: UploadBatch | None) -> datetime | None:
    """When the shared bytes are gone: the file's expiry, or a batch's last file's.

    ``None`` when nothing shared expires.
    """
    if file is not None:
        return file.expires_at
    assert batch is not None
    stored = UploadFile.objects.filter(batch=batch, status=UploadFile.Status.STORED)
    if stored.filter(expires_at__isnull=True).exists():
        return None
    ends = [when for when in stored.values_list("expires_at", flat=True) if when is not None]
    return max(ends, default=None)


def _clean_int(value: Any, *, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{field} must be a whole number.", details={"field": field})
    if not low <= value <= high:
        raise ValidationError(
            f"{field} must be between {low} and {high}.",
            details={"field": field, "min": low, "max": high},
        )
    return value


def _clean_password(password: Any) -> str:
    if password is None or password == "":
        return ""
    if not isinstance(password, str) or len(password) > PASSWORD_MAX_LENGTH:
        raise ValidationError(
            f"password must be text of at most {PASSWORD_MAX_LENGTH} characters.",
            details={"field": "password", "max_length": PASSWORD_MAX_LENGTH},
        )
    if "\x00" in password:
        raise ValidationError("password cannot contain NUL.", details={"field": "password"})
    return password


@dataclass(frozen=True)
class NewShareLink:
    link: ShareLink
    token: str


def share_link_create(
    *,
    owner: Any,
    file: UploadFile | None = None,
    batch: UploadBatch | None = None,
    expires_in_hours: int | None = None,
    password: str | None = None,
    max_downloads: int | None = None,
) -> NewShareLink:
    """Make a link to a stored file, or to a batch's stored files as one zip.

    Only the owner shares (staff see everyone's files, but handing them to
    outsiders stays the owner's decision). The link never outlives what it
    shares: ``expires_in_hours`` past the file's expiry (a batch's last
    file's) is refused with the hours that are left; without it the link
    lives ``DEFAULT_HOURS``, or less if the file goes sooner.
    """
    if (file is None) == (batch is None):
        raise ValidationError("Share either a file or a batch.")
    target = file if file is not None else batch
    assert target is not None
    if target.owner_id != owner.pk:
        raise PermissionDeniedError("You may only share your own files.")
    if file is not None and (file.status != UploadFile.Status.STORED or not file.storage_key):
        raise ConflictError(
            "Only stored files can be shared.",
            code="file_not_stored",
            details={"file_id": str(file.id), "status": file.status},
        )
    if batch is not None and not batch.files.filter(status=UploadFile.Status.STORED).exists():
        raise ConflictError(
            "This batch has no stored files to share.",
            code="batch_empty",
            details={"batch_id": str(batch.id)},
        )
    now = timezone.now()
    latest = _latest_expiry(file=file, batch=batch)
    left_hours = MAX_HOURS if latest is None else int((latest - now).total_seconds() // 3600)
    if expires_in_hours is None:
        expires_at = now + timedelta(hours=DEFAULT_HOURS)
        if latest is not None:
            expires_at = min(expires_at, latest)
    else:
        hours = _clean_int(expires_in_hours, field="expires_in_hours", low=1, high=MAX_HOURS)
        if hours > left_hours:
            raise ValidationError(
                f"The link cannot outlive the file: at most {max(left_hours, 0)} hours.",
                code="expires_after_file",
                details={
                    "field": "expires_in_hours",
                    "max": max(left_hours, 0),
                    "file_expires_at": latest.isoformat() if latest else None,
                },
            )
        expires_at = now + timedelta(hours=hours)
    if max_downloads is not None:
        max_downloads = _clean_int(max_downloads, field="max_downloads", low=1, high=MAX_DOWNLOADS)
    secret = _clean_password(password)
    raw = secrets.token_urlsafe(32)
    with transaction.atomic(durable=True):
        link = ShareLink.objects.create(
            owner=owner,
            file=file,
            batch=batch,
            token_hash=token_hash(raw),
            password_hash=make_password(secret) if secret else "",
            max_downloads=max_downloads,
            expires_at=expires_at,
        )
    return NewShareLink(link=link, token=raw)


def share_link_revoke(*, link: ShareLink, actor: Any) -> ShareLink:
    """Revoke a link (its owner only); revoking twice keeps the first time."""
    if link.owner_id != actor.pk:
        raise PermissionDeniedError("You may only revoke your own links.")
    if link.revoked_at is None:
        link.revoked_at = timezone.now()
        link.save(update_fields=["revoked_at", "updated_at"])
    return link


def share_link_claim_download(*, link: ShareLink) -> bool:
    """Count one download if the link still allows it; False when it does not.

    One statement, ``UPDATE … SET downloads = downloads + 1 WHERE … AND
    downloads < max_downloads``: of any number of parallel callers exactly
    the allowed number see a row updated.
    """
    now = timezone.now()
    updated = (
        ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True, expires_at__gt=now)
        .filter(Q(max_downloads__isnull=True) | Q(downloads__lt=F("max_downloads")))
        .update(downloads=F("downloads") + 1, last_downloaded_at=now, updated_at=now)
    )
    return updated == 1


@dataclass(frozen=True)
class PasswordCheck:
    ok: bool
    lockout: SignInLockout | None = None


def share_link_check_password(*, link: ShareLink, password: str, address: str) -> PasswordCheck:
    """Check a visitor's password, counted per (link, client address) before it is checked.

    The sign-in throttle's counter (``AXES_FAILURE_LIMIT`` tries per
    ``AXES_COOLOFF_MINUTES``) under the name ``share-link:<id>``, so a burst
    of parallel guesses gets no more tries than one at a time.
    """
    name = f"share-link:{link.pk}"
    attempt = sign_in_attempt_count(username=name, address=address)
    if not attempt.allowed:
        return PasswordCheck(ok=False, lockout=attempt.lockout)
    if link.password_hash and check_password(password or "", link.password_hash):
        sign_in_attempts_clear(username=name, address=address)
        return PasswordCheck(ok=True)
    return PasswordCheck(ok=False, lockout=attempt.lockout if attempt.last_allowed else None)
