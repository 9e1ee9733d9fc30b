"""Placeholder views: replaced by the real pages (issue #10)."""

from django.http import Http404

from frontend.access import staff_required


@staff_required
def event_list(request, **kwargs):
    raise Http404("Not built yet.")


@staff_required
def event_detail(request, **kwargs):
    raise Http404("Not built yet.")
