"""Upload requests: links for people without an account to send you files.

Create (the link is in this one response only: its token is stored hashed),
list, show with its submissions, revoke.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from django.conf import settings
from django.db.models import QuerySet
from ninja import Query, Router, Schema, Status
from pydantic import Field

from accounts.models import User
from api.auth import ApiRequest
from api.errors import errors
from api.pagination import PageIn, PageOut, paginate
from api.validation import INTEGRAL, STORABLE_TEXT, BodyIn
from common.exceptions import NotFoundError
from portal.models import UploadRequest
from portal.selectors import upload_request_submissions, upload_requests_for_user
from portal.services.upload_requests import (
    MESSAGE_MAX_LENGTH,
    PASSWORD_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    upload_request_create,
    upload_request_revoke,
    upload_request_state,
    upload_request_url,
)

router = Router(tags=["upload requests"])


class SubmissionOut(Schema):
    id: UUID
    batch_id: UUID | None
    sender_name: str
    sender_email: str
    files_stored: int
    files_failed: int
    bytes_stored: int
    created_at: datetime
    submitted_at: datetime | None


class UploadRequestOut(Schema):
    id: UUID
    owner_id: UUID
    url: str | None = Field(
        None, description="The public link: only in the answer that created the request."
    )
    title: str
    message: str
    state: Literal["open", "expired", "revoked"]
    has_password: bool
    expires_at: datetime
    revoked_at: datetime | None
    max_files: int | None
    max_bytes: int | None
    require_sender: bool
    allowed_types: list[str]
    files_received: int
    bytes_received: int
    created_at: datetime


class UploadRequestDetailOut(UploadRequestOut):
    submissions: list[SubmissionOut]


class UploadRequestPage(PageOut):
    items: list[UploadRequestOut]


# A MIME type or a wildcard such as image/* (RFC 6838 names).
MimeType = Annotated[
    str,
    Field(
        max_length=255,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/([A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*|\*)$",
    ),
]


class UploadRequestIn(BodyIn):
    title: Annotated[str, STORABLE_TEXT] = Field(
        min_length=1, max_length=TITLE_MAX_LENGTH, pattern=r"^[^\x00]*[^\s\x00][^\x00]*$"
    )
    message: Annotated[str, STORABLE_TEXT] = Field(
        "", max_length=MESSAGE_MAX_LENGTH, pattern=r"^[^\x00]*$"
    )
    # The bound is the setting's, read when the schema is built, so the
    # published schema says what the service accepts.
    expires_in_hours: (
        Annotated[int, Field(ge=1, le=int(settings.UPLOAD_REQUEST_MAX_HOURS)), INTEGRAL] | None
    ) = Field(
        None, description="Default UPLOAD_REQUEST_DEFAULT_HOURS, at most UPLOAD_REQUEST_MAX_HOURS."
    )
    password: Annotated[str, STORABLE_TEXT] | None = Field(
        None, min_length=1, max_length=PASSWORD_MAX_LENGTH, pattern=r"^[^\x00]*$"
    )
    max_files: Annotated[int, Field(ge=1, le=100_000), INTEGRAL] | None = None
    max_bytes: Annotated[int, Field(ge=1, le=2**62), INTEGRAL] | None = None
    require_sender: bool = False
    allowed_types: list[MimeType] | None = Field(
        None, max_length=50, description="MIME types (image/* wildcards) narrowing the portal's."
    )


def _out(upload_request: UploadRequest, *, url: str | None = None) -> dict:
    return {
        "id": upload_request.id,
        "owner_id": upload_request.owner_id,
        "url": url,
        "title": upload_request.title,
        "message": upload_request.message,
        "state": upload_request_state(upload_request),
        "has_password": bool(upload_request.password_hash),
        "expires_at": upload_request.expires_at,
        "revoked_at": upload_request.revoked_at,
        "max_files": upload_request.max_files,
        "max_bytes": upload_request.max_bytes,
        "require_sender": upload_request.require_sender,
        "allowed_types": upload_request.allowed_types,
        "files_received": getattr(upload_request, "files_received", 0) or 0,
        "bytes_received": getattr(upload_request, "bytes_received", 0) or 0,
        "created_at": upload_request.created_at,
    }


def _visible(user: User, request_id: UUID) -> UploadRequest:
    found = upload_requests_for_user(user).filter(pk=request_id).first()
    if found is None:
        raise NotFoundError(
            "Upload request not found.", details={"upload_request_id": str(request_id)}
        )
    return found


def _ordered(user: User) -> QuerySet[UploadRequest]:
    return upload_requests_for_user(user).order_by("-created_at", "-id")


@router.post(
    "/upload-requests",
    response={201: UploadRequestOut, **errors()},
    summary="Create an upload request",
)
def create_upload_request(request: ApiRequest, body: UploadRequestIn):
    """A link for people without an account to send you files.

    The answer's `url` is the only time the link is shown: Doorito keeps
    only a hash of its token.
    """
    created, raw = upload_request_create(owner=request.auth, **body.model_dump())
    created = _visible(request.auth, created.id)
    return Status(201, _out(created, url=upload_request_url(raw, request=request)))


@router.get(
    "/upload-requests",
    response={200: UploadRequestPage, **errors()},
    summary="List upload requests",
)
def list_upload_requests(request: ApiRequest, page: Query[PageIn]):
    """Your upload requests, newest first (staff: everyone's). Links are never listed."""
    result = paginate(_ordered(request.auth), page)
    result["items"] = [_out(r) for r in result["items"]]
    return result


@router.get(
    "/upload-requests/{request_id}",
    response={200: UploadRequestDetailOut, **errors(404)},
    summary="Upload request detail",
)
def get_upload_request(request: ApiRequest, request_id: UUID):
    """The request, its limits and what each sender sent."""
    found = _visible(request.auth, request_id)
    return {**_out(found), "submissions": list(upload_request_submissions(found))}


@router.delete(
    "/upload-requests/{request_id}",
    response={204: None, **errors(404)},
    summary="Revoke an upload request",
)
def revoke_upload_request(request: ApiRequest, request_id: UUID):
    """The link stops working at once (410); files already sent stay."""
    upload_request_revoke(upload_request=_visible(request.auth, request_id), actor=request.auth)
    return Status(204, None)
