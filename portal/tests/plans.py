"""Many files quickly, and what a query read of them: for the tests that pin
down that the dashboard and the file lists never read every file."""

from __future__ import annotations

import json
from typing import Any

from django.db import connection

FILES_TABLE = "portal_uploadfile"


def bulk_files(owner: Any, count: int, *, expires_in_hours: int = 24) -> None:
    """`count` stored files of `owner`, a second apart, written by one statement
    (the services would take minutes); the triggers count them like any other.
    Every NOT NULL column without a database default is named."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO portal_uploadfile (id, created_at, updated_at, owner_id, storage_key,"
            " filename, content_type, size, sha256, metadata, status, error_message,"
            " stored_at, expires_at, sender_name, sender_email, scan_result, scan_signature,"
            " verify_attempts)"
            " SELECT common_uuid7(), now() - make_interval(secs => g), now(), %s,"
            " 'bulk/' || %s || '/' || g, 'bulk-' || g || '.txt', 'text/plain', 10, '',"
            " '{}'::jsonb, 'stored', '', now(), now() + make_interval(hours => %s),"
            " '', '', '', '', 0"
            " FROM generate_series(1, %s) g",
            [owner.pk, str(owner.pk), expires_in_hours, count],
        )
        cursor.execute(f"ANALYZE {FILES_TABLE}")


def _scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan] if plan.get("Relation Name") == FILES_TABLE else []
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


def files_read(sql: str) -> int:
    """Rows of the files table (or its indexes) that running `sql` read."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
        raw = cursor.fetchone()[0]
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    return sum(
        node["Actual Rows"] * node.get("Actual Loops", 1)
        + node.get("Rows Removed by Filter", 0) * node.get("Actual Loops", 1)
        for node in _scans(plan)
    )


def files_read_by(queries: list[dict[str, str]]) -> dict[str, int]:
    """For each captured SELECT that touches the files table: the rows it read."""
    return {
        q["sql"]: files_read(q["sql"])
        for q in queries
        if q["sql"].startswith("SELECT") and FILES_TABLE in q["sql"]
    }
