"""The shared text check, called by services that forms, admin and CLI use too."""

from __future__ import annotations

import pytest

from accounts.services.tokens import token_create
from common.exceptions import ValidationError
from common.services.text import clean_json, clean_text, json_problem_path
from common.services.webhooks import endpoint_create


@pytest.mark.parametrize("value", ["a\x00b", "\ud800", "x\udfffy"])
def test_clean_text_refuses_and_names_the_field(value):
    with pytest.raises(ValidationError) as exc:
        clean_text(value, field="note")
    assert exc.value.details == {"field": "note"}
    assert exc.value.message == "note must not contain NUL characters or unpaired surrogates."


def test_clean_text_keeps_ordinary_text():
    assert clean_text("日本語 📄 \t\n", field="x") == "日本語 📄 \t\n"


def test_json_path_names_where_the_problem_is():
    assert json_problem_path({"a": [1, {"b": "\x00"}]}) == "a[1].b"
    assert json_problem_path({"k\ud800": 1}) == "k\\ud800"
    assert json_problem_path({"a": ["ok", 1.5, None, True]}) is None
    with pytest.raises(ValidationError) as exc:
        clean_json({"a": "\ud800"}, field="metadata")
    assert exc.value.details == {"field": "metadata", "path": "a"}


@pytest.mark.django_db
def test_services_refuse_before_writing():
    from accounts.models import ApiToken, User
    from common.models import WebhookEndpoint

    user = User.objects.create_user("t@example.com", "pw-123456")
    with pytest.raises(ValidationError) as exc:
        token_create(user=user, name="a\ud800")
    assert exc.value.details == {"field": "name"}
    with pytest.raises(ValidationError) as exc:
        endpoint_create(url="http://127.0.0.1:9/h", description="d\x00")
    assert exc.value.details == {"field": "description"}
    assert not ApiToken.objects.exists() and not WebhookEndpoint.objects.exists()
