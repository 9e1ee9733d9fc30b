"""Placeholder views: replaced by the real pages (issue #10)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404


@login_required
def batch_list(request, **kwargs):
    raise Http404("Not built yet.")


@login_required
def batch_create(request, **kwargs):
    raise Http404("Not built yet.")


@login_required
def batch_detail(request, **kwargs):
    raise Http404("Not built yet.")


@login_required
def batch_progress(request, **kwargs):
    raise Http404("Not built yet.")


@login_required
def batch_close(request, **kwargs):
    raise Http404("Not built yet.")
