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
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.http import AuthenticatedHttpRequest
from common.exceptions import ApplicationError
from common.selectors import event_list
from frontend.forms.files import FileFilterForm, OwnerScopeForm
from frontend.paging import CappedPaginator
from portal.models import FileDownload, UploadFile
from portal.selectors import (
    batches_for_user,
    downloads_for_file,
    files_for_user,
    files_in_view,
    share_links_for_owner,
)
from portal.services.bulk import owned_files, upload_files_delete
from portal.services.downloads import (
    Downloader,
    file_download_link,
    file_downloads_record,
    stream_then,
)
from portal.services.file_records import upload_file_delete
from portal.services.zip_stream import zip_plan, zip_stream
from portal.storage import content_disposition

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
        "downloads": downloads_for_file(file=file),
        "share_links": list(share_links_for_owner(owner=request.user).filter(file=file)),
        "can_share": file.owner_id == request.user.pk
        and file.status == UploadFile.Status.STORED
        and bool(file.storage_key),
        "share_action": reverse("frontend:file_share", args=[file.id]),
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
    downloader = Downloader(via=FileDownload.Via.PORTAL, user_id=request.user.pk)
    return redirect(file_download_link(file=file, downloader=downloader, request=request))


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


def _selected_ids(request: AuthenticatedHttpRequest) -> list[UUID]:
    ids = []
    for raw in request.POST.getlist("ids"):
        try:
            ids.append(UUID(raw))
        except ValueError:
            continue  # not a file id: nothing of the user's to act on
    return ids


@never_cache
@login_required
@require_POST
def file_bulk(request: AuthenticatedHttpRequest) -> HttpResponseBase:
    """The Files page's bulk actions on the ticked rows (own files only).

    ``zip``: the stored ones as one streamed zip. ``delete``: a confirmation
    page first, then (``confirm``) each file deleted as from its own page.
    """
    files = owned_files(owner=request.user, ids=_selected_ids(request))
    action = request.POST.get("action")
    if not files:
        messages.error(request, "Tick at least one of your files first.")
        return redirect("frontend:file_list")
    if action == "zip":
        stored = [f for f in files if f.status == UploadFile.Status.STORED and f.storage_key]
        if not stored:
            messages.error(request, "None of the ticked files is stored: nothing to download.")
            return redirect("frontend:file_list")
        plan = zip_plan(stored)
        downloader = Downloader(via=FileDownload.Via.PORTAL, user_id=request.user.pk)
        response = StreamingHttpResponse(
            stream_then(
                zip_stream(plan),
                lambda: file_downloads_record(
                    files=plan.files, downloader=downloader, archive=True
                ),
            ),
            content_type="application/zip",
        )
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = content_disposition(f"doorito-{stamp}.zip")
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "private, no-store"
        return response
    if action == "delete":
        if request.POST.get("confirm") != "yes":
            return render(
                request, "frontend/files/bulk_delete.html", {"nav": "files", "files": files}
            )
        try:
            count = upload_files_delete(files=files, actor=request.user)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect("frontend:file_list")
        messages.success(request, f"{count} file{pluralize(count)} deleted.")
        return redirect("frontend:file_list")
    messages.error(request, "Choose what to do with the ticked files.")
    return redirect("frontend:file_list")
