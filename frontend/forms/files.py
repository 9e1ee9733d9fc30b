"""Forms of the upload, files and batches pages: they parse and check input only;
the services decide."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, cast

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db.models import QuerySet
from django.utils import timezone

from accounts.selectors import user_get_by_email
from common.exceptions import NotFoundError
from common.exceptions import ValidationError as ServiceValidationError
from portal.models import UploadBatch, UploadFile
from portal.services.batches import MAX_EXPECTED_FILES

# ?sort= values and the ordering each stands for (a whitelist: nothing else
# from the query string reaches order_by).
FILE_SORTS: dict[str, tuple[str, ...]] = {
    "-created": ("-created_at", "-id"),
    "created": ("created_at", "id"),
    "-size": ("-size", "-created_at"),
    "size": ("size", "-created_at"),
    "name": ("filename", "-created_at"),
    "-name": ("-filename", "-created_at"),
}
FILE_SORT_CHOICES = [
    ("-created", "Newest first"),
    ("created", "Oldest first"),
    ("-size", "Largest first"),
    ("size", "Smallest first"),
    ("name", "Name A to Z"),
    ("-name", "Name Z to A"),
]


# The last "Uploaded to" day whose end (the next midnight) Python can represent.
LAST_END_DAY = date.max - timedelta(days=1)


def _no_nul(value: str) -> None:
    if "\x00" in value:
        raise forms.ValidationError("This value cannot contain NUL characters.")


class FileFilterForm(forms.Form):
    """The files list's query string. Each invalid value is reported and ignored."""

    q = forms.CharField(label="Name contains", required=False, max_length=255, validators=[_no_nul])
    status = forms.ChoiceField(
        label="Status", required=False, choices=[("", "Any"), *UploadFile.Status.choices]
    )
    batch = forms.UUIDField(label="Batch id", required=False)
    created_from = forms.DateField(
        label="Uploaded from", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    created_to = forms.DateField(
        label="Uploaded to",
        required=False,
        # The filter runs to the end of this day (the next midnight), which
        # must still be a date: 9999-12-31 overflowed (a 500).
        validators=[MaxValueValidator(LAST_END_DAY, message=f"Enter a date up to {LAST_END_DAY}.")],
        widget=forms.DateInput(attrs={"type": "date", "max": LAST_END_DAY.isoformat()}),
    )
    sort = forms.ChoiceField(label="Sort", required=False, choices=FILE_SORT_CHOICES)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        start, end = data.get("created_from"), data.get("created_to")
        if start and end and start > end:
            self.add_error("created_to", "The end date is before the start date.")
            # The range as a whole is wrong: neither end of it is applied.
            data.pop("created_from", None)
        return data

    def apply(self, queryset: QuerySet[UploadFile]) -> QuerySet[UploadFile]:
        """Filter and order by the values that are valid (all of them for a valid form)."""
        self.is_valid()
        data = self.cleaned_data
        if data.get("q"):
            queryset = queryset.filter(filename__icontains=data["q"])
        if data.get("status"):
            queryset = queryset.filter(status=data["status"])
        if data.get("batch"):
            queryset = queryset.filter(batch_id=data["batch"])
        if data.get("created_from"):
            queryset = queryset.filter(created_at__gte=_start_of(data["created_from"]))
        if data.get("created_to"):
            end = _start_of(data["created_to"]) + timedelta(days=1)
            queryset = queryset.filter(created_at__lt=end)
        return queryset.order_by(*FILE_SORTS[data.get("sort") or "-created"])


class OwnerScopeForm(forms.Form):
    """Staff's portal-wide view (``?everyone=1``), optionally one owner's files.

    Only built for staff; the selector ignores both values for anyone else.
    An unknown or malformed address is reported and not applied.
    """

    everyone = forms.BooleanField(required=False, widget=forms.HiddenInput)
    owner = forms.CharField(
        label="Owner's email",
        required=False,
        max_length=254,
        validators=[_no_nul],
        widget=forms.TextInput(attrs={"placeholder": "everyone", "autocomplete": "off"}),
    )

    def clean_owner(self) -> Any:
        value = self.cleaned_data.get("owner", "").strip()
        if not value:
            return None
        try:
            return user_get_by_email(email=value)
        except NotFoundError as exc:
            raise forms.ValidationError("No user has this email address.") from exc
        except ServiceValidationError as exc:  # malformed, as normalize_email says
            raise forms.ValidationError(exc.message) from exc

    def scope(self) -> tuple[bool, Any]:
        """(everyone, owner) from the valid values; an owner implies everyone's view."""
        self.is_valid()
        owner = self.cleaned_data.get("owner")
        return bool(self.cleaned_data.get("everyone")) or owner is not None, owner


def _start_of(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


class BatchChoiceField(forms.ModelChoiceField):
    """Open batches by the name given to them, else by the start of their id."""

    def label_from_instance(self, obj: UploadBatch) -> str:
        name = (obj.metadata or {}).get("name") if isinstance(obj.metadata, dict) else None
        return str(name) if name else f"Batch {str(obj.id)[:8]}"


# Keep times offered on the upload page, in hours (those up to
# FILE_UPLOAD_MAX_TTL_HOURS, plus the maximum itself).
KEEP_TIME_PRESETS = (1, 6, 24, 72, 168, 720)


def hours_label(hours: int) -> str:
    if hours % 24 == 0:
        days = hours // 24
        return "1 day" if days == 1 else f"{days} days"
    return "1 hour" if hours == 1 else f"{hours} hours"


def keep_time_choices() -> list[tuple[str, str]]:
    """("", the default) first, then the other keep times an uploader may choose."""
    default = int(settings.FILE_UPLOAD_TTL_HOURS)
    limit = int(settings.FILE_UPLOAD_MAX_TTL_HOURS)
    hours = sorted({h for h in (*KEEP_TIME_PRESETS, limit) if 1 <= h <= limit} - {default})
    return [("", f"{hours_label(default)} (default)")] + [(str(h), hours_label(h)) for h in hours]


class SimpleUploadForm(forms.Form):
    """The upload without JavaScript: one file, optionally into an open batch."""

    file = forms.FileField(label="File", allow_empty_file=True)
    batch = BatchChoiceField(
        label="Batch", required=False, queryset=UploadBatch.objects.none(), empty_label="No batch"
    )
    ttl_hours = forms.TypedChoiceField(
        label="Keep for",
        required=False,
        coerce=int,
        empty_value=None,
        help_text="Then the file is deleted.",
    )

    def __init__(self, *args: Any, batches: QuerySet[UploadBatch], **kwargs: Any):
        super().__init__(*args, **kwargs)
        field = cast(BatchChoiceField, self.fields["batch"])  # declared above
        field.queryset = batches
        keep = cast(forms.TypedChoiceField, self.fields["ttl_hours"])  # declared above
        keep.choices = keep_time_choices()


class BatchCreateForm(forms.Form):
    name = forms.CharField(
        label="Batch name",
        max_length=200,
        validators=[_no_nul],
        help_text="Shown on the batches page and sent in the batch's webhooks.",
    )
    expected_files = forms.IntegerField(
        label="Expected files (optional)",
        required=False,
        min_value=1,
        max_value=MAX_EXPECTED_FILES,
        help_text="The batch completes by itself when this many files have ended. "
        "Leave empty and close the batch yourself instead.",
    )
