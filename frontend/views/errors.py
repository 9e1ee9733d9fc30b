"""403/404/405/500 in the portal's layout; JSON under /api/, where clients expect it."""

from __future__ import annotations

import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from common.exceptions import ApplicationError, NotFoundError, PermissionDeniedError
from web.outage import DATABASE_ERRORS, database_unavailable


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _json(exc: ApplicationError) -> JsonResponse:
    return JsonResponse(exc.as_dict(), status=exc.status_code)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return _json(PermissionDeniedError("You may not do this."))
    message = str(exception) if exception and str(exception) else ""
    body = render_to_string("frontend/errors/403.html", {"exception": message}, request)
    return HttpResponse(body, status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return _json(NotFoundError("Not found.", details={"path": request.path}))
    return HttpResponse(render_to_string("frontend/errors/404.html", {}, request), status=404)


def method_not_allowed(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """A browser's GET of an address that only takes a form (a share link's
    "Make link", a revoke, a delete): Django's 405 has an empty body, so
    opening the "copy the link now" page's address again showed a blank page.
    The ``Allow`` header stays."""
    body = render_to_string("frontend/errors/405.html", {}, request)
    page = HttpResponse(body, status=405)
    page["Allow"] = response.get("Allow", "")
    return page


def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls this inside its ``except`` block: a database outage that
    # broke a middleware (the session, sign-in throttling), not a view, gets
    # the same 503 as one in a view.
    exc = sys.exc_info()[1]
    if isinstance(exc, DATABASE_ERRORS):
        return database_unavailable(request, exc)
    # No request context: whatever broke must not break the error page too.
    if _wants_json(request):
        error = ApplicationError("The server could not finish this request.", code="server_error")
        return JsonResponse(error.as_dict(), status=500)
    return HttpResponse(render_to_string("frontend/errors/500.html"), status=500)
