"""The authorised download view for local storage.

A signed, expiring token (issued by ``portal.storage.file_download_url``) is
the authorisation, like an S3 presigned URL, so webhook receivers can fetch.
"""

from __future__ import annotations

from django.core import signing
from django.http import FileResponse, HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_safe

from common.exceptions import ApplicationError, NotFoundError, PermissionDeniedError
from portal.models import UploadFile
from portal.storage import content_disposition, file_id_from_download_token, file_storage


def _error(exc: ApplicationError) -> JsonResponse:
    return JsonResponse(exc.as_dict(), status=exc.status_code)


@require_safe
def file_download(request: HttpRequest, token: str) -> HttpResponseBase:
    # An ordinary link serves a stored file; the pre-store hook's link serves
    # a file being verified. Neither ever serves a quarantined or rejected one.
    status = UploadFile.Status.STORED
    try:
        try:
            file_id = file_id_from_download_token(token)
        except signing.BadSignature as exc:
            if isinstance(exc, signing.SignatureExpired):
                raise
            file_id = file_id_from_download_token(token, pre_store=True)
            status = UploadFile.Status.SCANNING
    except signing.SignatureExpired:
        return _error(PermissionDeniedError("This download link has expired.", code="link_expired"))
    except signing.BadSignature:
        return _error(PermissionDeniedError("This download link is not valid.", code="bad_link"))
    file = UploadFile.objects.filter(pk=file_id, status=status).first()
    if file is None or not file.storage_key:
        return _error(NotFoundError("File not found.", details={"file_id": file_id}))
    try:
        handle = file_storage().open(file.storage_key, "rb")
    except FileNotFoundError:
        return _error(NotFoundError("File not found.", details={"file_id": file_id}))
    response = FileResponse(handle, content_type=file.content_type or "application/octet-stream")
    response["Content-Disposition"] = content_disposition(file.filename)
    response["Content-Length"] = str(file.size)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
