"""Placeholder views: replaced by the real pages (issue #10)."""

from django.http import Http404

from frontend.access import staff_required


@staff_required
def endpoint_list(request, **kwargs):
    raise Http404("Not built yet.")


@staff_required
def endpoint_create(request, **kwargs):
    raise Http404("Not built yet.")


@staff_required
def endpoint_detail(request, **kwargs):
    raise Http404("Not built yet.")


@staff_required
def endpoint_edit(request, **kwargs):
    raise Http404("Not built yet.")


@staff_required
def endpoint_toggle(request, **kwargs):
    raise Http404("Not built yet.")


@staff_required
def endpoint_rotate(request, **kwargs):
    raise Http404("Not built yet.")


@staff_required
def endpoint_test(request, **kwargs):
    raise Http404("Not built yet.")


@staff_required
def endpoint_delete(request, **kwargs):
    raise Http404("Not built yet.")


@staff_required
def endpoint_resend_failed(request, **kwargs):
    raise Http404("Not built yet.")


@staff_required
def delivery_resend(request, **kwargs):
    raise Http404("Not built yet.")
