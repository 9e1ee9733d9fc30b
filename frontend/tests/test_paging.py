"""Long lists count at most COUNT_CAP rows and say so."""

from __future__ import annotations

import pytest

from frontend import paging
from frontend.tests.helpers import make_file

pytestmark = pytest.mark.django_db


def test_count_stops_at_the_cap(client_user, user, monkeypatch):
    monkeypatch.setattr(paging, "COUNT_CAP", 30)
    for i in range(31):
        make_file(user, f"f{i:02}.txt")
    page = client_user.get("/files/")
    assert page.context["page_obj"].paginator.count == 30
    assert b"Page 1 of 2+" in page.content


def test_under_the_cap_counts_exactly(client_user, user):
    for i in range(3):
        make_file(user, f"f{i}.txt")
    page = client_user.get("/files/")
    assert page.context["page_obj"].paginator.count == 3
    assert not page.context["page_obj"].paginator.capped
