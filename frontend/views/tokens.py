"""API tokens: list your own, create one (its value shown once), revoke.

The created page is rendered straight from the POST rather than after a
redirect, so the plain value never has to be parked in the session: it exists
in this one response and nowhere else (``never_cache`` keeps it out of caches).
"""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts import selectors
from accounts.http import AuthenticatedHttpRequest
from accounts.models import ApiToken
from accounts.services import tokens as services
from common.exceptions import ApplicationError, NotFoundError
from frontend.forms.errors import add_service_error
from frontend.forms.tokens import TokenCreateForm
from frontend.paging import CappedPaginator

PAGE_SIZE = 25


def _own_token(request: AuthenticatedHttpRequest, token_id: UUID) -> ApiToken:
    try:
        return selectors.token_get(user=request.user, token_id=token_id)
    except NotFoundError as exc:
        raise Http404(exc.message) from exc


@login_required
@require_http_methods(["GET", "HEAD"])
def token_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    tokens = selectors.token_list(user=request.user)
    page_obj = CappedPaginator(tokens, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"nav": "tokens", "page_obj": page_obj, "form": TokenCreateForm()}
    return render(request, "frontend/tokens/list.html", context)


@never_cache
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def token_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = TokenCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            token, raw = services.token_create(user=request.user, name=form.cleaned_data["name"])
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            api_url = request.build_absolute_uri(reverse("api:list_files"))
            context = {
                "nav": "tokens",
                "token": token,
                "raw": raw,
                "curl": f'curl -H "Authorization: Bearer {raw}" {api_url}',
            }
            return render(request, "frontend/tokens/created.html", context, status=201)
    # Django's convention: a form with errors comes back as a normal page (200).
    return render(request, "frontend/tokens/new.html", {"nav": "tokens", "form": form})


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def token_revoke(request: AuthenticatedHttpRequest, token_id: UUID) -> HttpResponse:
    """GET asks for confirmation; POST revokes (a second revocation changes nothing)."""
    token = _own_token(request, token_id)
    if request.method == "POST":
        services.token_revoke(token=token)
        messages.success(request, f"Token “{token.name}” is revoked; requests using it now fail.")
        return redirect("frontend:token_list")
    return render(request, "frontend/tokens/revoke.html", {"nav": "tokens", "token": token})
