"""Upload requests: the owner's pages (create, list, revoke) and the outsider's page.

The outsider's page lives at the request's link (``/r/<token>/``) and needs no
account. Its steps: the password (when there is one, throttled per client
address), the sender's name and email (required when the request says so),
then the same Uppy + tus uploader as the portal's upload page. The browser
keeps two signed cookies scoped to the link's path: that the password was
given, and which submission it is sending; the uploader gets the
submission's credential for the tus endpoint (``Upload-Request-Token``).
"""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.client_address import client_address, throttle_address
from accounts.http import AuthenticatedHttpRequest
from common.exceptions import ApplicationError
from frontend.forms.errors import add_service_error
from frontend.forms.upload_requests import (
    UploadRequestCreateForm,
    UploadRequestPasswordForm,
    UploadRequestSenderForm,
)
from frontend.paging import CappedPaginator
from frontend.views.uploads import CHUNK_SIZE, upload_state
from portal.models import UploadFile, UploadRequest, UploadRequestSubmission
from portal.selectors import upload_request_submissions, upload_requests_for_user
from portal.services.tus.sessions import max_upload_size, upload_session_status
from portal.services.upload_requests import (
    UploadRequestPasswordThrottled,
    submission_credential,
    submission_finish,
    submission_start,
    upload_request_by_token,
    upload_request_check_password,
    upload_request_create,
    upload_request_revoke,
    upload_request_state,
    upload_request_url,
    upload_request_usage,
)

PAGE_SIZE = 25
PASSWORD_COOKIE_HOURS = 12
_PASSWORD_SALT = "frontend.upload_request.password"  # noqa: S105 - a salt, not a secret
_SUBMISSION_SALT = "frontend.upload_request.submission"


# --- the owner's pages ------------------------------------------------------------------


def _own_request(request: AuthenticatedHttpRequest, request_id: UUID) -> UploadRequest:
    found = upload_requests_for_user(request.user).filter(pk=request_id).first()
    if found is None:
        raise Http404("No such upload request.")
    return found


@never_cache
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def request_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Your upload requests with their totals, and the form that makes one.

    A POST renders the new link on this one answer (never stored, never
    shown again), like a new API token.
    """
    form = UploadRequestCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created, raw = upload_request_create(owner=request.user, **form.service_arguments())
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            context = {
                "nav": "requests",
                "upload_request": created,
                "url": upload_request_url(raw, request=request),
            }
            return render(request, "frontend/upload_requests/created.html", context, status=201)
    own = upload_requests_for_user(request.user).filter(owner=request.user)
    page_obj = CappedPaginator(own.order_by("-created_at", "-id"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    now = timezone.now()
    for item in page_obj:
        item.state = upload_request_state(item, now=now)
    context = {"nav": "requests", "form": form, "page_obj": page_obj}
    return render(request, "frontend/upload_requests/list.html", context)


@login_required
@require_GET
def request_detail(request: AuthenticatedHttpRequest, request_id: UUID) -> HttpResponse:
    """One request: its limits, state and each sender's submission."""
    found = _own_request(request, request_id)
    context = {
        "nav": "requests",
        "upload_request": found,
        "state": upload_request_state(found),
        "submissions": upload_request_submissions(found),
    }
    return render(request, "frontend/upload_requests/detail.html", context)


@login_required
@require_POST
def request_revoke(request: AuthenticatedHttpRequest, request_id: UUID) -> HttpResponse:
    """One click (a POST with CSRF): the link stops working; files already sent stay."""
    found = _own_request(request, request_id)
    upload_request_revoke(upload_request=found, actor=request.user)
    messages.success(request, f"“{found.title}” is revoked: its link no longer takes files.")
    target = request.POST.get("next")
    if target == "detail":
        return redirect("frontend:upload_request_detail", request_id=found.id)
    return redirect("frontend:upload_request_list")


# --- the outsider's page ------------------------------------------------------------------


def _cookie_name(kind: str, upload_request: UploadRequest) -> str:
    return f"doorito_ur_{kind}_{upload_request.id.hex[:16]}"


def _page_path(token: str) -> str:
    return reverse("frontend:upload_request_page", args=[token])


def _public_request(token: str) -> UploadRequest:
    found = upload_request_by_token(token)
    if found is None:
        raise Http404("No such upload link.")
    return found


def _password_given(request: HttpRequest, upload_request: UploadRequest) -> bool:
    if not upload_request.password_hash:
        return True
    value = request.get_signed_cookie(
        _cookie_name("pw", upload_request),
        default=None,
        salt=_PASSWORD_SALT,
        max_age=PASSWORD_COOKIE_HOURS * 3600,
    )
    return value == str(upload_request.id)


def _current_submission(
    request: HttpRequest, upload_request: UploadRequest
) -> UploadRequestSubmission | None:
    raw = request.get_signed_cookie(
        _cookie_name("sub", upload_request), default=None, salt=_SUBMISSION_SALT
    )
    if not raw:
        return None
    try:
        return (
            UploadRequestSubmission.objects.select_related("request", "request__owner", "batch")
            .filter(pk=UUID(raw), request=upload_request)
            .first()
        )
    except ValueError:
        return None


