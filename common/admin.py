"""Admin for the outbox: events with their deliveries, each delivery with its
attempt history (read-only), endpoints, re-send actions.

Actions call the same services as the CLI and the API.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from common.exceptions import ApplicationError
from common.models import (
    BeatHeartbeat,
    OutboxEvent,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)
from common.services.resend import delivery_resend
from common.services.webhooks import (
    EVENT_TYPES,
    endpoint_create,
    endpoint_delete,
    endpoint_rotate_secret,
    endpoint_send_test_event,
    endpoint_update,
    endpoint_validate,
)

DELIVERY_FIELDS = (
    "endpoint",
    "status",
    "attempts",
    "max_attempts",
    "next_attempt_at",
    "last_attempt_at",
    "last_status_code",
    "last_duration_ms",
    "last_error",
    "last_response",
    "delivered_at",
)


def _resend(modeladmin, request, deliveries) -> None:
    done = 0
    for delivery in deliveries:
        try:
            delivery_resend(delivery=delivery)
            done += 1
        except ApplicationError as exc:
            modeladmin.message_user(request, f"{delivery.id}: {exc.message}", messages.WARNING)
    modeladmin.message_user(request, f"{done} deliveries queued for re-sending.")


class DeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    can_delete = False
    fields = DELIVERY_FIELDS
    readonly_fields = DELIVERY_FIELDS
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


ATTEMPT_FIELDS = (
    "attempt_number",
    "created_at",
    "status_code",
    "duration_ms",
    "error_class",
    "error",
    "response_headers",
    "response_excerpt",
)


class AttemptInline(admin.TabularInline):
    """The history is a record of what happened: nobody edits, adds or deletes it."""

    model = WebhookDeliveryAttempt
    extra = 0
    can_delete = False
    fields = ATTEMPT_FIELDS
    readonly_fields = ATTEMPT_FIELDS
    ordering = ("-created_at",)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = ("id", "event_type", "status", "attempts", "next_attempt_at", "created_at")
    list_filter = ("status", "event_type")
    search_fields = ("id", "aggregate_id", "idempotency_key")
    readonly_fields = [f.name for f in OutboxEvent._meta.fields]
    inlines = [DeliveryInline]
    actions = ["resend_failed"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Re-send the failed deliveries of the selected events")
    def resend_failed(self, request, queryset):
        deliveries = WebhookDelivery.objects.filter(
            event__in=queryset, status=WebhookDelivery.Status.FAILED
        )
        _resend(self, request, deliveries)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "event",
        "endpoint",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
    )
    list_filter = ("status",)
    list_select_related = ("event", "endpoint")
    search_fields = ("id", "event__id", "endpoint__url")
    readonly_fields = ("event", *DELIVERY_FIELDS, "lease_expires_at")
    inlines = [AttemptInline]
    actions = ["resend"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Re-send the selected deliveries")
    def resend(self, request, queryset):
        _resend(self, request, queryset.select_related("endpoint"))


def _field_error(form: forms.Form, exc: ApplicationError) -> None:
    """A service's refusal shown beside the field it names (else above the form)."""
    field = exc.details.get("field") if isinstance(exc.details, dict) else None
    form.add_error(field if field in form.fields else None, exc.message)


class EndpointForm(forms.ModelForm):
    """Validates through the endpoint services and saves through them.

    The secret is no field: it is made by ``endpoint_create`` (or a rotation)
    and shown once, in a message.
    """

    event_types = forms.MultipleChoiceField(
        choices=[(t, t) for t in EVENT_TYPES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event type.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "description", "event_types", "is_active", "owner")

    def clean(self):
        data = super().clean()
        if "url" in data:
            try:
                data["url"], data["event_types"] = endpoint_validate(
                    url=data["url"], event_types=data.get("event_types") or []
                )
            except ApplicationError as exc:
                _field_error(self, exc)
        return data

    def _post_clean(self):
        # Nothing is copied onto the instance here: save() hands the cleaned
        # values to the services, which write them.
        pass

    def save(self, commit: bool = True) -> WebhookEndpoint:
        """Create or change the endpoint through the services; ``self.secret``
        holds a new endpoint's plain secret (to show once)."""
        data = self.cleaned_data
        self.secret: str | None = None
        if self.instance._state.adding:
            endpoint, self.secret = endpoint_create(
                owner=data.get("owner"),
                url=data["url"],
                event_types=data["event_types"],
                description=data.get("description") or "",
            )
            if not data.get("is_active", True):
                endpoint = endpoint_update(endpoint=endpoint, is_active=False)
        else:
            endpoint = endpoint_update(
                endpoint=self.instance,
                url=data["url"],
                event_types=data["event_types"],
                description=data.get("description") or "",
                is_active=data.get("is_active", self.instance.is_active),
            )
        self.instance = endpoint
        return endpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ("url", "is_active", "disabled_reason", "event_types", "owner", "created_at")
    list_filter = ("is_active",)
    search_fields = ("url", "description")
    readonly_fields = (
        "signing_secret",
        "disabled_reason",
        "failing_since",
        "created_at",
        "updated_at",
    )
    raw_id_fields = ("owner",)
    actions = ["rotate_secret", "send_test_event"]

    @admin.display(description="signing secret")
    def signing_secret(self, obj: WebhookEndpoint) -> str:
        return "Shown once, when the endpoint was added; the “Rotate” action issues a new one."

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        # The owner is set when the endpoint is made (endpoint_update does not move it).
        return ("owner", *self.readonly_fields)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Not wrapped in the admin's transaction: the endpoint services open
        # their own (disabling an endpoint is a durable transaction).
        return self._changeform_view(request, object_id, form_url, extra_context)

    def save_form(self, request, form, change):
        endpoint = form.save()
        if form.secret:
            self.message_user(
                request,
                f"Signing secret of {endpoint.url} (shown once, copy it now): {form.secret}",
                messages.WARNING,
            )
        return endpoint

    def save_model(self, request, obj, form, change):
        pass  # saved by the services in save_form

    def save_related(self, request, form, formsets, change):
        pass  # no relations to save

    def delete_model(self, request, obj):
        endpoint_delete(endpoint=obj)

    def delete_queryset(self, request, queryset):
        for endpoint in queryset:
            endpoint_delete(endpoint=endpoint)

    @admin.action(description="Rotate the signing secret (the old one signs during the overlap)")
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            secret = endpoint_rotate_secret(endpoint=endpoint)
            self.message_user(
                request,
                f"New signing secret of {endpoint.url} (shown once, copy it now): {secret}",
                messages.WARNING,
            )

    @admin.action(description="Send a test event")
    def send_test_event(self, request, queryset):
        for endpoint in queryset:
            try:
                endpoint_send_test_event(endpoint=endpoint)
            except ApplicationError as exc:
                self.message_user(request, f"{endpoint}: {exc.message}", messages.WARNING)
        self.message_user(request, "Test events queued.")


@admin.register(BeatHeartbeat)
class BeatHeartbeatAdmin(admin.ModelAdmin):
    """Read-only: only the beat holding the scheduler lock writes this row."""

    list_display = ("holder", "acquired_at", "ticked_at", "failing")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
