"""Reads of outbox events, webhook endpoints and deliveries (no writes here)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Window
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, Greatest, RowNumber
from django.utils import timezone

from common.exceptions import NotFoundError
from common.models import OutboxEvent, WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint

# Attempts shown per delivery on list pages; the rest is one click away.
RECENT_ATTEMPTS = 5


def event_list(
    *,
    status: str | None = None,
    event_type: str | None = None,
    aggregate_type: str | None = None,
    aggregate_id: Any = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    with_attempts: bool = False,
) -> QuerySet[OutboxEvent]:
    """Events newest first, each with its deliveries (and their endpoints) prefetched.

    ``since`` is inclusive and ``until`` exclusive, so adjacent windows never
    show an event twice. ``with_attempts`` also prefetches each delivery's
    recent attempts (``recent_attempts_prefetch``).
    """
    deliveries = WebhookDelivery.objects.select_related("endpoint").order_by("created_at")
    if with_attempts:
        deliveries = deliveries.prefetch_related(recent_attempts_prefetch())
    qs = OutboxEvent.objects.order_by("-created_at").prefetch_related(
        Prefetch("deliveries", queryset=deliveries)
    )
    if status:
        qs = qs.filter(status=status)
    if event_type:
        qs = qs.filter(event_type=event_type)
    if aggregate_type:
        qs = qs.filter(aggregate_type=aggregate_type)
    if aggregate_id is not None:
        qs = qs.filter(aggregate_id=str(aggregate_id))
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    return qs


def events_with_subject(events: QuerySet[OutboxEvent]) -> QuerySet[OutboxEvent]:
    """Each event with ``subject``: the name of what it is about, read from its
    payload (a file's name, a batch's name, an upload request's title), or None.

    Only those keys are read, so a list can still defer the (possibly large)
    payload itself.
    """
    return events.annotate(
        subject=Coalesce(
            KT("payload__file__filename"),
            KT("payload__batch__metadata__name"),
            KT("payload__upload_request__title"),
        )
    )


def event_get(*, event_id: Any, with_attempts: bool = False) -> OutboxEvent:
    try:
        return event_list(with_attempts=with_attempts).get(pk=event_id)
    except (OutboxEvent.DoesNotExist, ValueError, ValidationError) as exc:
        raise NotFoundError("No such event.") from exc


def event_keys_existing(*, event_type: str, keys: list[str]) -> set[str]:
    """Which of ``keys`` already have an event of ``event_type`` (to skip building payloads)."""
    return set(
        OutboxEvent.objects.filter(event_type=event_type, idempotency_key__in=keys).values_list(
            "idempotency_key", flat=True
        )
    )


def endpoint_list(*, owner: Any = None, is_active: bool | None = None) -> QuerySet[WebhookEndpoint]:
    qs = WebhookEndpoint.objects.order_by("created_at")
    if owner is not None:
        qs = qs.filter(owner=owner)
    if is_active is not None:
        qs = qs.filter(is_active=is_active)
    return qs


def endpoint_list_with_health() -> QuerySet[WebhookEndpoint]:
    """Endpoints annotated with their most recent attempt (time, status code, error).

    One statement however many endpoints: each annotation is a correlated
    subquery that walks that endpoint's deliveries newest first on the
    ``(endpoint, created_at)`` index and stops at the first one attempted, so
    "latest" means the attempt on the newest event that has had one.
    """
    latest = (
        WebhookDelivery.objects.filter(endpoint=OuterRef("pk"), last_attempt_at__isnull=False)
        .order_by("-created_at")
        .values
    )
    return endpoint_list().annotate(
        last_attempt_at=Subquery(latest("last_attempt_at")[:1]),
        last_status_code=Subquery(latest("last_status_code")[:1]),
        last_delivery_status=Subquery(latest("status")[:1]),
    )


def endpoint_get(*, endpoint_id: Any) -> WebhookEndpoint:
    try:
        return WebhookEndpoint.objects.get(pk=endpoint_id)
    except (WebhookEndpoint.DoesNotExist, ValueError, ValidationError) as exc:
        raise NotFoundError("No such webhook endpoint.") from exc


def delivery_list(
    *,
    event: Any = None,
    endpoint: Any = None,
    status: str | None = None,
    with_attempts: bool = False,
) -> QuerySet[WebhookDelivery]:
    """Deliveries newest first; ``with_attempts`` prefetches their recent attempts."""
    qs = WebhookDelivery.objects.select_related("event", "endpoint").order_by("-created_at")
    if with_attempts:
        qs = qs.prefetch_related(recent_attempts_prefetch())
    if event is not None:
        qs = qs.filter(event=event)
    if endpoint is not None:
        qs = qs.filter(endpoint=endpoint)
    if status:
        qs = qs.filter(status=status)
    return qs


def delivery_get(*, delivery_id: Any) -> WebhookDelivery:
    try:
        return delivery_list().get(pk=delivery_id)
    except (WebhookDelivery.DoesNotExist, ValueError, ValidationError) as exc:
        raise NotFoundError("No such delivery.") from exc


def _attempt_number_in_history() -> Window:
    """An attempt's place in its delivery's whole history: 1, 2, 3… in the order made.

    ``attempt_number`` is the delivery's counter, which a re-send resets (a
    fresh budget), so after one re-send two attempts were both "#1". This
    number never restarts; the window runs over the delivery's rows before a
    page or a prefetch slice is cut, so it is the same on every page.
    """
    return Window(
        RowNumber(),
        partition_by=F("delivery_id"),
        order_by=[F("created_at").asc(), F("id").asc()],
    )


def delivery_attempt_list(*, delivery: Any) -> QuerySet[WebhookDeliveryAttempt]:
    """A delivery's attempt history, newest first (its (delivery, created_at) index).

    Each row carries ``number``, its place in the whole history.
    """
    return (
        WebhookDeliveryAttempt.objects.filter(delivery=delivery)
        .annotate(number=_attempt_number_in_history())
        .order_by("-created_at", "-id")
    )


def recent_attempts_prefetch(
    *, lookup: str = "attempt_log", limit: int = RECENT_ATTEMPTS
) -> Prefetch:
    """Each delivery's ``limit`` newest attempts as ``delivery.recent_attempts``.

    One query for a whole page of deliveries however long their histories
    (Django turns the slice into a per-delivery ``ROW_NUMBER()``). Every row
    also carries ``history_size`` (its delivery's number of attempts) and
    ``older_attempts`` (how many are not shown), so a page can say "N more"
    without a query per delivery, and ``number`` (its place in the history).
    """
    history_size = Window(Count("id"), partition_by=F("delivery_id"))
    queryset = WebhookDeliveryAttempt.objects.annotate(
        history_size=history_size,
        older_attempts=Greatest(history_size - limit, 0),
        number=_attempt_number_in_history(),
    ).order_by("-created_at", "-id")[:limit]
    return Prefetch(lookup, queryset=queryset, to_attr="recent_attempts")


@dataclass(frozen=True)
class DeliveryHealth:
    pending: int
    oldest_due_at: dt.datetime | None
    failing_endpoints: int
    disabled_endpoints: int

    @property
    def oldest_due_age_seconds(self) -> float | None:
        if self.oldest_due_at is None:
            return None
        return max(0.0, (timezone.now() - self.oldest_due_at).total_seconds())


# Counting a huge backlog exactly costs a scan of it; a dashboard only needs
# to know that it is big.
PENDING_COUNT_CAP = 10_000


def delivery_health(*, now: dt.datetime | None = None) -> DeliveryHealth:
    """What staff need at a glance: is delivery keeping up, and who is failing.

    Served by the partial index on pending deliveries' ``next_attempt_at``; the
    count stops at PENDING_COUNT_CAP.
    """
    now = now or timezone.now()
    due = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
    # order_by(): the default ordering sorted every pending row before counting.
    pending = due.order_by().values("pk")[:PENDING_COUNT_CAP].count()
    oldest = (
        due.filter(next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    endpoints = WebhookEndpoint.objects.aggregate(
        failing=Count("id", filter=Q(is_active=True, failing_since__isnull=False)),
        disabled=Count("id", filter=Q(is_active=False)),
    )
    return DeliveryHealth(
        pending=pending,
        oldest_due_at=oldest,
        failing_endpoints=endpoints["failing"],
        disabled_endpoints=endpoints["disabled"],
    )
