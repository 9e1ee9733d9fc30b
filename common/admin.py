"""Admin for the outbox: events with their deliveries, each delivery with its
attempt history (read-only), endpoints, re-send actions.

Actions call the same services as the CLI and the API.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from common.exceptions import ApplicationError
from common.models import (
    OutboxEvent,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)
from common.services.outbox import delivery_resend
from common.services.signing import generate_secret
from common.services.ssrf import UnsafeTargetError, check_url
from common.services.webhooks import endpoint_rotate_secret, endpoint_send_test_event

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


class EndpointForm(forms.ModelForm):
    class Meta:
        model = WebhookEndpoint
        fields = ("url", "description", "event_types", "is_active", "owner")

    def clean_url(self):
        url = self.cleaned_data["url"]
        try:
            check_url(url)
        except UnsafeTargetError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ("url", "is_active", "disabled_reason", "event_types", "owner", "created_at")
    list_filter = ("is_active",)
    search_fields = ("url", "description")
    readonly_fields = ("secret", "disabled_reason", "failing_since", "created_at", "updated_at")
    actions = ["rotate_secret", "send_test_event"]

    def save_model(self, request, obj, form, change):
        if not obj.secret:
            obj.secret = generate_secret()
        super().save_model(request, obj, form, change)

    @admin.action(description="Rotate the signing secret (old one signs during the overlap)")
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            endpoint_rotate_secret(endpoint=endpoint)
        self.message_user(request, f"Rotated {queryset.count()} secret(s).")

    @admin.action(description="Send a test event")
    def send_test_event(self, request, queryset):
        for endpoint in queryset:
            try:
                endpoint_send_test_event(endpoint=endpoint)
            except ApplicationError as exc:
                self.message_user(request, f"{endpoint}: {exc.message}", messages.WARNING)
        self.message_user(request, "Test events queued.")
