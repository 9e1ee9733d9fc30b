"""Events and their per-endpoint deliveries: list, detail, re-send.

Staff see every event; other users see the events about their own files and
batches (read-only). Re-sending is for staff, who manage the endpoints.

What a delivery shows depends on who asks. The endpoints are staff business:
their URLs may carry credentials (``?api_key=…``), and the receivers'
answers and the errors quoting them are the endpoint operators' own. So an
uploader gets ``DeliveryOut`` (how the delivery went: status, attempts, HTTP
code, times) and staff get ``StaffDeliveryOut`` (also where it went and what
came back); each operation declares both, so the OpenAPI schema says which
fields may be missing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from django.db.models import QuerySet
from ninja import Query, Router, Schema
from pydantic import AliasChoices, Field

from accounts.models import User
from api.auth import ApiRequest
from api.errors import errors
from api.pagination import PageIn, PageOut, paginate
from api.routers.webhooks import EventType, require_staff
from api.validation import IsoDatetime, SafeStr
from common.exceptions import NotFoundError
from common.models import OutboxEvent, WebhookDelivery
from common.selectors import delivery_attempt_list, delivery_get, delivery_list, event_list
from common.services.resend import delivery_resend

router = Router(tags=["events"])

DeliveryStatus = Literal["pending", "sending", "delivered", "failed"]


class DeliveryOut(Schema):
    """A delivery as the uploader of its event sees it: how it went, not where to."""

    id: UUID
    event_id: UUID
    endpoint_id: UUID
    status: DeliveryStatus
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_duration_ms: int | None


class StaffDeliveryOut(DeliveryOut):
    """A delivery as staff see it: also the endpoint's URL and the receiver's answer."""

    # Read from the delivery's endpoint, or from this schema's own instance
    # (ninja validates the answer again, and a resolver would not find
    # ``endpoint`` there).
    endpoint_url: str = Field(
        validation_alias=AliasChoices("endpoint_url", "endpoint.url"),
        description="Staff only: the URL may carry credentials.",
    )
    last_error: str = Field(
        description="Staff only: why the last attempt failed (may quote the receiver)."
    )
    last_response: str = Field(
        description="Staff only: the start of the receiver's last answer (capped)."
    )


class AttemptOut(Schema):
    id: UUID
    delivery_id: UUID
    number: int = Field(
        description="The attempt's place in the delivery's whole history (1, 2, 3… in the "
        "order made; never restarts)."
    )
    attempt_number: int = Field(
        description="The delivery's attempt counter at the time (restarts at 1 after a re-send, "
        "which gives a fresh budget)."
    )
    created_at: datetime = Field(description="When the attempt's outcome was recorded.")
    succeeded: bool = Field(description="The receiver answered 2xx.")
    status_code: int | None = Field(description="None when no HTTP answer came.")
    duration_ms: int
    error_class: str = Field(
        description="The exception class when no HTTP answer came, e.g. ConnectError."
    )
    error: str
    response_headers: dict[str, str] = Field(
        description="The first response headers (lowercased names, 20 at most, 4 KiB in all)."
    )
    response_excerpt: str = Field(description="The start of the response body (4 KiB at most).")


class AttemptPage(PageOut):
    items: list[AttemptOut]


class EventOut(Schema):
    """An event as the uploader it is about sees it (deliveries without their endpoints)."""

    id: UUID
    event_type: str
    aggregate_type: str
    aggregate_id: str
    status: Literal["pending", "delivered", "failed", "no_subscribers"] = Field(
        description="pending until every delivery has ended; delivered, failed, or "
        "no_subscribers (no active endpoint was subscribed, or every endpoint it was for "
        "was deleted before delivering it)."
    )
    payload: dict[str, Any]
    created_at: datetime
    delivered_at: datetime | None
    # ninja reads a related manager as the list of its (prefetched) rows.
    deliveries: list[DeliveryOut]


class StaffEventOut(EventOut):
    last_error: str = Field(
        description="Staff only: a failing delivery's last error (may quote the receiver)."
    )
    deliveries: list[StaffDeliveryOut]  # type: ignore[assignment]  # a narrower item type


class EventPage(PageOut):
    items: list[EventOut]


class StaffEventPage(PageOut):
    items: list[StaffEventOut]


class DeliveryPage(PageOut):
    items: list[DeliveryOut]


class StaffDeliveryPage(PageOut):
    items: list[StaffDeliveryOut]


def as_seen_by[Out: Schema](user: User, *, staff: type[Out], others: type[Out], value: Any) -> Out:
    """``value`` (a model, or a page of them) in the schema ``user`` may see.

    Built here rather than left to ninja: given a model instance, a union of
    the two schemas would always match the staff one, which has every field.
    """
    return (staff if user.is_staff else others).model_validate(value)


class EventFilters(Schema):
    status: Literal["pending", "delivered", "failed", "no_subscribers"] | None = None
    event_type: EventType | None = None
    aggregate_type: Literal["file", "batch", "webhook_endpoint"] | None = None
    aggregate_id: SafeStr | None = Field(default=None, max_length=64)
    since: IsoDatetime | None = None


def events_visible_to(user: User, filters: EventFilters | None = None) -> QuerySet[OutboxEvent]:
    f = filters or EventFilters()
    queryset = event_list(
        status=f.status,
        event_type=f.event_type,
        aggregate_type=f.aggregate_type,
        aggregate_id=f.aggregate_id,
        since=f.since,
    )
    if not user.is_staff:
        # Every portal payload names its uploader; test events name none.
        queryset = queryset.filter(payload__uploader__id=str(user.pk))
    return queryset.order_by("-created_at", "-id")


def deliveries_visible_to(user: User) -> QuerySet[WebhookDelivery]:
    queryset = delivery_list()
    if not user.is_staff:
        queryset = queryset.filter(event__payload__uploader__id=str(user.pk))
    return queryset


def get_visible_event(user: User, event_id: UUID) -> OutboxEvent:
    event = events_visible_to(user).filter(pk=event_id).first()
    if event is None:
        raise NotFoundError("No such event.", details={"event_id": str(event_id)})
    return event


@router.get(
    "/events",
    response={200: StaffEventPage | EventPage, **errors()},
    summary="List events",
)
def list_events(request: ApiRequest, filters: Query[EventFilters], page: Query[PageIn]):
    """Newest first, each with its deliveries (one per endpoint). Endpoint URLs,
    receivers' answers and errors are shown to staff only."""
    found = paginate(events_visible_to(request.auth, filters), page)
    return as_seen_by(request.auth, staff=StaffEventPage, others=EventPage, value=found)


