"""The public side of share links: the page a link opens, and its download.

No account: the link's token is the authority, checked on every request.
A password, when the link has one, is asked on the page first (counted per
client address, ``portal.services.share_links``) and remembered in the
visitor's session. The bytes always come from Doorito (never a presigned
URL, which could be fetched again past the download limit).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from accounts.client_address import client_address, throttle_address
from portal.models import ShareLink, UploadFile
from portal.selectors import share_link_files, share_link_get_by_token
from portal.services.downloads import (
    file_chunks,
    file_downloads_record,
    share_link_downloader,
    stream_then,
)
from portal.services.share_links import (
    ShareLinkState,
    share_link_check_password,
    share_link_claim_download,
    share_link_state,
)
from portal.services.zip_stream import zip_plan, zip_stream
from portal.storage import content_disposition

SESSION_KEY = "share_links_unlocked"

GONE_REASONS = {
    ShareLinkState.EXPIRED: "This link has expired.",
    ShareLinkState.REVOKED: "This link was withdrawn by the person who shared it.",
    ShareLinkState.USED_UP: "This link has been used as many times as it allows.",
    "empty": "The files behind this link are no longer here.",
}


def _private[R: HttpResponseBase](response: R) -> R:
    # The token is in the URL: keep it out of caches, other sites' referrers
    # and search engines. "same-origin", not "no-referrer": with the latter
    # Chromium sends the password form's POST with "Origin: null", which
    # Django's CSRF check refuses.
    response["Cache-Control"] = "private, no-store"
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _gone(request: HttpRequest, reason: str) -> HttpResponse:
    response = render(
        request, "frontend/share/gone.html", {"reason": GONE_REASONS[reason]}, status=410
    )
    return _private(response)


def _not_found(request: HttpRequest) -> HttpResponse:
    return _private(render(request, "frontend/share/missing.html", status=404))


def _unlocked(request: HttpRequest, link: ShareLink) -> bool:
    return not link.has_password or str(link.pk) in request.session.get(SESSION_KEY, [])


def _unlock(request: HttpRequest, link: ShareLink) -> None:
    unlocked = [i for i in request.session.get(SESSION_KEY, []) if i != str(link.pk)]
    request.session[SESSION_KEY] = [*unlocked[-49:], str(link.pk)]


@never_cache
@require_http_methods(["GET", "POST"])
def share_page(request: HttpRequest, token: str) -> HttpResponse:
    link = share_link_get_by_token(token)
    if link is None:
        return _not_found(request)
    state = share_link_state(link)
    if state != ShareLinkState.ACTIVE:
        return _gone(request, state)
    files = share_link_files(link)
    if not files:
        return _gone(request, "empty")
    error = ""
    if request.method == "POST" and link.has_password:
        check = share_link_check_password(
            link=link,
            password=request.POST.get("password", ""),
            address=throttle_address(client_address(request)),
        )
        if check.ok:
            _unlock(request, link)
            return _private(redirect("share:page", token=token))
        if check.lockout is not None:
            minutes = {"minutes_left": check.lockout.minutes_left()}
            return _private(render(request, "frontend/share/locked_out.html", minutes, status=429))
        error = "That password is not right."
    context: dict[str, Any] = {
        "link": link,
        "token": token,
        "files": files,
        "total_size": sum(f.size for f in files),
        "unlocked": _unlocked(request, link),
        "error": error,
        "downloads_left": None
        if link.max_downloads is None
        else max(link.max_downloads - link.downloads, 0),
    }
    # Django's convention: a form with errors comes back as a normal page (200).
    return _private(render(request, "frontend/share/page.html", context))


def _file_response(link: ShareLink, file: UploadFile) -> StreamingHttpResponse:
    downloader = share_link_downloader(link)
    response = StreamingHttpResponse(
        stream_then(
            file_chunks(file),
            lambda: file_downloads_record(files=[file], downloader=downloader),
        ),
        content_type=file.content_type or "application/octet-stream",
    )
    response["Content-Disposition"] = content_disposition(file.filename)
    response["Content-Length"] = str(file.size)
    return response


def _zip_response(link: ShareLink, files: list[UploadFile]) -> StreamingHttpResponse:
    downloader = share_link_downloader(link)
    plan = zip_plan(files)
    batch = link.batch
    name = (batch.metadata.get("name") if batch and isinstance(batch.metadata, dict) else None) or (
        f"batch-{link.batch_id}"
    )
    response = StreamingHttpResponse(
        stream_then(
            zip_stream(plan),
            lambda: file_downloads_record(files=plan.files, downloader=downloader, archive=True),
        ),
        content_type="application/zip",
    )
    response["Content-Disposition"] = content_disposition(f"{name}.zip")
    return response


@never_cache
@require_GET
def share_download(request: HttpRequest, token: str) -> HttpResponseBase:
    """The bytes, counted first: a link out of downloads answers 410, whoever asked first."""
    link = share_link_get_by_token(token)
    if link is None:
        return _not_found(request)
    state = share_link_state(link)
    if state != ShareLinkState.ACTIVE:
        return _gone(request, state)
    if not _unlocked(request, link):
        return _private(redirect("share:page", token=token))
    files = share_link_files(link)
    if not files:
        return _gone(request, "empty")
    if not share_link_claim_download(link=link):
        # Another download took the last turn (or the link ended) since the read above.
        link.refresh_from_db()
        state = share_link_state(link)
        return _gone(request, state if state != ShareLinkState.ACTIVE else ShareLinkState.USED_UP)
    response = _file_response(link, files[0]) if link.file_id else _zip_response(link, files)
    response["X-Content-Type-Options"] = "nosniff"
    return _private(response)
