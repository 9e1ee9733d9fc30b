"""The API token form: a name, so people can tell their tokens apart."""

from __future__ import annotations

from django import forms

from accounts.services.tokens import NAME_MAX_LENGTH


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=NAME_MAX_LENGTH,
        help_text="What uses this token, e.g. “nightly import runner”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
