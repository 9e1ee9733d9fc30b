"""Webhook endpoint forms. URL safety (SSRF) and event types are checked again
by the service, which is the authority; the form only shapes the input."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils import timezone

from common.services.ssrf import allowed_networks
from common.services.webhooks import EVENT_TYPES

EVENT_TYPE_CHOICES = [(t, t) for t in EVENT_TYPES]


def url_help_text() -> str:
    """What the SSRF guard refuses in this configuration: Dev and Test allow
    loopback (WEBHOOK_ALLOWED_NETWORKS), so a fixed "loopback is refused" was
    wrong on the very machine where most people first read it."""
    text = (
        "Where Doorito POSTs signed events (http or https). "
        "Private, loopback, link-local and metadata addresses are refused"
    )
    networks = allowed_networks()
    if not networks:
        return f"{text}."
    shown = ", ".join(str(n) for n in networks)
    return f"{text}, except in what this configuration allows (WEBHOOK_ALLOWED_NETWORKS): {shown}."


class EndpointForm(forms.Form):
    url = forms.CharField(
        label="URL",
        max_length=2000,
        widget=forms.URLInput(attrs={"placeholder": "https://runner.example.com/hooks/doorito"}),
    )
    description = forms.CharField(label="Description", max_length=255, required=False)
    event_types = forms.MultipleChoiceField(
        label="Event types",
        choices=EVENT_TYPE_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None checked: every event type, including ones added later.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["url"].help_text = url_help_text()


class EndpointEditForm(EndpointForm):
    is_active = forms.BooleanField(
        label="Active (receives events)",
        required=False,
        help_text="Turning an endpoint off fails its pending deliveries; re-send them later.",
    )


class ResendFailedForm(forms.Form):
    since = forms.DateTimeField(
        label="Failed since",
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        error_messages={
            "required": "Choose the time from which failed deliveries are re-sent.",
            "invalid": "Enter a date and time, e.g. 2026-01-31T14:00.",
        },
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Read in the reader's zone (frontend.middleware.BrowserTimeZoneMiddleware).
        self.fields["since"].label = f"Failed since ({timezone.get_current_timezone_name()})"
