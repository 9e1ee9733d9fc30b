"""URLs under /api/: the ninja API, plus JSON 404/405 for everything else.

The tus endpoint (``/api/tus/``) is routed separately in ``boot.urls``; the
catch-all below leaves ``tus/`` alone so it works whichever line comes first.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import URLPattern, re_path
from django.views.decorators.csrf import csrf_exempt

from api.api import api
from api.errors import error_response


def _json_method_not_allowed(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            return error_response(
                405,
                "method_not_allowed",
                f"Method {request.method} is not allowed here.",
                {"allowed": response["Allow"].split(", ")},
                Allow=response["Allow"],
            )
        return response

    return wrapped


@csrf_exempt
def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    return error_response(404, "not_found", "No such API endpoint.", {"path": request.path})


_patterns, _app_name, app_name = api.urls  # namespace "api"
urlpatterns = [
    URLPattern(p.pattern, _json_method_not_allowed(p.callback), p.default_args, p.name)
    if isinstance(p, URLPattern)
    else p
    for p in _patterns
]
urlpatterns.append(re_path(r"^(?!tus(?:/|$))(?P<rest>.*)$", not_found))
