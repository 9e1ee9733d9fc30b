"""Webhook endpoints (staff): list with health, create, edit, enable/disable,
rotate the secret, send a test event, delete; the per-endpoint delivery log
(each delivery's recent attempts) with re-sending, and one delivery's whole
attempt history.

Secrets are rendered straight from the POST that made them (create, rotate)
and never stored outside the endpoint row, so they are shown exactly once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from common import selectors
from common.exceptions import ApplicationError, NotFoundError
from common.models import WebhookDelivery, WebhookEndpoint
from common.services import resend as resend_services
from common.services import webhooks as services
from frontend.access import staff_required
from frontend.forms.errors import add_service_error
from frontend.forms.webhooks import EndpointEditForm, EndpointForm, ResendFailedForm
from frontend.paging import CappedPaginator

PAGE_SIZE = 25
RESEND_DEFAULT_WINDOW = dt.timedelta(hours=24)
TEMPLATES = "frontend/webhooks"
DELIVERY_STATUSES = WebhookDelivery.Status.choices


def _endpoint(endpoint_id: UUID) -> WebhookEndpoint:
    try:
        return selectors.endpoint_get(endpoint_id=endpoint_id)
    except NotFoundError as exc:
        raise Http404(exc.message) from exc


def _back(request: HttpRequest, default: str) -> str:
    """The page a form came from (its ``next`` field) if it is ours, else ``default``."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def _previous_secret_until(endpoint: WebhookEndpoint) -> dt.datetime | None:
    """When the last rotated-out secret stops signing (None: none signs any more)."""
    now = timezone.now()
    ends = (dt.datetime.fromisoformat(e["expires_at"]) for e in endpoint.previous_secrets or [])
    return max((end for end in ends if end > now), default=None)


def _detail_url(endpoint: WebhookEndpoint) -> str:
    return reverse("frontend:endpoint_detail", args=[endpoint.id])


@staff_required
@require_http_methods(["GET", "HEAD"])
def endpoint_list(request: HttpRequest) -> HttpResponse:
    context = {"nav": "webhooks", "endpoints": selectors.endpoint_list_with_health()}
    return render(request, f"{TEMPLATES}/list.html", context)


@never_cache
@staff_required
@require_http_methods(["GET", "HEAD", "POST"])
def endpoint_create(request: HttpRequest) -> HttpResponse:
    form = EndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, secret = services.endpoint_create(
                owner=request.user,
                url=form.cleaned_data["url"],
                event_types=form.cleaned_data["event_types"],
                description=form.cleaned_data["description"],
            )
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            context = {"nav": "webhooks", "endpoint": endpoint, "secret": secret}
            return render(request, f"{TEMPLATES}/created.html", context, status=201)
    return render(request, f"{TEMPLATES}/new.html", {"nav": "webhooks", "form": form})


def _render_detail(
    request: HttpRequest,
    endpoint: WebhookEndpoint,
    resend_form: ResendFailedForm,
) -> HttpResponse:
    status_filter = request.GET.get("status", "")
    if status_filter not in WebhookDelivery.Status.values:
        status_filter = ""
    deliveries = (
        selectors.delivery_list(endpoint=endpoint, status=status_filter or None, with_attempts=True)
        .order_by("-created_at", "-id")
        # The log shows each event's type, never its payload (which may be large).
        .defer("event__payload")
    )
    context: dict[str, Any] = {
        "nav": "webhooks",
        "endpoint": endpoint,
        "page_obj": CappedPaginator(deliveries, PAGE_SIZE).get_page(request.GET.get("page")),
        "status_filter": status_filter,
        "statuses": DELIVERY_STATUSES,
        "resend_form": resend_form,
        "previous_secret_until": _previous_secret_until(endpoint),
        # Where a re-send returns to: this log page (also after a form error on POST).
        "here": request.get_full_path() if request.method == "GET" else _detail_url(endpoint),
    }
    return render(request, f"{TEMPLATES}/detail.html", context)


@staff_required
@require_http_methods(["GET", "HEAD"])
def endpoint_detail(request: HttpRequest, endpoint_id: UUID) -> HttpResponse:
    endpoint = _endpoint(endpoint_id)
    since = (timezone.now() - RESEND_DEFAULT_WINDOW).replace(second=0, microsecond=0)
    return _render_detail(request, endpoint, ResendFailedForm(initial={"since": since}))


@staff_required
@require_http_methods(["GET", "HEAD", "POST"])
def endpoint_edit(request: HttpRequest, endpoint_id: UUID) -> HttpResponse:
    endpoint = _endpoint(endpoint_id)
    initial = {
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.event_types,
        "is_active": endpoint.is_active,
    }
    form = EndpointEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.endpoint_update(endpoint=endpoint, **form.cleaned_data)
        except ApplicationError as exc:
            add_service_error(form, exc)
            endpoint.refresh_from_db()
        else:
            messages.success(request, "The endpoint is saved.")
            return redirect(_detail_url(endpoint))
    context = {"nav": "webhooks", "endpoint": endpoint, "form": form}
    return render(request, f"{TEMPLATES}/edit.html", context)


