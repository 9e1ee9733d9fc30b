"""Files: list (filters, pages), detail, download, delete, and the simple upload."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from ninja import Query, Router, Schema, Status
from ninja.decorators import decorate_view
from pydantic import BaseModel, ConfigDict, Field

from accounts.models import ApiToken, User
from accounts.services.tokens import token_hash
from api.auth import ApiRequest
from api.errors import error_response, errors
from api.pagination import CursorPageIn, NewestFirstPageOut, paginate_newest_first
from api.validation import IsoDatetime, SafeStr
from common.exceptions import (
    ConflictError,
    NotFoundError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from common.services.json_input import MAX_JSON_DEPTH, json_parse
from common.services.text import text_is_storable
from common.sizes import size_exact
from portal.models import FileDownload, UploadBatch, UploadFile
from portal.selectors import file_totals_for_owner, files_for_user
from portal.services.batches import MAX_METADATA_BYTES
from portal.services.downloads import Downloader, file_download_link
from portal.services.file_records import clean_ttl_hours, upload_file_delete
from portal.services.file_totals import FOLD_OWNER_OVER, file_totals_fold
from portal.services.streaming import (
    StreamedUpload,
    declared_file_size,
    parse_streaming_upload,
)
from portal.services.uploads import (
    upload_file_admit,
    upload_file_create,
    upload_file_create_streamed,
)

router = Router(tags=["files"])

FileStatus = Literal["uploading", "scanning", "stored", "failed", "quarantined", "rejected"]

# Room for the multipart framing and the small form fields around the file.
MULTIPART_OVERHEAD = 64 * 1024


class FileOut(BaseModel):
    """A file as the API shows it.

    A plain pydantic model, not a ninja ``Schema``: pydantic-core reads the
    fields itself instead of through ninja's per-attribute getter, which was
    a third of a 50-file page's CPU.
    """

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    owner_id: UUID
    batch_id: UUID | None
    filename: str
    content_type: str
    size: int
    sha256: str
    status: FileStatus
    error_message: str = Field(description="Why a file failed, waits, or was quarantined/rejected.")
    scan_result: Literal["", "clean", "infected", "unscanned"]
    scan_signature: str
    metadata: dict[str, Any]
    created_at: datetime
    stored_at: datetime | None
    expires_at: datetime | None
    upload_request_id: UUID | None = Field(
        None, description="Set when an outsider sent the file through an upload request."
    )
    sender_name: str = Field("", description="The sender's name, as they gave it.")
    sender_email: str = Field("", description="The sender's email, as they gave it.")


class FilePage(NewestFirstPageOut):
    items: list[FileOut]


class FileFilters(Schema):
    status: FileStatus | None = None
    batch_id: UUID | None = None
    q: SafeStr | None = Field(None, max_length=255, description="Filename contains (any case).")
    content_type: SafeStr | None = Field(
        None, max_length=255, description="Exact type, or a prefix such as `image/`."
    )
    created_after: IsoDatetime | None = None
    created_before: IsoDatetime | None = None


def filter_files(queryset: QuerySet[UploadFile], filters: FileFilters) -> QuerySet[UploadFile]:
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.batch_id:
        queryset = queryset.filter(batch_id=filters.batch_id)
    if filters.q:
        queryset = queryset.filter(filename__icontains=filters.q)
    if filters.content_type:
        if filters.content_type.endswith("/"):
            queryset = queryset.filter(content_type__startswith=filters.content_type)
        else:
            queryset = queryset.filter(content_type=filters.content_type)
    if filters.created_after:
        queryset = queryset.filter(created_at__gte=filters.created_after)
    if filters.created_before:
        queryset = queryset.filter(created_at__lt=filters.created_before)
    # FileOut needs owner_id/batch_id only: skip the selectors' joins (they
    # load every user and batch column for every row, ~30% of a page's time).
    return queryset.select_related(None).order_by("-created_at", "-id")


def kept_file_count(user: User, filters: FileFilters) -> int | None:
    """The list's total from the kept file totals, when only `status` filters it.

    Those totals are what the triggers on the files table keep per owner
    (everyone's for staff, whose list is everyone's files); other filters
    leave the count to ``paginate_newest_first`` (exact up to its cap).
    """
    if filters.model_dump(exclude={"status"}, exclude_none=True):
        return None
    owner = None if user.is_staff else user
    totals = file_totals_for_owner(owner=owner)
    if totals.foldable_rows > FOLD_OWNER_OVER:
        file_totals_fold(owner=owner)  # keeps the next request's sum small
    return totals.by_status[filters.status] if filters.status else totals.files


def list_page(user: User, filters: FileFilters, page: CursorPageIn) -> dict[str, Any]:
    """One page of the files `user` may see, newest first (files list, a batch's files)."""
    return paginate_newest_first(
        # Rows as dicts: no model instances to build and read back (~15% of
        # a page's CPU with 50 files).
        filter_files(files_for_user(user), filters).values(*FileOut.model_fields),
        page,
        count=kept_file_count(user, filters),
    )


def get_visible_file(user: User, file_id: UUID) -> UploadFile:
    """The file if `user` may see it; another user's file is indistinguishable from none."""
    file = files_for_user(user).filter(pk=file_id).first()
    if file is None:
        raise NotFoundError("File not found.", details={"file_id": str(file_id)})
    return file


@router.get("/files", response={200: FilePage, **errors()}, summary="List files")
def list_files(request: ApiRequest, filters: Query[FileFilters], page: Query[CursorPageIn]):
    """Your files, newest first (staff: everyone's), filtered and paginated."""
    return list_page(request.auth, filters, page)


@router.get("/files/{file_id}", response={200: FileOut, **errors(404)}, summary="File detail")
def get_file(request: ApiRequest, file_id: UUID):
    return get_visible_file(request.auth, file_id)


@router.get(
    "/files/{file_id}/download",
    response={302: None, **errors(404, 409)},
    summary="Download a file",
)
def download_file(request: ApiRequest, file_id: UUID):
    """Redirects (302) to a signed, expiring URL that serves the bytes.

    On S3 that is a presigned object URL; on local storage, Doorito's own
    signed download view. The URL needs no token, so it can be handed on.
    """
    file = get_visible_file(request.auth, file_id)
    if file.status != UploadFile.Status.STORED or not file.storage_key:
        raise ConflictError(
            "Only stored files can be downloaded.",
            code="file_not_stored",
            details={"file_id": str(file.id), "status": file.status},
        )
    downloader = Downloader(via=FileDownload.Via.PORTAL, user_id=request.auth.pk)
    raw = request.headers.get("Authorization", "").partition(" ")[2].strip()
    if raw:
        token = ApiToken.objects.filter(token_hash=token_hash(raw)).only("id").first()
        downloader = Downloader(
            via=FileDownload.Via.TOKEN, user_id=request.auth.pk, token_id=token and token.pk
        )
    return HttpResponseRedirect(
        file_download_link(file=file, downloader=downloader, request=request)
    )


@router.delete(
    "/files/{file_id}", response={204: None, **errors(403, 404)}, summary="Delete a file"
)
def delete_file(request: ApiRequest, file_id: UUID):
    """Removes the bytes and the record; a stored file emits `file.deleted`."""
    file = get_visible_file(request.auth, file_id)
    upload_file_delete(file=file, actor=request.auth)
    return Status(204, None)


def _declared_length(request: HttpRequest) -> int:
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def _reject_oversized_body(run: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Refuse a body whose declared length is over the limit before anything reads it."""

    def wrapped(request: ApiRequest, *args, **kwargs) -> HttpResponse:
        limit = int(settings.FILE_UPLOAD_MAX_SIZE)
        if _declared_length(request) > limit + MULTIPART_OVERHEAD:
            return error_response(
                413,
                "payload_too_large",
                f"The file is larger than the limit of {size_exact(limit)}.",
                {"max_size": limit},
            )
        return run(request, *args, **kwargs)

    return wrapped


UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "batch_id": {"type": "string", "format": "uuid"},
                    "ttl_hours": {
                        "type": "integer",
                        "minimum": 1,
                        "description": "Keep time in hours, at most `FILE_UPLOAD_MAX_TTL_HOURS` "
                        "(default `FILE_UPLOAD_TTL_HOURS`); the file's `expires_at`.",
                    },
                    "metadata": {
                        "type": "object",
                        "description": "A JSON object (sent as a JSON string), at most "
                        f"{MAX_METADATA_BYTES // 1024} KiB, nested at most {MAX_JSON_DEPTH} "
                        "levels, finite numbers only.",
                    },
                },
            },
            "encoding": {"metadata": {"contentType": "application/json"}},
        }
    },
}


@router.post(
    "/files",
    response={201: FileOut, **errors(404, 409, 413, 415)},
    summary="Upload a file (multipart)",
    openapi_extra={"requestBody": UPLOAD_BODY},
)
@decorate_view(_reject_oversized_body)
def upload_file(request: ApiRequest):
    """Simple upload of one file up to `FILE_UPLOAD_MAX_SIZE` bytes.

    The body is `multipart/form-data` with the part `file`, and optionally
    `batch_id`, `metadata` (a JSON object as a string) and `ttl_hours` (the
    keep time, 1 to `FILE_UPLOAD_MAX_TTL_HOURS`; 400 naming the field
    otherwise). The bytes are streamed to storage while hashed; the answer is
    the stored file record. A refused file (size, type) is answered 413/415
    and recorded as failed; an upload past your quota is answered 413
    `quota_exceeded` naming the quota.
    """
    # Parsed by hand (not ninja File/Form params) so the size check above runs
    # before Django reads the body, and the form's rules are exactly these.
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaTypeError(
            "Send the file as multipart/form-data.",
            code="multipart_required",
            details={"content_type": request.content_type},
        )
    user = request.auth
    # The quota, before a byte is read: the file is at least the body less
    # its framing. The exact size is checked again when it is recorded.
    upload_file_admit(owner=user, size=declared_file_size(request))
    if not hasattr(request, "_files"):
        # Straight into storage while Django reads the body (no spool file).
        # A session caller's CSRF check may have read the body already.
        parse_streaming_upload(request, owner=user)
    upload = request.FILES.get("file")
    if upload is None:
        raise ValidationError("The part 'file' is required.", details={"field": "file"})
    batch = None
    batch_id = request.POST.get("batch_id")
    if batch_id is not None:
        try:
            batch_uuid = UUID(batch_id)
        except ValueError:
            raise ValidationError(
                "batch_id must be a UUID.", details={"field": "batch_id"}
            ) from None
        batch = UploadBatch.objects.filter(pk=batch_uuid, owner=user).first()
        if batch is None:
            raise NotFoundError("Batch not found.", details={"batch_id": batch_id})
    meta = _parse_metadata(request.POST.get("metadata"))
    ttl_hours = clean_ttl_hours(request.POST.get("ttl_hours"))
    try:
        if isinstance(upload, StreamedUpload):
            stored = upload_file_create_streamed(
                owner=user, upload=upload, batch=batch, metadata=meta, ttl_hours=ttl_hours
            )
        else:
            declared = upload.content_type
            stored = upload_file_create(
                owner=user,
                stream=upload,
                filename=upload.name or "",
                content_type=declared if declared and text_is_storable(declared) else None,
                batch=batch,
                metadata=meta,
                ttl_hours=ttl_hours,
            )
    finally:
        upload.close()
    return Status(201, stored)


def _parse_metadata(raw: str | None) -> dict[str, Any] | None:
    if raw is None or raw == "":
        return None
    try:
        # NaN/Infinity and too deep nesting: a 400 naming "metadata" (raised as is).
        value = json_parse(raw, field="metadata")
    except ValueError as exc:
        raise ValidationError(
            "metadata must be a JSON object.", details={"field": "metadata"}
        ) from exc
    if not isinstance(value, dict):
        raise ValidationError("metadata must be a JSON object.", details={"field": "metadata"})
    return value  # upload_file_create checks it (clean_metadata) before any write
