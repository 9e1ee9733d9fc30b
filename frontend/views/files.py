"""Placeholder views: replaced by the real pages (issue #10)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404


@login_required
def file_list(request, **kwargs):
    raise Http404("Not built yet.")


@login_required
def file_detail(request, **kwargs):
    raise Http404("Not built yet.")


@login_required
def file_download(request, **kwargs):
    raise Http404("Not built yet.")


@login_required
def file_delete(request, **kwargs):
    raise Http404("Not built yet.")
