"""The one reader and checker of client JSON (common/services/json_input.py)."""

from __future__ import annotations

import json

import pytest

from common.exceptions import ValidationError
from common.services.json_input import (
    MAX_JSON_DEPTH,
    StorableJSONDecoder,
    json_check,
    json_parse,
)


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused_where_they_are(number):
    with pytest.raises(ValidationError) as exc:
        json_parse('{"a": {"b": [0, 1, ' + number + "]}}", field="metadata")
    assert exc.value.details == {"field": "metadata", "path": "a.b[2]"}
    assert "NaN or Infinity" in exc.value.message


def test_depth_is_checked_without_recursion_and_names_the_place():
    with pytest.raises(ValidationError) as exc:
        json_parse('{"a": ' + _deep(100_000) + "}", field="metadata")
    assert exc.value.details == {"field": "metadata", "path": "a" + "[0]" * (MAX_JSON_DEPTH - 1)}
    assert f"deeper than {MAX_JSON_DEPTH} levels" in exc.value.message


def test_the_limit_itself_is_allowed():
    assert json_parse(_deep(MAX_JSON_DEPTH), field="x") == json.loads(_deep(MAX_JSON_DEPTH))
    with pytest.raises(ValidationError):
        json_parse(_deep(MAX_JSON_DEPTH + 1), field="x")


def test_brackets_inside_strings_do_not_count():
    text = '{"k[": "' + "[{" * 100 + '", "e\\"[": ["]"]}'
    assert json_parse(text, field="x")["k["].startswith("[{[{")


def test_positions_count_array_items_and_object_keys():
    text = '{"a": 1, "b": [{}, {"c": ' + _deep(MAX_JSON_DEPTH) + "}]}"
    with pytest.raises(ValidationError) as exc:
        json_parse(text, field="m")
    # b is level 2, its item 3, c's arrays 4 and on: the 30th goes past 32.
    assert exc.value.details["path"] == "b[1].c" + "[0]" * (MAX_JSON_DEPTH - 3)


def test_a_body_names_its_top_level_field_and_allows_the_level_it_adds():
    body = '{"metadata": {"x": ' + _deep(MAX_JSON_DEPTH - 1) + "}}"
    assert json_parse(body, field=None)  # metadata itself is MAX_JSON_DEPTH deep
    with pytest.raises(ValidationError) as exc:
        json_parse('{"metadata": {"x": ' + _deep(MAX_JSON_DEPTH) + "}}", field=None)
    assert exc.value.details["field"] == "metadata"
    assert f"metadata is nested deeper than {MAX_JSON_DEPTH} levels" in exc.value.message
    with pytest.raises(ValidationError) as exc:
        json_parse(b'{"n": NaN}', field=None)
    assert exc.value.details == {"field": "n", "path": ""}
    with pytest.raises(ValidationError) as exc:
        json_parse(_deep(100), field=None)
    assert exc.value.details["field"] == "body"


def test_syntax_errors_stay_json_errors():
    with pytest.raises(json.JSONDecodeError):
        json_parse('{"a": ', field="metadata")


def test_finite_only_off_still_limits_the_depth():
    assert json_parse("[NaN]", field="file", finite_only=False)[0] != 0
    with pytest.raises(ValidationError):
        json_parse(_deep(5000), field="file", max_depth=512, finite_only=False)


def test_values_built_in_python_are_checked_without_recursion():
    value: list = []
    for _ in range(50_000):
        value = [value]
    with pytest.raises(ValidationError) as exc:
        json_check({"x": value}, field="metadata")
    assert exc.value.details["field"] == "metadata"
    with pytest.raises(ValidationError) as exc:
        json_check({"x": float("-inf")}, field="metadata")
    assert exc.value.details == {"field": "metadata", "path": "x"}
    assert json_check({"x": [1, 2.5, None, True, "s"]}, field="metadata")


@pytest.mark.parametrize("text", ["NaN", '{"a": Infinity}', _deep(100_000), '{"a": "\\u0000"}'])
def test_the_form_decoder_refuses_what_jsonb_cannot_store(text):
    with pytest.raises(json.JSONDecodeError):
        json.loads(text, cls=StorableJSONDecoder)
    assert json.loads('{"a": [1.5]}', cls=StorableJSONDecoder) == {"a": [1.5]}
