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

    # --- Verified ingest (portal/services/verification.py, docs/portal.md) ----
    # clamd to stream every received file to (INSTREAM): tcp://host:port or
    # unix:///path/to/clamd.ctl. Empty: no scanning.
    CLAMD_URL = env(values.Value, "")
    # closed: files wait in ``scanning`` while clamd is unreachable (retried,
    # swept); open: they are stored, marked unscanned.
    SCAN_FAIL_MODE = env(values.Value, "closed")
    # The longest clamd may stay silent on one socket operation (a 1 GiB
    # file's verdict takes a few seconds after its last byte).
    CLAMD_TIMEOUT_SECONDS = env(values.FloatValue, 60.0)
    # The operator's hook asked before an upload is created (upload.pre_create)
    # and before a received file is stored (upload.pre_store).
    UPLOAD_HOOK_URL = env(values.Value, "")
    UPLOAD_HOOK_SECRET = env(values.Value, "")
    UPLOAD_HOOK_TIMEOUT_SECONDS = env(values.FloatValue, 5.0)
    UPLOAD_HOOK_FAIL_MODE = env(values.Value, "closed")

    # Per-user defaults (0 = unlimited); staff set overrides per user
    # (``portal.UserQuota``, in the admin).
    USER_QUOTA_BYTES = env(values.IntegerValue, 0)
    USER_QUOTA_FILES = env(values.IntegerValue, 0)
    # Upload requests (links for outsiders to send files): the longest a link
    # may stay open, and its default.
    UPLOAD_REQUEST_MAX_HOURS = env(values.IntegerValue, 30 * 24)
    UPLOAD_REQUEST_DEFAULT_HOURS = env(values.IntegerValue, 7 * 24)
    # A sender who left without finishing: their stored files are sent (event,
    # email) by the hourly run once nothing has moved for this long.
    UPLOAD_REQUEST_IDLE_MINUTES = env(values.IntegerValue, 60)
