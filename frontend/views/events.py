"""The event log (staff): events filtered by type, status and time, and one
event's payload with its delivery to every endpoint."""

from __future__ import annotations

import json
from uuid import UUID

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_http_methods

from common import selectors
from common.exceptions import NotFoundError
from common.models import OutboxEvent
from frontend.access import staff_required
from frontend.forms.events import EventFilterForm
from frontend.paging import CappedPaginator

PAGE_SIZE = 25
# Where an event's aggregate has a page of its own.
AGGREGATE_PAGES = {
    "file": "frontend:file_detail",
    "batch": "frontend:batch_detail",
    "webhook_endpoint": "frontend:endpoint_detail",
}


@staff_required
@require_http_methods(["GET", "HEAD"])
def event_list(request: HttpRequest) -> HttpResponse:
    form = EventFilterForm(request.GET)
    events = (
        selectors.events_with_subject(selectors.event_list(**form.filters()))
        .order_by("-created_at", "-id")
        # The list shows no payloads; they can be large.
        .defer("payload")
    )
    context = {
        "nav": "events",
        "form": form,
        "page_obj": CappedPaginator(events, PAGE_SIZE).get_page(request.GET.get("page")),
    }
    return render(request, "frontend/events/list.html", context)


def _aggregate_url(event: OutboxEvent) -> str | None:
    """The page of what the event is about; None if it has none (or a foreign id)."""
    name = AGGREGATE_PAGES.get(event.aggregate_type)
    if name is None:
        return None
    try:
        return reverse(name, args=[event.aggregate_id])
    except NoReverseMatch:
        return None


@staff_required
@require_http_methods(["GET", "HEAD"])
def event_detail(request: HttpRequest, event_id: UUID) -> HttpResponse:
    try:
        event = selectors.event_get(event_id=event_id, with_attempts=True)
    except NotFoundError as exc:
        raise Http404(exc.message) from exc
    context = {
        "nav": "events",
        "event": event,
        "payload": json.dumps(event.payload, indent=2),
        "aggregate_url": _aggregate_url(event),
        "deliveries": event.deliveries.all(),
        "here": request.get_full_path(),
    }
    return render(request, "frontend/events/detail.html", context)
