"""Errors as types: every expected failure has a stable code and an HTTP status.

The API and the CLI turn these into JSON bodies / exit messages in one place.
"""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    code = "application_error"
    status_code = 400
    default_message = "The request could not be completed."

    def __init__(self, message: str | None = None, *, details: Any = None, code: str | None = None):
        self.message = message or self.default_message
        self.details = details if details is not None else {}
        if code:
            self.code = code
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ValidationError(ApplicationError):
    code = "validation_error"
    status_code = 400
    default_message = "The input is not valid."


class NotFoundError(ApplicationError):
    code = "not_found"
    status_code = 404
    default_message = "Not found."


class PermissionDeniedError(ApplicationError):
    code = "permission_denied"
    status_code = 403
    default_message = "You may not do this."


class AuthenticationError(ApplicationError):
    code = "not_authenticated"
    status_code = 401
    default_message = "Authentication credentials were missing or invalid."


class ConflictError(ApplicationError):
    code = "conflict"
    status_code = 409
    default_message = "The request conflicts with the current state."


class PayloadTooLargeError(ApplicationError):
    code = "payload_too_large"
    status_code = 413
    default_message = "The upload is larger than allowed."


class UnsupportedMediaTypeError(ApplicationError):
    code = "unsupported_media_type"
    status_code = 415
    default_message = "This type of file is not accepted."
