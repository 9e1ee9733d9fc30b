"""Sign-in, registration and password-reset forms: email is the username,
always in ``accounts.emails.normalize_email``'s one spelling."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.contrib.auth.password_validation import (
    password_validators_help_text_html,
    validate_password,
)

from accounts.forms import EmailAddressField
from accounts.models import User


class EmailAuthenticationForm(AuthenticationForm):
    """Django's sign-in form, with the username field an email address.

    A mistyped address (an invisible character in it) is named as such
    instead of "wrong email or password"; the backend normalises again for
    sign-ins that do not come through this form (the admin's).
    """

    username = EmailAddressField(
        label="Email", widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )


class EmailPasswordResetForm(PasswordResetForm):
    """Django's reset form, finding the account whichever spelling was typed."""

    email = EmailAddressField(
        label="Email", widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )


class RegisterForm(forms.Form):
    email = EmailAddressField(
        label="Email", widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        cleaned = super().clean()
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", "The two passwords differ.")
        elif first:
            try:
                validate_password(first, user=User(email=cleaned.get("email", "")))
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return cleaned
