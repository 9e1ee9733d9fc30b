"""The upload page: Uppy over tus for browsers with JavaScript, a plain form without."""

from __future__ import annotations

from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from accounts.http import AuthenticatedHttpRequest
from common.exceptions import ApplicationError, PayloadTooLargeError, UnsupportedMediaTypeError
from frontend.forms.errors import add_service_error
from frontend.forms.files import BatchCreateForm, SimpleUploadForm, keep_time_choices
from portal.models import UploadBatch, UploadSession
from portal.selectors import files_for_user, open_batches_for_owner, quota_for_owner
from portal.services.quotas import QuotaExceededError
from portal.services.streaming import declared_file_size, parse_streaming_upload
from portal.services.tus.sessions import upload_session_is_gone, upload_session_status
from portal.services.uploads import upload_file_admit, upload_file_create_streamed

# One tus upload per file, sent in PATCHes of this size (docs/tus.md, "Browser"):
# big enough that a PATCH's fixed cost is lost in its bytes, and no parallel
# partial uploads, so the server never has to join them.
CHUNK_SIZE = 50 * 1024 * 1024


def _selected_batch(request: AuthenticatedHttpRequest) -> UploadBatch | None:
    """The open batch named by ``?batch=``; anything else is reported and ignored."""
    raw = request.GET.get("batch")
    if not raw:
        return None
    try:
        batch_id = UUID(raw)
    except ValueError:
        batch = None
    else:
        batch = open_batches_for_owner(owner=request.user).filter(pk=batch_id).first()
    if batch is None:
        messages.warning(
            request,
            "That batch is not one of your open batches; files are uploaded without a batch.",
        )
    return batch


def _limits() -> dict:
    allowed = [t.strip() for t in (settings.FILE_UPLOAD_ALLOWED_TYPES or []) if t.strip()]
    if any(t in ("*", "*/*") for t in allowed):
        allowed = []  # a wildcard entry allows everything, as in the service
    return {
        "resumable_max_size": int(settings.RESUMABLE_UPLOAD_MAX_SIZE),
        "simple_max_size": int(settings.FILE_UPLOAD_MAX_SIZE),
        "allowed_types": allowed,
        "ttl_hours": int(settings.FILE_UPLOAD_TTL_HOURS),
        "max_ttl_hours": int(settings.FILE_UPLOAD_MAX_TTL_HOURS),
    }


def _render_upload(
    request: AuthenticatedHttpRequest,
    *,
    form: SimpleUploadForm,
    batch: UploadBatch | None,
    status: int = 200,
) -> HttpResponse:
    limits = _limits()
    context = {
        "nav": "upload",
        "form": form,
        "batch": batch,
        "batch_form": BatchCreateForm(),
        "limits": limits,
        "allowed_types_attr": ",".join(limits["allowed_types"]),
        "chunk_size": CHUNK_SIZE,
        "keep_time_choices": keep_time_choices(),
        "quota": quota_for_owner(owner=request.user),
    }
    return render(request, "frontend/uploads/upload.html", context, status=status)


@login_required
@require_GET
def upload(request: AuthenticatedHttpRequest) -> HttpResponse:
    batch = _selected_batch(request)
    batches = open_batches_for_owner(owner=request.user)
    form = SimpleUploadForm(batches=batches, initial={"batch": batch})
    return _render_upload(request, form=form, batch=batch)


@login_required
@require_POST
@csrf_exempt
def upload_simple(request: AuthenticatedHttpRequest) -> HttpResponse:
    """One file in one multipart POST, up to ``FILE_UPLOAD_MAX_SIZE``.

    The file part streams straight into storage while Django reads the body
    (no spool file; ``portal.services.streaming``). That has to be set up
    before anything reads the body, and the CSRF check reads it, so the check
    runs just after (Django's "modifying upload handlers on the fly").
    """
    try:
        # The quota, before a byte is read (the exact size is checked at the end).
        upload_file_admit(owner=request.user, size=declared_file_size(request))
    except QuotaExceededError as exc:
        messages.error(request, f"The file was not uploaded: {exc.message}")
        form = SimpleUploadForm(batches=open_batches_for_owner(owner=request.user))
        return _render_upload(request, form=form, batch=None, status=exc.status_code)
    parse_streaming_upload(request, owner=request.user)
    return _upload_simple(request)


@csrf_protect
def _upload_simple(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = SimpleUploadForm(
        request.POST, request.FILES, batches=open_batches_for_owner(owner=request.user)
    )
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            file = upload_file_create_streamed(
                owner=request.user,
                upload=upload,
                batch=form.cleaned_data["batch"],
                ttl_hours=form.cleaned_data.get("ttl_hours"),
            )
        except (PayloadTooLargeError, UnsupportedMediaTypeError) as exc:
            # Recorded as a failed file with no bytes; the message is about the file.
            form.add_error("file", exc.message)
            messages.error(request, f"{upload.name} was not stored: {exc.message}")
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            if file.status == file.Status.SCANNING:
                messages.success(
                    request,
                    f"{file.filename} was uploaded; it is being checked before it is stored.",
                )
            else:
                messages.success(request, f"{file.filename} was uploaded and stored.")
            return redirect("frontend:file_detail", file_id=file.id)
        finally:
            upload.close()
    return _render_upload(request, form=form, batch=form.cleaned_data.get("batch"), status=400)


@login_required
@require_GET
def upload_result(request: AuthenticatedHttpRequest, upload_id: UUID) -> HttpResponse:
    """Where the upload page links a finished tus upload: that upload's file."""
    file = files_for_user(request.user).filter(upload_session__id=upload_id).first()
    if file is None:
        raise Http404("No file for this upload.")
    return redirect("frontend:file_detail", file_id=file.id)


@login_required
@require_GET
def upload_status(request: AuthenticatedHttpRequest, upload_id: UUID) -> JsonResponse:
    """Where one of your tus uploads stands, for the upload page after a reload.

    The page restores its files after a reload or a closed tab; one whose
    last request was in flight may already be a stored file (its answer was
    lost), may still be turning into one, or may have been refused. tus's
    ``HEAD`` says "every byte is here" in all three cases, so the page asks
    this instead before it resumes anything. Like ``HEAD``, asking finishes an
    upload whose bytes are all in but whose finalisation broke off.
    """
    try:
        session = upload_session_status(owner=request.user, upload_id=upload_id)
    except ApplicationError as exc:
        return JsonResponse(exc.as_dict(), status=exc.status_code)
    return JsonResponse(upload_state(session))


def upload_state(session: UploadSession) -> dict:
    """What the upload page is told of one upload (also the upload request page's)."""
    status = UploadSession.Status
    if session.concat == UploadSession.Concat.PARTIAL:
        # Never a file on its own (the page never makes one; API clients may).
        return {"state": "partial", "offset": session.offset, "length": session.length}
    if session.status == status.COMPLETE:
        if session.file_id is None:
            return {"state": "deleted"}  # stored, and deleted since
        url = reverse("frontend:file_detail", args=[session.file_id])
        return {"state": "stored", "file_url": url}
    if session.status == status.FAILED:
        return {"state": "failed", "message": session.error_message}
    if upload_session_is_gone(session):
        return {"state": "gone"}
    if session.length is not None and session.offset == session.length:
        # Every byte is in and another request is making the file right now.
        return {"state": "finishing"}
    return {"state": "receiving", "offset": session.offset, "length": session.length}
