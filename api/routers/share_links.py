"""Share links: make one for a file or a batch, list them, revoke one.

The plain link (``url``) is in the 201 answer only: Doorito keeps a hash of
its token, like an API token's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from django.http import HttpRequest
from django.urls import reverse
from ninja import Router, Schema, Status
from pydantic import Field

from api.auth import ApiRequest
from api.errors import errors
from api.routers.batches import get_visible_batch
from api.routers.files import get_visible_file
from api.validation import INTEGRAL, BodyIn, SafeStr
from common.exceptions import NotFoundError
from portal.models import ShareLink
from portal.selectors import share_links_for_owner
from portal.services.share_links import (
    MAX_DOWNLOADS,
    MAX_HOURS,
    PASSWORD_MAX_LENGTH,
    share_link_create,
    share_link_revoke,
    share_link_state,
)
from portal.storage import site_url

router = Router(tags=["share links"])


class ShareLinkIn(BodyIn):
    expires_in_hours: Annotated[int, Field(ge=1, le=MAX_HOURS), INTEGRAL] | None = Field(
        None,
        description="Hours the link works; never past the file's expiry (a batch's last "
        "file's). Default 24, or until the file expires if that is sooner.",
    )
    password: SafeStr | None = Field(
        None,
        min_length=1,
        max_length=PASSWORD_MAX_LENGTH,
        description="Asked on the link's page before the download.",
    )
    max_downloads: Annotated[int, Field(ge=1, le=MAX_DOWNLOADS), INTEGRAL] | None = Field(
        None, description="Downloads allowed; then the link answers 410. Default: no limit."
    )


class ShareLinkOut(Schema):
    id: UUID
    url: str | None = Field(
        None, description="The public link: in the 201 answer only (only a hash is kept)."
    )
    file_id: UUID | None
    batch_id: UUID | None
    state: Literal["active", "expired", "revoked", "used_up"]
    has_password: bool
    expires_at: datetime
    max_downloads: int | None
    downloads: int
    created_at: datetime
    revoked_at: datetime | None
    last_downloaded_at: datetime | None

    @staticmethod
    def resolve_state(link: ShareLink) -> str:
        return share_link_state(link)

    @staticmethod
    def resolve_has_password(link: ShareLink) -> bool:
        return link.has_password


class ShareLinkList(Schema):
    items: list[ShareLinkOut]


def share_page_url(token: str, *, request: HttpRequest | None = None) -> str:
    return site_url(request) + reverse("share:page", kwargs={"token": token})


def _created(request: ApiRequest, new) -> Status:
    new.link.url = share_page_url(new.token, request=request)
    return Status(201, new.link)


def _create(request: ApiRequest, body: ShareLinkIn, **target: Any) -> Status:
    """A link to ``target`` (``file=`` or ``batch=``) as the body asks."""
    new = share_link_create(
        owner=request.auth,
        expires_in_hours=body.expires_in_hours,
        password=body.password,
        max_downloads=body.max_downloads,
        **target,
    )
    return _created(request, new)


@router.post(
    "/files/{file_id}/share-links",
    response={201: ShareLinkOut, **errors(403, 404, 409)},
    summary="Share a file",
)
def create_file_share_link(request: ApiRequest, file_id: UUID, body: ShareLinkIn):
    """A public link to one stored file (send `{}` for the defaults)."""
    file = get_visible_file(request.auth, file_id)
    return _create(request, body, file=file)


@router.get(
    "/files/{file_id}/share-links",
    response={200: ShareLinkList, **errors(404)},
    summary="A file's share links",
)
def list_file_share_links(request: ApiRequest, file_id: UUID):
    file = get_visible_file(request.auth, file_id)
    return {"items": list(share_links_for_owner(owner=request.auth).filter(file=file))}


@router.post(
    "/batches/{batch_id}/share-links",
    response={201: ShareLinkOut, **errors(403, 404, 409)},
    summary="Share a batch as one zip",
)
def create_batch_share_link(request: ApiRequest, batch_id: UUID, body: ShareLinkIn):
    """A public link to all the batch's stored files, downloaded as one zip."""
    batch = get_visible_batch(request.auth, batch_id)
    return _create(request, body, batch=batch)


@router.get(
    "/batches/{batch_id}/share-links",
    response={200: ShareLinkList, **errors(404)},
    summary="A batch's share links",
)
def list_batch_share_links(request: ApiRequest, batch_id: UUID):
    batch = get_visible_batch(request.auth, batch_id)
    return {"items": list(share_links_for_owner(owner=request.auth).filter(batch=batch))}


@router.get("/share-links", response={200: ShareLinkList, **errors()}, summary="Your share links")
def list_share_links(request: ApiRequest):
    """Every link you made, newest first (at most 500)."""
    return {"items": list(share_links_for_owner(owner=request.auth)[:500])}


def _own_link(request: ApiRequest, link_id: UUID) -> ShareLink:
    link = share_links_for_owner(owner=request.auth).filter(pk=link_id).first()
    if link is None:
        raise NotFoundError("Share link not found.", details={"share_link_id": str(link_id)})
    return link


@router.get(
    "/share-links/{link_id}", response={200: ShareLinkOut, **errors(404)}, summary="A share link"
)
def get_share_link(request: ApiRequest, link_id: UUID):
    return _own_link(request, link_id)


@router.delete(
    "/share-links/{link_id}", response={204: None, **errors(404)}, summary="Revoke a share link"
)
def revoke_share_link(request: ApiRequest, link_id: UUID):
    """The link answers 410 from now on; revoking twice is harmless."""
    share_link_revoke(link=_own_link(request, link_id), actor=request.auth)
    return Status(204, None)
