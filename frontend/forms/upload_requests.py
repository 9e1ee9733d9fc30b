"""Forms of upload requests: the owner's (create) and the outsider's (password, sender)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator

from portal.services.upload_requests import (
    MESSAGE_MAX_LENGTH,
    SENDER_NAME_MAX_LENGTH,
    TITLE_MAX_LENGTH,
)

MIB = 1024 * 1024


class UploadRequestCreateForm(forms.Form):
    title = forms.CharField(
        label="Title",
        max_length=TITLE_MAX_LENGTH,
        help_text="What you are asking for, e.g. “2026 tax documents”. Senders see it.",
    )
    message = forms.CharField(
        label="Message",
        required=False,
        max_length=MESSAGE_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Shown to senders above the upload area.",
    )
    expires_in_hours = forms.IntegerField(
        label="Open for (hours)",
        min_value=1,
        help_text="After this the link stops working.",
    )
    password = forms.CharField(
        label="Password",
        required=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Optional: senders must enter it first. Tell them separately.",
    )
    max_files = forms.IntegerField(
        label="Most files", required=False, min_value=1, help_text="Optional; empty: no limit."
    )
    max_mib = forms.IntegerField(
        label="Most MiB in all",
        required=False,
        min_value=1,
        help_text="Optional; empty: no limit beyond the largest file.",
    )
    allowed_types = forms.CharField(
        label="Accepted types",
        required=False,
        help_text=(
            "Optional, comma-separated, e.g. application/pdf, image/*. "
            "Empty: what the portal accepts."
        ),
    )
    require_sender = forms.BooleanField(
        label="Ask senders for their name and email", required=False
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        max_hours = int(settings.UPLOAD_REQUEST_MAX_HOURS)
        field = self.fields["expires_in_hours"]
        assert isinstance(field, forms.IntegerField)
        field.max_value = max_hours
        field.widget.attrs["max"] = str(max_hours)
        field.validators.append(MaxValueValidator(max_hours))
        field.help_text = f"After this the link stops working (at most {max_hours} h)."
        self.initial.setdefault(
            "expires_in_hours", min(int(settings.UPLOAD_REQUEST_DEFAULT_HOURS), max_hours)
        )

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        types = [t.strip() for t in (data.get("allowed_types") or "").split(",") if t.strip()]
        return {
            "title": data["title"],
            "message": data.get("message") or "",
            "expires_in_hours": data["expires_in_hours"],
            "password": data.get("password") or None,
            "max_files": data.get("max_files"),
            "max_bytes": data["max_mib"] * MIB if data.get("max_mib") else None,
            "allowed_types": types or None,
            "require_sender": bool(data.get("require_sender")),
        }


class UploadRequestPasswordForm(forms.Form):
    password = forms.CharField(
        label="Password",
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )


class UploadRequestSenderForm(forms.Form):
    sender_name = forms.CharField(
        label="Your name",
        max_length=SENDER_NAME_MAX_LENGTH,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    sender_email = forms.EmailField(
        label="Your email", widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )

    def __init__(self, *args, require_sender: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("sender_name", "sender_email"):
            self.fields[name].required = require_sender
            if not require_sender:
                self.fields[name].label = f"{self.fields[name].label} (optional)"
