"""Uploads: sizes, types and lifetimes of stored files and resumable (tus)
sessions. How often the cleanup runs is a beat setting
(``CLEANUP_UPLOADS_INTERVAL_HOURS``, ``boot/settings_parts/celery.py``)."""

from __future__ import annotations

from configurations import values

from boot.settings_parts.environment import env


class UploadSettings:
    FILE_UPLOAD_TTL_HOURS = env(values.IntegerValue, 24)
    # The longest keep time an uploader may ask for (``ttl_hours``); shorter
    # ones down to an hour are always allowed.
    FILE_UPLOAD_MAX_TTL_HOURS = env(values.IntegerValue, 720)
    FILE_UPLOAD_EXPIRY_NOTIFY_HOURS = env(values.IntegerValue, 1)
    FILE_UPLOAD_MAX_SIZE = env(values.IntegerValue, 50 * 1024 * 1024)
    FILE_UPLOAD_ALLOWED_TYPES = env(values.ListValue, None)
    RESUMABLE_UPLOAD_MAX_SIZE = env(values.IntegerValue, 5 * 1024**3)
    RESUMABLE_UPLOAD_EXPIRY_HOURS = env(values.IntegerValue, 24)
    # An ``uploading`` record untouched this long was abandoned (its writer is
    # gone); the hourly expire-stale-upload-sessions run removes it and its bytes.
    UPLOAD_STALE_MINUTES = env(values.IntegerValue, 60)
    # Per-user defaults (0 = unlimited); staff set overrides per user
    # (``portal.UserQuota``, in the admin).
    USER_QUOTA_BYTES = env(values.IntegerValue, 0)
    USER_QUOTA_FILES = env(values.IntegerValue, 0)
