"""The signed-in home page: the user's numbers, recent files, open batches;
for staff also the health of webhook delivery."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render

from accounts.http import AuthenticatedHttpRequest
from common.selectors import delivery_health
from portal.selectors import file_counts_for_owner, files_for_user, open_batches_for_owner
from portal.services.file_totals import FOLD_OWNER_OVER, file_totals_fold

RECENT = 8


@login_required
def dashboard(request: AuthenticatedHttpRequest) -> HttpResponse:
    user = request.user
    counts = file_counts_for_owner(owner=user)
    if counts.foldable_rows > FOLD_OWNER_OVER:
        file_totals_fold(owner=user)  # keeps the next page's sum small
    context = {
        "nav": "dashboard",
        "counts": counts,
        "recent_files": files_for_user(user).filter(owner=user)[:RECENT],
        "open_batches": open_batches_for_owner(owner=user)[:RECENT],
        "notify_hours": settings.FILE_UPLOAD_EXPIRY_NOTIFY_HOURS,
        "health": delivery_health() if user.is_staff else None,
    }
    return render(request, "frontend/dashboard.html", context)
