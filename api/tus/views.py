"""The tus 1.0 endpoint: protocol parsing and responses only.

Each handler checks headers (``api.tus.headers``), calls one service in
``portal.services.tus`` and turns the result, or the ``ApplicationError``
it raised, into the status codes and headers the protocol names. Request
bodies are never read here: the request object itself is handed to the
service as a stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt

from accounts.models import User
from api.auth import authenticate_request
from api.tus.headers import (
    CHECKSUM_ALGORITHMS,
    OFFSET_CONTENT_TYPE,
    TUS_EXTENSIONS,
    TUS_VERSION,
    TusHeaderError,
    parse_checksum,
    parse_concat,
    parse_metadata,
    parse_non_negative_int,
)
from common.exceptions import (
    ApplicationError,
    AuthenticationError,
    PayloadTooLargeError,
    PermissionDeniedError,
    UnsupportedMediaTypeError,
)
from portal.models import UploadRequestSubmission, UploadSession
from portal.services.tus.append import upload_session_append, upload_session_create_with_body
from portal.services.tus.concatenation import upload_session_concatenate
from portal.services.tus.sessions import (
    ensure_alive,
    max_upload_size,
    upload_session_is_finished,
    upload_session_status,
    upload_session_terminate,
)
from portal.services.upload_requests import CREDENTIAL_HEADER, submission_from_credential
from web.outage import DATABASE_ERRORS, database_unavailable
from web.raw_body import socket_body

logger = logging.getLogger(__name__)


class TusVersionError(ApplicationError):
    code = "unsupported_tus_version"
    status_code = 412
    default_message = f"This server speaks tus {TUS_VERSION}; send 'Tus-Resumable: {TUS_VERSION}'."


class MethodNotAllowedError(ApplicationError):
    code = "method_not_allowed"
    status_code = 405
    default_message = "This method is not allowed here."


class LengthRequiredError(ApplicationError):
    code = "length_required"
    status_code = 411
    default_message = "A request body needs a Content-Length header (chunked bodies are refused)."


def _prefix() -> str:
    return reverse("tus:collection")


def _upload_url(request: HttpRequest, session: UploadSession) -> str:
    return request.build_absolute_uri(reverse("tus:upload", args=[session.id]))


def _expires(response: HttpResponse, session: UploadSession) -> None:
    if not upload_session_is_finished(session):
        response["Upload-Expires"] = http_date(session.expires_at.timestamp())


def _content_length(request: HttpRequest) -> int:
    value = request.META.get("CONTENT_LENGTH") or ""
    if not value.strip():
        if request.META.get("HTTP_TRANSFER_ENCODING"):
            raise LengthRequiredError()
        return 0
    length = parse_non_negative_int(value, header="Content-Length")
    return length or 0


def _require_offset_stream(request: HttpRequest) -> None:
    content_type = request.META.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if content_type != OFFSET_CONTENT_TYPE:
        raise UnsupportedMediaTypeError(
            f"The body must be sent as Content-Type: {OFFSET_CONTENT_TYPE}.",
            code="invalid_content_type",
            details={"content_type": content_type},
        )


# --- handlers ---------------------------------------------------------------------


def _options(request: HttpRequest, upload_id: str | None = None) -> HttpResponse:
    response = HttpResponse(status=204)
    response["Tus-Version"] = TUS_VERSION
    response["Tus-Extension"] = ",".join(TUS_EXTENSIONS)
    response["Tus-Max-Size"] = str(max_upload_size())
    response["Tus-Checksum-Algorithm"] = ",".join(CHECKSUM_ALGORITHMS)
    return response


def _create(
    request: HttpRequest, user: User, submission: UploadRequestSubmission | None = None
) -> HttpResponse:
    metadata = parse_metadata(request.headers.get("Upload-Metadata"))
    concat = parse_concat(request.headers.get("Upload-Concat"), prefix=_prefix())
    length = parse_non_negative_int(request.headers.get("Upload-Length"), header="Upload-Length")
    defer = request.headers.get("Upload-Defer-Length")
    body_length = _content_length(request)

    if submission is not None and concat is not None:
        raise PermissionDeniedError(
            "An upload request credential cannot concatenate uploads.",
            code="upload_request_forbidden",
        )
    if concat is not None and concat.kind == "final":
        if length is not None or defer is not None or body_length:
            raise TusHeaderError(
                "A final upload takes no Upload-Length, Upload-Defer-Length or body.",
                details={"header": "Upload-Concat"},
            )
        session = upload_session_concatenate(
            owner=user, partial_ids=list(concat.partial_ids), metadata=metadata
        )
        response = HttpResponse(status=201)
        response["Location"] = _upload_url(request, session)
        return response

    if defer is not None and defer.strip() != "1":
        raise TusHeaderError(
            "Upload-Defer-Length must be 1.", details={"header": "Upload-Defer-Length"}
        )
    if (length is None) == (defer is None):
        raise TusHeaderError(
            "Send exactly one of Upload-Length and Upload-Defer-Length: 1.",
            details={"header": "Upload-Length"},
        )
    checksum = None
    if body_length:
        _require_offset_stream(request)
        checksum = parse_checksum(request.headers.get("Upload-Checksum"))
    session = upload_session_create_with_body(
        owner=user,
        length=length,
        metadata=metadata,
        partial=concat is not None and concat.kind == "partial",
        body=socket_body(request) or request,
        body_length=body_length,
        checksum=checksum,
        submission=submission,
    )
    response = HttpResponse(status=201)
    response["Location"] = _upload_url(request, session)
    if body_length:
        response["Upload-Offset"] = str(session.offset)
    _expires(response, session)
    return response


def _head(
    request: HttpRequest,
    user: User,
    upload_id: str,
    submission: UploadRequestSubmission | None = None,
) -> HttpResponse:
    session = upload_session_status(owner=user, upload_id=upload_id, submission=submission)
    ensure_alive(session)
    response = HttpResponse(status=200)
    response["Upload-Offset"] = str(session.offset)
    if session.length is None:
        response["Upload-Defer-Length"] = "1"
    else:
        response["Upload-Length"] = str(session.length)
    if session.raw_metadata:
        response["Upload-Metadata"] = session.raw_metadata
    if session.concat == UploadSession.Concat.PARTIAL:
        response["Upload-Concat"] = "partial"
    elif session.concat == UploadSession.Concat.FINAL:
        prefix = _prefix()
        response["Upload-Concat"] = "final;" + " ".join(prefix + pid for pid in session.partial_ids)
    _expires(response, session)
    return response


def _patch(
    request: HttpRequest,
    user: User,
    upload_id: str,
    submission: UploadRequestSubmission | None = None,
) -> HttpResponse:
    _require_offset_stream(request)
    offset = parse_non_negative_int(request.headers.get("Upload-Offset"), header="Upload-Offset")
    if offset is None:
        raise TusHeaderError("Upload-Offset is required.", details={"header": "Upload-Offset"})
    upload_length = parse_non_negative_int(
        request.headers.get("Upload-Length"), header="Upload-Length"
    )
    checksum = parse_checksum(request.headers.get("Upload-Checksum"))
    session = upload_session_append(
        owner=user,
        upload_id=upload_id,
        offset=offset,
        # Under gunicorn the bytes go from the socket straight into the
        # writer's buffers (web.raw_body); elsewhere the request is the stream.
        stream=socket_body(request) or request,
        content_length=_content_length(request),
        checksum=checksum,
        upload_length=upload_length,
        submission=submission,
    )
    response = HttpResponse(status=204)
    response["Upload-Offset"] = str(session.offset)
    _expires(response, session)
    return response


def _delete(
    request: HttpRequest,
    user: User,
    upload_id: str,
    submission: UploadRequestSubmission | None = None,
) -> HttpResponse:
    if submission is not None:
        # A request credential creates and continues uploads; it deletes nothing.
        raise PermissionDeniedError(
            "An upload request credential cannot delete uploads.",
            code="upload_request_forbidden",
        )
    upload_session_terminate(owner=user, upload_id=upload_id)
    return HttpResponse(status=204)


# --- dispatch -------------------------------------------------------------------------

_COLLECTION_METHODS = {"POST": _create}
_UPLOAD_METHODS = {"HEAD": _head, "PATCH": _patch, "DELETE": _delete}


def _error_response(exc: ApplicationError, *, method: str) -> HttpResponse:
    if method == "HEAD":
        response = HttpResponse(status=exc.status_code)
    else:
        response = JsonResponse(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, TusVersionError):
        response["Tus-Version"] = TUS_VERSION
    if isinstance(exc, AuthenticationError):
        response["WWW-Authenticate"] = 'Bearer realm="tus"'
    if isinstance(exc, MethodNotAllowedError):
        response["Allow"] = ", ".join(exc.details.get("allow", []))
    if isinstance(exc, PayloadTooLargeError) and "remaining_bytes" in exc.details:
        # An upload request's byte limit: what is left is the most this link takes.
        response["Tus-Max-Size"] = str(min(max_upload_size(), exc.details["remaining_bytes"]))
    elif isinstance(exc, PayloadTooLargeError):
        response["Tus-Max-Size"] = str(max_upload_size())
    return response


def _caller(request: HttpRequest) -> tuple[User, UploadRequestSubmission | None]:
    """Who is uploading: an account (token, session), or an outsider's request credential.

    The credential is read only when no ``Authorization`` is sent; it names
    one submission of one upload request, and the upload is its owner's.
    """
    raw = request.headers.get(CREDENTIAL_HEADER)
    if raw and not request.headers.get("Authorization"):
        submission = submission_from_credential(raw.strip())
        return submission.request.owner, submission
    user = authenticate_request(request)
    if user is None:
        raise AuthenticationError()
    return user, None


def _handle(request: HttpRequest, upload_id: str | None) -> HttpResponse:
    method = request.method or "GET"
    override = request.headers.get("X-HTTP-Method-Override")
    if override and method == "POST":
        # For clients behind proxies that only pass GET and POST.
        method = override.strip().upper()
    try:
        if method == "OPTIONS":
            response = _options(request, upload_id)
        else:
            handlers: dict[str, Callable[..., HttpResponse]] = (
                _COLLECTION_METHODS if upload_id is None else _UPLOAD_METHODS
            )
            if method not in handlers:
                raise MethodNotAllowedError(details={"allow": ["OPTIONS", *handlers]})
            if request.headers.get("Tus-Resumable", "").strip() != TUS_VERSION:
                raise TusVersionError(details={"supported": [TUS_VERSION]})
            user, submission = _caller(request)
            if upload_id is None:
                response = handlers[method](request, user, submission)
            else:
                response = handlers[method](request, user, upload_id, submission)
    except ApplicationError as exc:
        if exc.status_code >= 500:
            logger.error("tus %s failed: %s", method, exc.message)
        response = _error_response(exc, method=method)
    except DATABASE_ERRORS as exc:
        # A database restart: the offset lives in the database, so it did not
        # move; the client retries (tus clients do on 5xx) and resumes.
        response = database_unavailable(request, exc)
        if method == "HEAD":
            response.content = b""
    if method == "HEAD" or response.status_code in (404, 410):
        response["Cache-Control"] = "no-store"
    response["Tus-Resumable"] = TUS_VERSION
    return response


@csrf_exempt
def collection(request: HttpRequest) -> HttpResponse:
    """``/api/tus/``: OPTIONS (discovery) and POST (creation, concatenation)."""
    return _handle(request, None)


@csrf_exempt
def upload(request: HttpRequest, upload_id: str) -> HttpResponse:
    """``/api/tus/<id>``: HEAD, PATCH, DELETE (and OPTIONS)."""
    return _handle(request, upload_id)