def _public_render(
    request: HttpRequest, template: str, upload_request: UploadRequest, *, status: int = 200, **ctx
) -> HttpResponse:
    usage = upload_request_usage(upload_request)
    context = {
        "upload_request": upload_request,
        "usage": usage,
        "files_left": (
            max(0, upload_request.max_files - usage.files)
            if upload_request.max_files is not None
            else None
        ),
        "bytes_left": (
            max(0, upload_request.max_bytes - usage.bytes)
            if upload_request.max_bytes is not None
            else None
        ),
        "largest_file": max_upload_size(),
        **ctx,
    }
    response = render(request, f"frontend/upload_requests/{template}", context, status=status)
    response["Cache-Control"] = "no-store"
    # The link is the key: never sent to another site (same-origin, not
    # no-referrer, under which browsers send "Origin: null" and CSRF fails).
    response["Referrer-Policy"] = "same-origin"
    return response


def _seconds_left(upload_request: UploadRequest) -> int:
    return max(60, int((upload_request.expires_at - timezone.now()).total_seconds()))


def _closed(request: HttpRequest, upload_request: UploadRequest) -> HttpResponse | None:
    state = upload_request_state(upload_request)
    if state == "open":
        return None
    return _public_render(request, "closed.html", upload_request, status=410, state=state)


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def public_page(request: HttpRequest, token: str) -> HttpResponse:
    """The link's page: password, then sender, then the uploader (or the thank-you)."""
    upload_request = _public_request(token)
    closed = _closed(request, upload_request)
    if closed is not None:
        return closed
    step = request.POST.get("step") if request.method == "POST" else None

    if not _password_given(request, upload_request):
        pw_form = UploadRequestPasswordForm(request.POST if step == "password" else None)
        status = 200
        if step == "password" and pw_form.is_valid():
            address = throttle_address(client_address(request))
            try:
                right = upload_request_check_password(
                    upload_request=upload_request,
                    password=pw_form.cleaned_data["password"],
                    address=address,
                )
            except UploadRequestPasswordThrottled as exc:
                pw_form.add_error(None, exc.message)
                status = 429
            else:
                if right:
                    response = redirect(_page_path(token))
                    response.set_signed_cookie(
                        _cookie_name("pw", upload_request),
                        str(upload_request.id),
                        salt=_PASSWORD_SALT,
                        max_age=PASSWORD_COOKIE_HOURS * 3600,
                        path=_page_path(token),
                        httponly=True,
                        samesite="Lax",
                        secure=request.is_secure(),
                    )
                    return response
                pw_form.add_error("password", "That is not the password.")
                status = 400
        return _public_render(request, "password.html", upload_request, form=pw_form, status=status)

    submission = _current_submission(request, upload_request)
    if submission is None or step == "sender":
        form = UploadRequestSenderForm(
            request.POST if step == "sender" else None,
            require_sender=upload_request.require_sender,
        )
        if step == "sender" and form.is_valid():
            try:
                submission = submission_start(
                    upload_request=upload_request,
                    sender_name=form.cleaned_data["sender_name"],
                    sender_email=form.cleaned_data["sender_email"],
                )
            except ApplicationError as exc:
                add_service_error(form, exc)
            else:
                response = redirect(_page_path(token))
                response.set_signed_cookie(
                    _cookie_name("sub", upload_request),
                    str(submission.id),
                    salt=_SUBMISSION_SALT,
                    max_age=max(
                        60, int((upload_request.expires_at - timezone.now()).total_seconds())
                    ),
                    path=_page_path(token),
                    httponly=True,
                    samesite="Lax",
                    secure=request.is_secure(),
                )
                return response
        status = 400 if step == "sender" else 200
        return _public_render(request, "sender.html", upload_request, form=form, status=status)

    if submission.submitted_at is not None:
        files = list(submission.batch.files.order_by("created_at")) if submission.batch else []
        # Only a stored file makes the owner hear of it (submission_finish).
        sent = any(f.status == UploadFile.Status.STORED for f in files)
        return _public_render(
            request, "thanks.html", upload_request, submission=submission, files=files, sent=sent
        )
    allowed = upload_request.allowed_types
    return _public_render(
        request,
        "upload.html",
        upload_request,
        submission=submission,
        credential=submission_credential(submission),
        allowed_types_attr=",".join(allowed),
        chunk_size=CHUNK_SIZE,
        page_path=_page_path(token),
    )


@require_GET
def public_status(request: HttpRequest, token: str, upload_id: UUID) -> JsonResponse:
    """Where one of this sender's uploads stands (the upload page after a reload).

    Like the portal's, without the link to the file: a sender sees no files.
    """
    upload_request = _public_request(token)
    submission = _current_submission(request, upload_request)
    if submission is None or upload_request_state(upload_request) != "open":
        return JsonResponse(
            {"error": {"code": "not_found", "message": "No such upload.", "details": {}}},
            status=404,
        )
    try:
        session = upload_session_status(
            owner=upload_request.owner, upload_id=upload_id, submission=submission
        )
    except ApplicationError as exc:
        return JsonResponse(exc.as_dict(), status=exc.status_code)
    state = upload_state(session)
    state.pop("file_url", None)
    return JsonResponse(state)


@require_POST
def public_finish(request: HttpRequest, token: str) -> HttpResponse:
    """The sender is done: their batch closes and the owner is told (once)."""
    upload_request = _public_request(token)
    submission = _current_submission(request, upload_request)
    if submission is not None and submission.submitted_at is None:
        submission_finish(submission=submission)
    return redirect(_page_path(token))


@require_POST
def public_again(request: HttpRequest, token: str) -> HttpResponse:
    """Send more files: forget the finished submission; the next one starts afresh."""
    upload_request = _public_request(token)
    response = redirect(_page_path(token))
    response.delete_cookie(_cookie_name("sub", upload_request), path=_page_path(token))
    return response
