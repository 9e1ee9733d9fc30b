"""A service's ApplicationError shown on the form that caused it."""

from __future__ import annotations

from django import forms

from common.exceptions import ApplicationError


def add_service_error(form: forms.Form, exc: ApplicationError) -> None:
    """Attach the error to the field its details name, else to the whole form."""
    details = exc.details if isinstance(exc.details, dict) else {}
    for name in details:
        if name in form.fields:
            form.add_error(name, exc.message)
            return
    field = details.get("field")
    form.add_error(field if field in form.fields else None, exc.message)
