"""Acting on several files at once (the Files page's bulk actions).

Each file goes through the one-file service (``upload_file_delete``), so a
bulk delete removes bytes and records and announces ``file.deleted`` exactly
as one delete does; only the owner's own files are ever picked.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from portal.models import UploadFile
from portal.services.file_records import upload_file_delete

# More than a page of the Files list (25), few enough for one request.
MAX_BULK_FILES = 200


def owned_files(*, owner: Any, ids: Iterable[UUID]) -> list[UploadFile]:
    """The owner's files among ``ids`` (anyone else's are silently not there), oldest first."""
    wanted = list(dict.fromkeys(ids))[:MAX_BULK_FILES]
    return list(
        UploadFile.objects.select_related("owner")
        .filter(owner=owner, pk__in=wanted)
        .order_by("created_at", "id")
    )


def upload_files_delete(*, files: Iterable[UploadFile], actor: Any) -> int:
    """Delete each file as ``upload_file_delete`` would; return how many went."""
    deleted = 0
    for file in files:
        upload_file_delete(file=file, actor=actor)
        deleted += 1
    return deleted
