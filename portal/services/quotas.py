"""Per-user quotas: the one admission check every upload path calls when it starts.

Bytes and files are counted as stored files plus uploads in progress
(``portal.selectors.quota_usage_for_owner``): a resumable upload reserves
its ``Upload-Length`` from its creation, so parallel creations cannot
together pass the quota. ``admit_upload`` runs inside the transaction that
writes the reservation (the session, or the record that becomes stored),
under a per-owner advisory lock held until that transaction ends: two
admissions for one owner happen one after the other, and the second sees
the first's reservation. Users without a quota (the default) take no lock
and cost no query beyond reading their limits.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connection

from common.exceptions import PayloadTooLargeError
from portal.selectors import QuotaLimits, quota_limits_for_owner, quota_usage_for_owner

logger = logging.getLogger(__name__)

# Any fixed number: the first key of the per-owner advisory lock (the second
# is a hash of the owner's id; a collision only makes two owners wait).
_QUOTA_LOCK_CLASS = 0x646F6F71


class QuotaExceededError(PayloadTooLargeError):
    code = "quota_exceeded"
    default_message = "This upload would exceed your quota."


def admit_upload(*, owner: Any, size: int, files: int = 1) -> QuotaLimits:
    """Refuse (413 ``quota_exceeded``) an upload of ``size`` bytes and ``files`` files
    that would take ``owner`` past a quota; otherwise hold the owner's quota
    lock until the caller's transaction ends.

    Call it inside the transaction that records the upload's reservation
    (an upload session, or the file record turning stored), so the next
    admission counts it. ``files=0`` for a check of bytes only, such as a
    deferred ``Upload-Length`` or the actual size of a simple upload whose
    ``uploading`` record is already counted.
    """
    limits = quota_limits_for_owner(owner=owner)
    if limits.unlimited:
        return limits
    if not connection.in_atomic_block:
        raise RuntimeError("admit_upload must run in the transaction that records the upload")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
            [_QUOTA_LOCK_CLASS, str(owner.pk)],
        )
    usage = quota_usage_for_owner(owner=owner)
    if limits.max_files and usage.files + files > limits.max_files:
        raise QuotaExceededError(
            f"You have {usage.files} files stored or uploading; your quota is "
            f"{limits.max_files} files.",
            details={"quota": "files", "limit": limits.max_files, "used": usage.files},
        )
    if limits.max_bytes and usage.bytes + size > limits.max_bytes:
        raise QuotaExceededError(
            f"This upload of {size} bytes would exceed your quota of {limits.max_bytes} "
            f"bytes ({usage.bytes} bytes stored or uploading).",
            details={
                "quota": "bytes",
                "limit": limits.max_bytes,
                "used": usage.bytes,
                "size": size,
            },
        )
    return limits
