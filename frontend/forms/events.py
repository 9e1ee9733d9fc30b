"""The event log's filters (a GET form: bad values are reported, not applied)."""

from __future__ import annotations

from django import forms
from django.utils import timezone

from common.models import OutboxEvent
from common.services.webhooks import EVENT_TYPES

DATETIME_LOCAL = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]


def _datetime_field(label: str) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        required=False,
        input_formats=DATETIME_LOCAL,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        error_messages={"invalid": "Enter a date and time, e.g. 2026-01-31T14:00."},
    )


class EventFilterForm(forms.Form):
    event_type = forms.ChoiceField(
        label="Type", required=False, choices=[("", "All types"), *((t, t) for t in EVENT_TYPES)]
    )
    status = forms.ChoiceField(
        label="Status", required=False, choices=[("", "Any status"), *OutboxEvent.Status.choices]
    )
    since = _datetime_field("From")
    until = _datetime_field("Until")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Read in the reader's zone (frontend.middleware.BrowserTimeZoneMiddleware).
        zone = timezone.get_current_timezone_name()
        self.fields["since"].label = f"From ({zone})"
        self.fields["until"].label = f"Until ({zone})"

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until <= since:
            self.add_error("until", "“Until” must be later than “From”.")
        return data

    def filters(self) -> dict:
        """The filters that are valid; an invalid one is left out (and shown as an error)."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {name: data.get(name) or None for name in self.fields if name not in self.errors}
