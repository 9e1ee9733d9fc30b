"""Who may open a portal page.

Anonymous visitors are sent to the sign-in page; a signed-in user who is not
staff gets 403 on staff pages (Django's ``staff_member_required`` would send
them to the admin's sign-in instead, which says nothing useful).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_staff:
            raise PermissionDenied("Only staff may open it.")
        return view(request, *args, **kwargs)

    return wrapped
