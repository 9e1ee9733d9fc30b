"""Placeholder views: replaced by the real pages (issue #10)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404


@login_required
def upload(request, **kwargs):
    raise Http404("Not built yet.")


@login_required
def upload_simple(request, **kwargs):
    raise Http404("Not built yet.")
