"""Webhook endpoint forms. URL safety (SSRF) and event types are checked again
by the service, which is the authority; the form only shapes the input."""

from __future__ import annotations

from django import forms

from common.services.webhooks import EVENT_TYPES

EVENT_TYPE_CHOICES = [(t, t) for t in EVENT_TYPES]


class EndpointForm(forms.Form):
    url = forms.CharField(
        label="URL",
        max_length=2000,
        help_text="Where Doorito POSTs signed events (http or https). "
        "Private, loopback, link-local and metadata addresses are refused.",
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


class EndpointEditForm(EndpointForm):
    is_active = forms.BooleanField(
        label="Active (receives events)",
        required=False,
        help_text="Turning an endpoint off fails its pending deliveries; re-send them later.",
    )


class ResendFailedForm(forms.Form):
    since = forms.DateTimeField(
        label="Failed since (UTC)",
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        error_messages={
            "required": "Choose the time from which failed deliveries are re-sent.",
            "invalid": "Enter a date and time, e.g. 2026-01-31T14:00.",
        },
    )
