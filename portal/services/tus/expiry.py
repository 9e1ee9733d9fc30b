"""Expiring resumable uploads nobody finished, and deleting their partial data."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone

from common.exceptions import ApplicationError
from portal.models import UploadPart, UploadSession
from portal.services.tus.errors import LockedError
from portal.services.tus.finalise import upload_session_complete, upload_session_is_fully_received
from portal.services.tus.locks import upload_session_lock
from portal.services.tus.parts import part_store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExpireResult:
    expired: int
    remaining: int
    purged_parts: int


def _expirable(now: datetime) -> Q:
    unfinished = Q(status=UploadSession.Status.ACTIVE) | Q(
        status=UploadSession.Status.COMPLETE, concat=UploadSession.Concat.PARTIAL
    )
    return unfinished & Q(expires_at__lte=now)


def upload_sessions_expire(*, limit: int = 500, now: datetime | None = None) -> ExpireResult:
    """Mark sessions past their expiry as expired and delete their partial data.

    Also deletes parts left behind by sessions that ended while their data
    was being removed (a crash between the two steps), so storage never
    keeps bytes nobody can reach. A session busy with a request is skipped;
    that request moves its expiry on.
    """
    now = now or timezone.now()
    store = part_store()
    due = list(
        UploadSession.objects.filter(_expirable(now))
        .order_by("expires_at")
        .values_list("id", flat=True)[:limit]
    )
    expired = 0
    purged = 0
    for session_id in due:
        try:
            with upload_session_lock(session_id):
                if _finish_if_fully_received(session_id):
                    continue
                with transaction.atomic(durable=True):
                    changed = UploadSession.objects.filter(_expirable(now), id=session_id).update(
                        status=UploadSession.Status.EXPIRED, updated_at=timezone.now()
                    )
                if changed:
                    expired += 1
                    purged += store.purge([session_id])
        except LockedError:
            continue
    leftover = list(
        UploadPart.objects.filter(
            Q(session__status__in=UploadSession.DEAD_STATUSES)
            | Q(session__status=UploadSession.Status.COMPLETE, session__concat__in=["", "final"])
        )
        .values_list("session_id", flat=True)
        .distinct()[:limit]
    )
    if leftover:
        purged += store.purge(leftover)
    remaining = UploadSession.objects.filter(_expirable(timezone.now())).count()
    return ExpireResult(expired=expired, remaining=remaining, purged_parts=purged)


def _finish_if_fully_received(session_id: UUID) -> bool:
    """Finish, rather than expire, an upload whose finalisation broke off (lock held)."""
    session = UploadSession.objects.filter(id=session_id).first()
    if session is None or not upload_session_is_fully_received(session):
        return False
    try:
        upload_session_complete(session)
    except ApplicationError:
        logger.info("Upload session %s was refused when finished by the sweep", session_id)
    except DatabaseError:
        logger.warning("Upload session %s could not be finished yet", session_id, exc_info=True)
    return True
