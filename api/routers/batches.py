"""Batches: create, list, detail with progress, their files, close."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from ninja import Query, Router, Schema, Status
from pydantic import Field

from accounts.models import User
from api.auth import ApiRequest
from api.errors import errors
from api.pagination import CursorPageIn, PageIn, PageOut, paginate
from api.routers.files import FileFilters, FilePage, list_page
from api.validation import INTEGRAL, BodyIn, SafeJsonObject, SafeStr
from common.exceptions import NotFoundError
from common.services.json_input import MAX_JSON_DEPTH
from portal.models import UploadBatch
from portal.selectors import batches_for_user
from portal.services.batches import (
    MAX_EXPECTED_FILES,
    MAX_METADATA_BYTES,
    batch_close,
    batch_create,
)

router = Router(tags=["batches"])

BatchStatus = Literal["init", "in_progress", "complete", "partial", "failed", "incomplete", "empty"]


class BatchCreateIn(BodyIn):
    expected_files: Annotated[int, Field(ge=1, le=MAX_EXPECTED_FILES), INTEGRAL] | None = Field(
        None,
        description="How many files will come; the batch completes when all have ended. "
        "Leave out and close the batch instead.",
    )
    idempotency_key: SafeStr | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="Retrying with the same key returns the same batch.",
    )
    metadata: SafeJsonObject | None = Field(
        None,
        description=f"A JSON object, at most {MAX_METADATA_BYTES // 1024} KiB, nested at most "
        f"{MAX_JSON_DEPTH} levels, finite numbers only.",
    )


class BatchOut(Schema):
    id: UUID
    owner_id: UUID
    status: BatchStatus = Field(
        description="init, in_progress; ended: complete (all stored), partial, failed (none "
        "stored), incomplete (closed before every expected file came), empty (closed with no "
        "file and none announced)."
    )
    expected_files: int | None = Field(
        description="As given at creation (kept when the batch is closed early); for a batch "
        "created without it, the number of files that had arrived when it was closed."
    )
    files_stored: int = Field(description="Files of the batch stored now (deleted ones leave).")
    files_failed: int = Field(description="Files of the batch refused (deleted ones leave).")
    files_deleted: int = Field(description="Files that arrived and have been deleted since.")
    files_ended: int = Field(description="Files that arrived: stored + failed + deleted.")
    files_missing: int = Field(
        description="Expected files that never came (non-zero only when status is incomplete)."
    )
    progress: float | None = Field(
        description="Ended files / expected files (0..1); null while the count is unknown; "
        "0 for a batch closed empty."
    )
    idempotency_key: str | None
    metadata: dict[str, Any]
    created_at: datetime
    closed_at: datetime | None
    completed_at: datetime | None

    @staticmethod
    def resolve_progress(batch: UploadBatch) -> float | None:
        if batch.status == UploadBatch.Status.EMPTY:
            return 0.0
        if not batch.expected_files:
            return 1.0 if batch.status in UploadBatch.TERMINAL_STATUSES else None
        return min(1.0, batch.files_ended / batch.expected_files)


class BatchPage(PageOut):
    items: list[BatchOut]


def get_visible_batch(user: User, batch_id: UUID) -> UploadBatch:
    batch = batches_for_user(user).filter(pk=batch_id).first()
    if batch is None:
        raise NotFoundError("Batch not found.", details={"batch_id": str(batch_id)})
    return batch


@router.post("/batches", response={201: BatchOut, **errors()}, summary="Create a batch")
def create_batch(request: ApiRequest, body: BatchCreateIn):
    batch = batch_create(
        owner=request.auth,
        expected_files=body.expected_files,
        idempotency_key=body.idempotency_key,
        metadata=body.metadata,
    )
    return Status(201, batch)


@router.get("/batches", response={200: BatchPage, **errors()}, summary="List batches")
def list_batches(
    request: ApiRequest,
    page: Query[PageIn],
    status: BatchStatus | None = None,
):
    queryset = batches_for_user(request.auth)
    if status:
        queryset = queryset.filter(status=status)
    return paginate(queryset.order_by("-created_at", "-id"), page)


@router.get("/batches/{batch_id}", response={200: BatchOut, **errors(404)}, summary="Batch detail")
def get_batch(request: ApiRequest, batch_id: UUID):
    """The batch with its counters and progress."""
    return get_visible_batch(request.auth, batch_id)


@router.get(
    "/batches/{batch_id}/files",
    response={200: FilePage, **errors(404)},
    summary="List a batch's files",
)
def list_batch_files(
    request: ApiRequest, batch_id: UUID, filters: Query[FileFilters], page: Query[CursorPageIn]
):
    batch = get_visible_batch(request.auth, batch_id)
    filters.batch_id = batch.id
    return list_page(request.auth, filters, page)


@router.post(
    "/batches/{batch_id}/close",
    response={200: BatchOut, **errors(404)},
    summary="Close a batch",
)
def close_batch(request: ApiRequest, batch_id: UUID):
    """No more files will come: the batch ends with the files it has.

    A batch that announced ``expected_files`` keeps it; closed before all came
    it ends ``incomplete`` with ``files_missing`` > 0.
    """
    return batch_close(batch=get_visible_batch(request.auth, batch_id), actor=request.auth)
