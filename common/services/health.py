"""Readiness checks: each returns None when healthy or a short reason string."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import connections

logger = logging.getLogger(__name__)


def check_database() -> str | None:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        logger.warning("readiness: database unreachable: %s", exc)
        return f"database unreachable: {exc.__class__.__name__}"
    return None


def check_broker() -> str | None:
    from boot.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
            # kombu connections are lazy; a channel proves the transport answers.
            conn.default_channel  # noqa: B018
    except Exception as exc:
        logger.warning("readiness: broker unreachable: %s", exc)
        return f"broker unreachable: {exc.__class__.__name__}"
    return None


def check_storage() -> str | None:
    from django.core.files.storage import default_storage

    try:
        default_storage.exists("readyz-probe")
    except Exception as exc:
        logger.warning("readiness: storage unreachable: %s", exc)
        return f"storage unreachable: {exc.__class__.__name__}"
    return None


READINESS_CHECKS: dict[str, Callable[[], str | None]] = {
    "database": check_database,
    "broker": check_broker,
    "storage": check_storage,
}


def run_readiness_checks() -> dict[str, str]:
    """Runs every check; returns ``{name: "ok" | reason}``."""
    return {name: (check() or "ok") for name, check in READINESS_CHECKS.items()}
