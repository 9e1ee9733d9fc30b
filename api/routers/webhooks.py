"""Webhook endpoints (staff only): CRUD, rotate the secret, send a test event."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from ninja import Query, Router, Schema, Status
from pydantic import Field

from api.auth import ApiRequest
from api.errors import errors
from api.pagination import PageIn, PageOut, paginate
from api.validation import STORABLE_TEXT, BodyIn, SafeStr
from common.exceptions import PermissionDeniedError
from common.selectors import endpoint_get, endpoint_list
from common.services.webhooks import (
    EventType,
    endpoint_create,
    endpoint_delete,
    endpoint_rotate_secret,
    endpoint_send_test_event,
    endpoint_update,
)

router = Router(tags=["webhook endpoints"])

URL_PATTERN = r"^https?://[^\x00]+$"
URL_HELP = (
    "http(s) URL; loopback/private/link-local targets are refused "
    "unless WEBHOOK_ALLOWED_NETWORKS allows them."
)


class EndpointOut(Schema):
    id: UUID
    url: str
    description: str
    event_types: list[str] = Field(description="Subscribed event types; empty means all.")
    is_active: bool
    disabled_reason: str
    failing_since: datetime | None
    owner_id: UUID | None
    created_at: datetime
    updated_at: datetime


class EndpointSecretOut(EndpointOut):
    secret: str = Field(description="The signing secret (whsec_…). Shown only in this response.")


class EndpointCreateIn(BodyIn):
    url: Annotated[str, STORABLE_TEXT] = Field(
        max_length=2000, pattern=URL_PATTERN, description=URL_HELP
    )
    event_types: list[EventType] = Field(default_factory=list, max_length=10)
    description: SafeStr = Field("", max_length=255)


class EndpointUpdateIn(BodyIn):
    url: Annotated[str, STORABLE_TEXT] | None = Field(
        None, max_length=2000, pattern=URL_PATTERN, description=URL_HELP
    )
    event_types: list[EventType] | None = Field(None, max_length=10)
    description: SafeStr | None = Field(None, max_length=255)
    is_active: bool | None = None


class EndpointPage(PageOut):
    items: list[EndpointOut]


class TestEventOut(Schema):
    id: UUID
    event_type: str
    status: str


def require_staff(request: ApiRequest) -> None:
    if not request.auth.is_staff:
        raise PermissionDeniedError("Webhook endpoints are managed by staff.")


@router.get("/endpoints", response={200: EndpointPage, **errors(403)}, summary="List endpoints")
def list_endpoints(request: ApiRequest, page: Query[PageIn], is_active: bool | None = None):
    require_staff(request)
    return paginate(endpoint_list(is_active=is_active).order_by("created_at", "id"), page)


@router.post(
    "/endpoints", response={201: EndpointSecretOut, **errors(403)}, summary="Create an endpoint"
)
def create_endpoint(request: ApiRequest, body: EndpointCreateIn):
    """The answer carries the signing secret; it is not shown again (rotate to get a new one)."""
    require_staff(request)
    endpoint, secret = endpoint_create(
        owner=request.auth,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
    )
    endpoint.secret = secret
    return Status(201, endpoint)


@router.get(
    "/endpoints/{endpoint_id}", response={200: EndpointOut, **errors(403, 404)}, summary="Endpoint"
)
def get_endpoint(request: ApiRequest, endpoint_id: UUID):
    require_staff(request)
    return endpoint_get(endpoint_id=endpoint_id)


@router.patch(
    "/endpoints/{endpoint_id}",
    response={200: EndpointOut, **errors(403, 404)},
    summary="Change an endpoint",
)
def update_endpoint(request: ApiRequest, endpoint_id: UUID, body: EndpointUpdateIn):
    """Only the fields sent change. `is_active: true` re-enables a disabled endpoint."""
    require_staff(request)
    endpoint = endpoint_get(endpoint_id=endpoint_id)
    return endpoint_update(
        endpoint=endpoint,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        is_active=body.is_active,
    )


@router.delete(
    "/endpoints/{endpoint_id}",
    response={204: None, **errors(403, 404)},
    summary="Delete an endpoint",
)
def delete_endpoint(request: ApiRequest, endpoint_id: UUID):
    require_staff(request)
    endpoint_delete(endpoint=endpoint_get(endpoint_id=endpoint_id))
    return Status(204, None)


@router.post(
    "/endpoints/{endpoint_id}/rotate-secret",
    response={200: EndpointSecretOut, **errors(403, 404)},
    summary="Rotate the signing secret",
)
def rotate_secret(request: ApiRequest, endpoint_id: UUID):
    """A new secret, returned once; the old one keeps signing alongside it for
    `WEBHOOK_SECRET_ROTATION_OVERLAP_HOURS`."""
    require_staff(request)
    endpoint = endpoint_get(endpoint_id=endpoint_id)
    secret = endpoint_rotate_secret(endpoint=endpoint)
    endpoint.refresh_from_db()
    endpoint.secret = secret
    return endpoint


@router.post(
    "/endpoints/{endpoint_id}/test",
    response={202: TestEventOut, **errors(403, 404)},
    summary="Send a test event",
)
def send_test_event(request: ApiRequest, endpoint_id: UUID):
    """Queues a `webhook.test` event for this endpoint only; follow it under /events."""
    require_staff(request)
    event = endpoint_send_test_event(endpoint=endpoint_get(endpoint_id=endpoint_id))
    return Status(202, event)
