"""Expiry notices: one ``file.expiring`` per stored file, shortly before TTL cleanup.

Each run looks at every stored file that will be (or already is) past its
``expires_at`` within ``notify_hours`` (a stored file without one, from
before keep times, expires ``ttl_hours`` after it was created); the outbox's unique ``(event_type,
idempotency_key)`` with the file id as key makes repeated and concurrent runs
emit each notice once. Files already notified are counted as skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from common.selectors import event_keys_existing
from common.services.emit import emit_event
from portal.models import UploadFile
from portal.services.payloads import file_event_payload

logger = logging.getLogger(__name__)

EVENT_TYPE = "file.expiring"
CHUNK_SIZE = 500


@dataclass(frozen=True)
class NotifyResult:
    notified: int
    skipped: int


def notify_expiring_files(
    *,
    ttl_hours: int,
    notify_hours: int,
    now: datetime | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> NotifyResult:
    """Emit ``file.expiring`` for each stored file within ``notify_hours`` of expiry."""
    now = now or timezone.now()
    soon = now + timedelta(hours=notify_hours)
    threshold = soon - timedelta(hours=ttl_hours)
    due = (
        UploadFile.objects.filter(
            Q(expires_at__lte=soon) | Q(expires_at__isnull=True, created_at__lte=threshold),
            status=UploadFile.Status.STORED,
        )
        .select_related("owner")
        .order_by("created_at", "id")
    )
    notified = skipped = 0
    last = None
    while True:
        page = (
            due
            if last is None
            else due.filter(created_at__gte=last[0]).exclude(created_at=last[0], id__lte=last[1])
        )
        files = list(page[:chunk_size])
        if not files:
            break
        last = (files[-1].created_at, files[-1].id)
        known = event_keys_existing(event_type=EVENT_TYPE, keys=[str(f.id) for f in files])
        for file in files:
            if str(file.id) in known:
                skipped += 1
                continue
            event = emit_event(
                aggregate_type="file",
                aggregate_id=file.id,
                event_type=EVENT_TYPE,
                payload=file_event_payload(file),
                idempotency_key=str(file.id),
            )
            if event is None:
                # A concurrent run notified this file first (ON CONFLICT DO NOTHING).
                skipped += 1
                continue
            notified += 1
    logger.info("Expiry notices: %d emitted, %d already sent", notified, skipped)
    return NotifyResult(notified=notified, skipped=skipped)