@staff_required
@require_POST
def endpoint_toggle(request: HttpRequest, endpoint_id: UUID) -> HttpResponse:
    endpoint = _endpoint(endpoint_id)
    endpoint = services.endpoint_update(endpoint=endpoint, is_active=not endpoint.is_active)
    if endpoint.is_active:
        messages.success(request, "The endpoint is enabled and receives events again.")
    else:
        messages.warning(
            request,
            "The endpoint is disabled; its pending deliveries failed and can be re-sent "
            "once it is enabled again.",
        )
    return redirect(_back(request, _detail_url(endpoint)))


@never_cache
@staff_required
@require_http_methods(["GET", "HEAD", "POST"])
def endpoint_rotate(request: HttpRequest, endpoint_id: UUID) -> HttpResponse:
    """GET asks for confirmation; POST issues the new secret and shows it once."""
    endpoint = _endpoint(endpoint_id)
    hours = settings.WEBHOOK_SECRET_ROTATION_OVERLAP_HOURS
    context: dict[str, Any] = {"nav": "webhooks", "endpoint": endpoint, "overlap_hours": hours}
    if request.method != "POST":
        return render(request, f"{TEMPLATES}/rotate.html", context)
    context["secret"] = services.endpoint_rotate_secret(endpoint=endpoint)
    context["overlap_until"] = timezone.now() + dt.timedelta(hours=hours) if hours > 0 else None
    return render(request, f"{TEMPLATES}/rotated.html", context)


@staff_required
@require_POST
def endpoint_test(request: HttpRequest, endpoint_id: UUID) -> HttpResponse:
    endpoint = _endpoint(endpoint_id)
    try:
        event = services.endpoint_send_test_event(endpoint=endpoint)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            format_html(
                'Test event <a href="{}">{} {}</a> is queued for this endpoint.',
                reverse("frontend:event_detail", args=[event.id]),
                event.event_type,
                event.id,
            ),
        )
    return redirect(_detail_url(endpoint))


@staff_required
@require_http_methods(["GET", "HEAD", "POST"])
def endpoint_delete(request: HttpRequest, endpoint_id: UUID) -> HttpResponse:
    """GET asks for confirmation; POST deletes the endpoint and its delivery log."""
    endpoint = _endpoint(endpoint_id)
    if request.method == "POST":
        services.endpoint_delete(endpoint=endpoint)
        messages.success(request, f"The endpoint {endpoint.url} is deleted.")
        return redirect("frontend:endpoint_list")
    return render(request, f"{TEMPLATES}/delete.html", {"nav": "webhooks", "endpoint": endpoint})


@staff_required
@require_http_methods(["GET", "HEAD", "POST"])
def endpoint_resend_failed(request: HttpRequest, endpoint_id: UUID) -> HttpResponse:
    """POST re-sends; GET goes to the log (links on a page re-rendered with a form
    error are relative to this URL)."""
    endpoint = _endpoint(endpoint_id)
    if request.method != "POST":
        query = request.GET.urlencode()
        return redirect(_detail_url(endpoint) + (f"?{query}" if query else ""))
    form = ResendFailedForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, endpoint, form)
    since = form.cleaned_data["since"]
    count = resend_services.deliveries_resend_failed(since=since, endpoint=endpoint)
    if count:
        messages.success(
            request, f"{count} failed deliver{'y' if count == 1 else 'ies'} queued again."
        )
    else:
        messages.info(request, "No delivery to this endpoint failed since then; nothing queued.")
    return redirect(_detail_url(endpoint))


@staff_required
@require_http_methods(["GET", "HEAD"])
def delivery_detail(request: HttpRequest, delivery_id: UUID) -> HttpResponse:
    """One delivery and every recorded attempt, newest first, a page at a time."""
    try:
        delivery = selectors.delivery_get(delivery_id=delivery_id)
    except NotFoundError as exc:
        raise Http404(exc.message) from exc
    attempts = selectors.delivery_attempt_list(delivery=delivery)
    context = {
        "nav": "webhooks",
        "delivery": delivery,
        "page_obj": CappedPaginator(attempts, PAGE_SIZE).get_page(request.GET.get("page")),
        "here": request.get_full_path(),
    }
    return render(request, f"{TEMPLATES}/delivery.html", context)


@staff_required
@require_POST
def delivery_resend(request: HttpRequest, delivery_id: UUID) -> HttpResponse:
    try:
        delivery = selectors.delivery_get(delivery_id=delivery_id)
    except NotFoundError as exc:
        raise Http404(exc.message) from exc
    try:
        resend_services.delivery_resend(delivery=delivery)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"The {delivery.event.event_type} delivery to {delivery.endpoint.url} is queued again.",
        )
    return redirect(_back(request, _detail_url(delivery.endpoint)))
