"""Files: the user's list (search, filters, sort, pages), detail with events,
download and delete.

The list shows the signed-in user's own files; staff can switch it to every
user's files (``?everyone=1``) and narrow that to one owner (``?owner=``
email), the portal-wide view outside /admin/. The detail page accepts any
file staff may see. Another user's file is a 404, never a 403.
"""

from __future__ import annotations

import json
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts.http import AuthenticatedHttpRequest
from common.exceptions import ApplicationError
from common.selectors import event_list
from frontend.forms.files import FileFilterForm, OwnerScopeForm
from frontend.paging import CappedPaginator
from portal.models import UploadFile
from portal.selectors import batches_for_user, files_for_user, files_in_view
from portal.services.file_records import upload_file_delete
from portal.storage import file_download_url

PER_PAGE = 25


def _visible_file(request: AuthenticatedHttpRequest, file_id: UUID) -> UploadFile:
    return get_object_or_404(files_for_user(request.user), pk=file_id)


@login_required
@require_GET
def file_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = FileFilterForm(request.GET)
    scope_form = OwnerScopeForm(request.GET) if request.user.is_staff else None
    everyone, owner = scope_form.scope() if scope_form else (False, None)
    shown = files_in_view(user=request.user, everyone=everyone, owner=owner)
    # The list needs the batch's name, and the owner's only in everyone's view.
    related = ("batch", "owner") if everyone else ("batch",)
    files = form.apply(shown).select_related(None).select_related(*related)
    page_obj = CappedPaginator(files, PER_PAGE).get_page(request.GET.get("page"))
    batch_id = form.cleaned_data.get("batch")
    batch = batches_for_user(request.user).filter(pk=batch_id).first() if batch_id else None
    context = {
        "nav": "files",
        "form": form,
        "page_obj": page_obj,
        "files": page_obj.object_list,
        "filter_batch": batch,
        "scope_form": scope_form,
        "everyone": everyone,
        "owner": owner,
        "filtered": any(form.cleaned_data.get(k) for k in ("q", "status", "batch"))
        or bool(form.cleaned_data.get("created_from") or form.cleaned_data.get("created_to")),
    }
    return render(request, "frontend/files/list.html", context)


@login_required
@require_GET
def file_detail(request: AuthenticatedHttpRequest, file_id: UUID) -> HttpResponse:
    file = _visible_file(request, file_id)
    events = list(event_list(aggregate_type="file", aggregate_id=file.id))
    context = {
        "nav": "files",
        "file": file,
        "events": events,
        "metadata_json": json.dumps(file.metadata, indent=2, sort_keys=True, ensure_ascii=False)
        if file.metadata
        else "",
        "downloadable": file.status == UploadFile.Status.STORED and bool(file.storage_key),
    }
    return render(request, "frontend/files/detail.html", context)


@login_required
@require_GET
def file_download(request: AuthenticatedHttpRequest, file_id: UUID) -> HttpResponse:
    """Send the browser to a signed, expiring link (a presigned URL on S3)."""
    file = _visible_file(request, file_id)
    if file.status != UploadFile.Status.STORED or not file.storage_key:
        messages.error(request, "Only stored files can be downloaded.")
        return redirect("frontend:file_detail", file_id=file.id)
    return redirect(file_download_url(file, request=request))


@login_required
@require_http_methods(["GET", "POST"])
def file_delete(request: AuthenticatedHttpRequest, file_id: UUID) -> HttpResponse:
    """GET asks for confirmation; POST deletes the bytes and the record."""
    file = _visible_file(request, file_id)
    if request.method == "POST":
        try:
            upload_file_delete(file=file, actor=request.user)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect("frontend:file_detail", file_id=file.id)
        messages.success(request, f"{file.filename} was deleted.")
        return redirect("frontend:file_list")
    return render(request, "frontend/files/delete.html", {"nav": "files", "file": file})
