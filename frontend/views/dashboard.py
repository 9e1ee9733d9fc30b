"""The signed-in home page: the user's numbers, recent files, open batches;
for staff also the health of webhook delivery."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render

from accounts.http import AuthenticatedHttpRequest
from common.selectors import delivery_health
from portal.selectors import (
    file_counts_for_owner,
    files_for_user,
    open_batches_for_owner,
    quota_for_owner,
)

RECENT = 8


@login_required
def dashboard(request: AuthenticatedHttpRequest) -> HttpResponse:
    user = request.user
    context = {
        "nav": "dashboard",
        "counts": file_counts_for_owner(owner=user),
        "recent_files": files_for_user(user).filter(owner=user)[:RECENT],
        "open_batches": open_batches_for_owner(owner=user)[:RECENT],
        "notify_hours": settings.FILE_UPLOAD_EXPIRY_NOTIFY_HOURS,
        "health": delivery_health() if user.is_staff else None,
        "quota": quota_for_owner(owner=user),
    }
    return render(request, "frontend/dashboard.html", context)
