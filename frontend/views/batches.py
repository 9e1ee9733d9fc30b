"""Batches: list with progress, create (from the upload page), detail with live
progress over htmx, close.

Like the files list, the batches list shows the user's own batches (staff
included); the detail page accepts any batch the user may see.
"""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from accounts.http import AuthenticatedHttpRequest
from common.exceptions import ApplicationError
from frontend.forms.errors import add_service_error
from frontend.forms.files import BatchCreateForm
from frontend.paging import CappedPaginator
from portal.models import UploadBatch
from portal.selectors import batches_for_user, files_for_user, share_links_for_owner
from portal.services.batches import batch_close as close_batch
from portal.services.batches import batch_create as create_batch

PER_PAGE = 25
# The detail page lists this many of the batch's files; the rest are one
# click away on the files page, filtered by the batch.
FILES_SHOWN = 50


def _visible_batch(request: AuthenticatedHttpRequest, batch_id: UUID) -> UploadBatch:
    return get_object_or_404(batches_for_user(request.user), pk=batch_id)


def _progress_key(batch: UploadBatch) -> str:
    """What the progress block shows, in short: the same key, nothing new to show."""
    return (
        f"{batch.status}:{batch.files_stored}:{batch.files_failed}:{batch.files_deleted}"
        f":{batch.expected_files}"
    )


def _progress_context(batch: UploadBatch) -> dict:
    return {
        "batch": batch,
        "progress_key": _progress_key(batch),
        "terminal": batch.status in UploadBatch.TERMINAL_STATUSES,
        "open": batch.status not in UploadBatch.TERMINAL_STATUSES and batch.closed_at is None,
    }


@login_required
@require_GET
def batch_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    batches = (
        batches_for_user(request.user)
        .filter(owner=request.user)
        .select_related(None)
        .order_by("-created_at", "-id")
    )
    page_obj = CappedPaginator(batches, PER_PAGE).get_page(request.GET.get("page"))
    context = {"nav": "batches", "page_obj": page_obj, "batches": page_obj.object_list}
    return render(request, "frontend/batches/list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def batch_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    """A named batch; then back to the upload page, uploading into it."""
    form = BatchCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            batch = create_batch(
                owner=request.user,
                expected_files=form.cleaned_data["expected_files"],
                metadata={"name": form.cleaned_data["name"]},
            )
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(
                request,
                f"Batch “{form.cleaned_data['name']}” is open: files you upload now go into it.",
            )
            return redirect(reverse("frontend:upload") + f"?batch={batch.id}")
    status = 400 if request.method == "POST" else 200
    return render(
        request, "frontend/batches/new.html", {"nav": "batches", "form": form}, status=status
    )


@login_required
@require_GET
def batch_detail(request: AuthenticatedHttpRequest, batch_id: UUID) -> HttpResponse:
    batch = _visible_batch(request, batch_id)
    files = list(
        files_for_user(request.user)
        .filter(batch=batch)
        .select_related(None)
        .order_by("-created_at", "-id")[: FILES_SHOWN + 1]
    )
    context = {
        "nav": "batches",
        **_progress_context(batch),
        "files": files[:FILES_SHOWN],
        "more_files": len(files) > FILES_SHOWN,
        "share_links": list(share_links_for_owner(owner=request.user).filter(batch=batch)),
        "can_share": batch.owner_id == request.user.pk and batch.files_stored > 0,
        "share_batch": True,
        "share_action": reverse("frontend:batch_share", args=[batch.id]),
    }
    return render(request, "frontend/batches/detail.html", context)


@login_required
@require_GET
def batch_progress(request: AuthenticatedHttpRequest, batch_id: UUID) -> HttpResponse:
    """The progress fragment htmx polls; without a trigger once the batch has ended.

    204 (htmx swaps nothing) while the page shows it as it is (``?seen=``): the
    block sits in a live region, and each swap would read the counts out again.
    """
    batch = _visible_batch(request, batch_id)
    if request.GET.get("seen") == _progress_key(batch):
        return HttpResponse(status=204)
    return render(request, "frontend/batches/detail.html#progress", _progress_context(batch))


@login_required
@require_http_methods(["GET", "POST"])
def batch_close(request: AuthenticatedHttpRequest, batch_id: UUID) -> HttpResponse:
    """GET asks for confirmation; POST ends the batch with the files it has."""
    batch = _visible_batch(request, batch_id)
    if request.method == "POST":
        try:
            batch = close_batch(batch=batch, actor=request.user)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request, f"The batch was closed: {batch.get_status_display().lower()}."
            )
        return redirect("frontend:batch_detail", batch_id=batch.id)
    return render(
        request, "frontend/batches/close.html", {"nav": "batches", **_progress_context(batch)}
    )
