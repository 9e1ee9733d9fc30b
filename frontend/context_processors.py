"""Values every portal page's layout needs (navigation, sign-up link)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def portal(request: HttpRequest) -> dict[str, Any]:
    return {"registration_open": settings.REGISTRATION_OPEN}
