"""The form field of every email address a person types (portal pages and admin)."""

from __future__ import annotations

from typing import Any

from django import forms

from accounts.emails import normalize_email
from common.exceptions import ApplicationError


class EmailAddressField(forms.CharField):
    """An email input whose clean value is ``normalize_email``'s one spelling.

    Used instead of ``forms.EmailField``, whose validator runs on the text as
    typed: it refused a fullwidth letter that is plainly an ASCII one and let
    a zero-width space through. Its error is ``normalize_email``'s message.
    """

    widget = forms.EmailInput

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 320)  # what a person may type; the result fits 254
        super().__init__(**kwargs)

    def clean(self, value: Any) -> str:
        text = super().clean(value)
        if text in self.empty_values:
            return text
        try:
            return normalize_email(text)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message, code="invalid") from exc
