"""The signed-in home page: the user's numbers, recent files, open batches;
for staff also the health of webhook delivery, and the same numbers for
every user (``?everyone=1``) or one (``?owner=`` email): the portal-wide view
outside /admin/."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render

from accounts.http import AuthenticatedHttpRequest
from common.selectors import delivery_health
from frontend.forms.files import OwnerScopeForm
from portal.selectors import (
    file_counts_for_owner,
    files_in_view,
    open_batches_for_owner,
    quota_for_owner,
)
from portal.services.file_totals import FOLD_OWNER_OVER, file_totals_fold

RECENT = 8


@login_required
def dashboard(request: AuthenticatedHttpRequest) -> HttpResponse:
    user = request.user
    scope_form = OwnerScopeForm(request.GET) if user.is_staff else None
    everyone, owner = scope_form.scope() if scope_form else (False, None)
    # None: every owner (staff's portal-wide view).
    counted = owner if owner is not None else (None if everyone else user)
    counts = file_counts_for_owner(owner=counted)
    if counted is not None and counts.foldable_rows > FOLD_OWNER_OVER:
        file_totals_fold(owner=counted)  # keeps the next page's sum small
    context = {
        "nav": "dashboard",
        "scope_form": scope_form,
        "everyone": everyone,
        "owner": owner,
        "counts": counts,
        "recent_files": files_in_view(user=user, everyone=everyone, owner=owner)[:RECENT],
        "open_batches": open_batches_for_owner(owner=counted).select_related("owner")[:RECENT],
        "notify_hours": settings.FILE_UPLOAD_EXPIRY_NOTIFY_HOURS,
        "health": delivery_health() if user.is_staff else None,
        "quota": quota_for_owner(owner=user),
    }
    return render(request, "frontend/dashboard.html", context)
