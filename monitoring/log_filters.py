"""Logging filters named by ``LOGGING`` (``boot/settings_parts/monitoring.py``)."""

from __future__ import annotations

import logging


class ClientErrorWithoutTraceback(logging.Filter):
    """Log a client error (a 4xx) as its one line, without the traceback.

    Django logs a ``PermissionDenied`` or ``SuspiciousOperation`` that became
    a 403/400 with the exception attached (``django.request``,
    ``django.security.*``), so every refused page printed a full traceback.
    The traceback says nothing about a client's mistake; a 5xx keeps it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
