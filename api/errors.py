"""One place that turns every expected failure into the JSON error envelope.

Body: ``{"error": {"code": str, "message": str, "details": object}}``. Request
validation failures are answered with 400 (not ninja's default 422) so clients
handle one status for "your input is wrong", whether the schema or a service
refused it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.exceptions import (
    BadRequest,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, AuthorizationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser

from common.exceptions import ApplicationError, UnsupportedMediaTypeError
from common.services.json_input import json_parse
from web.outage import database_unavailable

logger = logging.getLogger(__name__)


class ErrorBody(Schema):
    code: str
    message: str
    details: dict[str, Any] | list[Any]


class ErrorOut(Schema):
    error: ErrorBody


def error_response(
    status: int, code: str, message: str, details: Any = None, **headers: str
) -> HttpResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    response = HttpResponse(json.dumps(body), status=status, content_type="application/json")
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


class JsonOnlyParser(Parser):
    """JSON bodies must say they are JSON, and be JSON the database can store.

    Otherwise a form or text body that happens to parse would be taken for
    JSON, and a browser could send it cross-site without a CORS preflight
    (``text/plain`` is a "simple" content type). The body is read by the
    shared JSON reader (``common.services.json_input``): ``NaN``/``Infinity``
    and nesting deeper than the limit are a 400 naming the field, for every
    operation at once, before any schema sees the body.
    """

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        content_type = (request.content_type or "").lower()
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise UnsupportedMediaTypeError(
                "Send the body as JSON with Content-Type: application/json.",
                code="json_required",
                details={"content_type": content_type},
            )
        body: dict[str, Any] = json_parse(request.body, field=None)
        return body


def errors(*codes: int) -> dict[int, type[ErrorOut]]:
    """The documented error responses of an operation (400 and 401 always apply)."""
    return dict.fromkeys(sorted({400, 401, *codes}), ErrorOut)


_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "throttled",
}


def _clean_validation_errors(errors_: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # pydantic's entries may hold the offending input and exception objects;
    # keep what a client needs, all JSON-safe.
    return [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in errors_
    ]


def install_exception_handlers(api: NinjaAPI) -> None:
    @api.exception_handler(ApplicationError)
    def _application_error(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
        return error_response(exc.status_code, exc.code, exc.message, exc.details)

    @api.exception_handler(NinjaValidationError)
    def _validation_error(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
        return error_response(
            400,
            "validation_error",
            "The request is not valid.",
            {"errors": _clean_validation_errors(exc.errors)},
        )

    @api.exception_handler(AuthenticationError)
    def _authentication_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        return error_response(
            401,
            "not_authenticated",
            "Authentication credentials were missing or invalid.",
            WWW_Authenticate="Bearer",
        )

    @api.exception_handler(AuthorizationError)
    def _authorization_error(request: HttpRequest, exc: AuthorizationError) -> HttpResponse:
        return error_response(403, "permission_denied", "You may not do this.")

    @api.exception_handler(HttpError)
    def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        if isinstance(exc.__cause__, ApplicationError):
            # ninja wraps whatever the body parser raises in a 400.
            cause = exc.__cause__
            return error_response(cause.status_code, cause.code, cause.message, cause.details)
        code = _HTTP_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, exc.message)

    @api.exception_handler(Http404)
    def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return error_response(404, "not_found", "Not found.")

    @api.exception_handler(PermissionDenied)
    def _permission_denied(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
        return error_response(403, "permission_denied", "You may not do this.")

    # ninja answers its views' exceptions itself, so the middleware never sees these.
    @api.exception_handler(OperationalError)
    @api.exception_handler(InterfaceError)
    def _database_unavailable(request: HttpRequest, exc: Exception) -> HttpResponse:
        return database_unavailable(request, exc)

    @api.exception_handler(RequestDataTooBig)
    def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        return error_response(413, "payload_too_large", "The request body is too large.")

    # Malformed multipart bodies, too many fields/files, bad JSON, and similar
    # client mistakes that Django reports as exceptions.
    @api.exception_handler(MultiPartParserError)
    @api.exception_handler(TooManyFieldsSent)
    @api.exception_handler(TooManyFilesSent)
    @api.exception_handler(SuspiciousOperation)
    @api.exception_handler(BadRequest)
    def _bad_request(request: HttpRequest, exc: Exception) -> HttpResponse:
        logger.info("Bad API request: %s", exc)
        return error_response(400, "bad_request", "The request could not be parsed.")
