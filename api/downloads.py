"""The authorised download view for local storage.

A signed, expiring token (issued by ``portal.storage.file_download_url``) is
the authorisation, like an S3 presigned URL, so webhook receivers can fetch.
The download is recorded (``file.downloaded``) once its last byte is out.
"""

from __future__ import annotations

from django.core import signing
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_safe

from common.exceptions import ApplicationError, NotFoundError, PermissionDeniedError
from portal.models import UploadFile
from portal.services.downloads import (
    downloader_from_link,
    file_chunks,
    file_downloads_record,
    stream_then,
)
from portal.storage import content_disposition, download_token_parts, file_storage


def _error(exc: ApplicationError) -> JsonResponse:
    return JsonResponse(exc.as_dict(), status=exc.status_code)


@require_safe
def file_download(request: HttpRequest, token: str) -> HttpResponseBase:
    # An ordinary link serves a stored file; the pre-store hook's link serves
    # a file being verified. Neither ever serves a quarantined or rejected one.
    status = UploadFile.Status.STORED
    try:
        try:
            file_id, via, user_id, token_id = download_token_parts(token)
        except signing.BadSignature as exc:
            if isinstance(exc, signing.SignatureExpired):
                raise
            file_id, via, user_id, token_id = download_token_parts(token, pre_store=True)
            status = UploadFile.Status.SCANNING
    except signing.SignatureExpired:
        return _error(PermissionDeniedError("This download link has expired.", code="link_expired"))
    except signing.BadSignature:
        return _error(PermissionDeniedError("This download link is not valid.", code="bad_link"))
    file = UploadFile.objects.select_related("owner").filter(pk=file_id, status=status).first()
    if file is None or not file.storage_key or not file_storage().exists(file.storage_key):
        return _error(NotFoundError("File not found.", details={"file_id": file_id}))
    downloader = downloader_from_link(via=via, user_id=user_id, token_id=token_id)
    content_type = file.content_type or "application/octet-stream"
    if request.method == "HEAD":
        response: HttpResponseBase = StreamingHttpResponse([], content_type=content_type)
    else:
        response = StreamingHttpResponse(
            # The pre-store hook reading a file being verified is no download
            # (the file is not stored yet): no ``file.downloaded`` for it.
            file_chunks(file)
            if status == UploadFile.Status.SCANNING
            else stream_then(
                file_chunks(file),
                lambda: file_downloads_record(files=[file], downloader=downloader),
            ),
            content_type=content_type,
        )
    response["Content-Disposition"] = content_disposition(file.filename)
    response["Content-Length"] = str(file.size)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
