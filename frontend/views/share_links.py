"""The owner's side of share links: make one from a file's or batch's page, revoke one.

Like an API token, the plain link is shown once, on the page the POST
answers (never parked in the session); the lists show a link's state only.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.http import AuthenticatedHttpRequest
from common.exceptions import ApplicationError, ValidationError
from portal.models import ShareLink, UploadBatch, UploadFile
from portal.selectors import share_links_for_owner
from portal.services.share_links import share_link_create, share_link_revoke
from portal.storage import site_url


def _optional_int(request: AuthenticatedHttpRequest, field: str, label: str) -> int | None:
    raw = request.POST.get(field, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(
            f"{label} must be a whole number.", details={"field": field}
        ) from None


def _create(
    request: AuthenticatedHttpRequest,
    *,
    file: UploadFile | None,
    batch: UploadBatch | None,
    back: str,
) -> HttpResponse:
    try:
        new = share_link_create(
            owner=request.user,
            file=file,
            batch=batch,
            expires_in_hours=_optional_int(request, "expires_in_hours", "Hours"),
            max_downloads=_optional_int(request, "max_downloads", "Downloads"),
            password=request.POST.get("password") or None,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(back)
    url = site_url(request) + reverse("share:page", kwargs={"token": new.token})
    context: dict[str, Any] = {
        "nav": "files" if file else "batches",
        "link": new.link,
        "url": url,
        "back": back,
        "target": file.filename
        if file
        else (batch.metadata.get("name") if batch else "") or "this batch",
    }
    return render(request, "frontend/share/created.html", context, status=201)


@never_cache
@login_required
@require_POST
def file_share(request: AuthenticatedHttpRequest, file_id: UUID) -> HttpResponse:
    file = get_object_or_404(
        UploadFile.objects.select_related("owner"), pk=file_id, owner=request.user
    )
    return _create(
        request, file=file, batch=None, back=reverse("frontend:file_detail", args=[file.id])
    )


@never_cache
@login_required
@require_POST
def batch_share(request: AuthenticatedHttpRequest, batch_id: UUID) -> HttpResponse:
    batch = get_object_or_404(UploadBatch, pk=batch_id, owner=request.user)
    back = reverse("frontend:batch_detail", args=[batch.id])
    return _create(request, file=None, batch=batch, back=back)


@login_required
@require_POST
def share_link_revoke_view(request: AuthenticatedHttpRequest, link_id: UUID) -> HttpResponse:
    link: ShareLink = get_object_or_404(share_links_for_owner(owner=request.user), pk=link_id)
    share_link_revoke(link=link, actor=request.user)
    messages.success(
        request, "The share link is revoked: it answers “no longer works” from now on."
    )
    if link.file_id:
        return redirect("frontend:file_detail", file_id=link.file_id)
    return redirect("frontend:batch_detail", batch_id=link.batch_id)