@router.get(
    "/events/{event_id}",
    response={200: StaffEventOut | EventOut, **errors(404)},
    summary="Event",
)
def get_event(request: ApiRequest, event_id: UUID):
    event = get_visible_event(request.auth, event_id)
    return as_seen_by(request.auth, staff=StaffEventOut, others=EventOut, value=event)


@router.get(
    "/events/{event_id}/deliveries",
    response={200: StaffDeliveryPage | DeliveryPage, **errors(404)},
    summary="List an event's deliveries",
)
def list_event_deliveries(
    request: ApiRequest,
    event_id: UUID,
    page: Query[PageIn],
    status: DeliveryStatus | None = None,
):
    event = get_visible_event(request.auth, event_id)
    queryset = delivery_list(event=event, status=status).order_by("created_at", "id")
    found = paginate(queryset, page)
    return as_seen_by(request.auth, staff=StaffDeliveryPage, others=DeliveryPage, value=found)


@router.get(
    "/deliveries",
    response={200: StaffDeliveryPage | DeliveryPage, **errors()},
    summary="List deliveries",
)
def list_deliveries(
    request: ApiRequest,
    page: Query[PageIn],
    status: DeliveryStatus | None = None,
    endpoint_id: UUID | None = None,
):
    """Newest first; e.g. `?status=failed` for what needs attention."""
    queryset = deliveries_visible_to(request.auth)
    if status:
        queryset = queryset.filter(status=status)
    if endpoint_id:
        queryset = queryset.filter(endpoint_id=endpoint_id)
    found = paginate(queryset.order_by("-created_at", "-id"), page)
    return as_seen_by(request.auth, staff=StaffDeliveryPage, others=DeliveryPage, value=found)


@router.get(
    "/deliveries/{delivery_id}/attempts",
    response={200: AttemptPage, **errors(403, 404)},
    summary="List a delivery's attempts",
)
def list_delivery_attempts(request: ApiRequest, delivery_id: UUID, page: Query[PageIn]):
    """Newest first: when, status code, duration, response headers and body
    excerpt, or the error. Staff only (the receivers' answers are the endpoint
    operators' business)."""
    require_staff(request)
    delivery = delivery_get(delivery_id=delivery_id)
    return paginate(delivery_attempt_list(delivery=delivery), page)


@router.post(
    "/deliveries/{delivery_id}/resend",
    response={200: StaffDeliveryOut, **errors(403, 404, 409)},
    summary="Re-send a delivery",
)
def resend_delivery(request: ApiRequest, delivery_id: UUID):
    """Queue it again with a fresh attempt budget and the same `webhook-id`
    (receivers can deduplicate). 409 while it is being sent or its endpoint is disabled."""
    require_staff(request)
    delivery = delivery_resend(delivery=delivery_get(delivery_id=delivery_id))
    return delivery_get(delivery_id=delivery.id)
