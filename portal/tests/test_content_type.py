"""Type detection: content first, then extension, then the client's declaration."""

from __future__ import annotations

import pytest

from common.exceptions import UnsupportedMediaTypeError
from portal.services.content_types import upload_file_content_type
from portal.tests.streams import EXE_HEAD, tiny_png

ZIP_HEAD = b"PK\x03\x04" + b"\x00" * 60


@pytest.mark.parametrize(
    ("head", "filename", "declared", "expected"),
    [
        (tiny_png(), "no-extension", None, "image/png"),
        (tiny_png(), "photo.jpg", "text/plain", "image/png"),  # content wins
        (b"id,name\n1,a\n", "data.csv", None, "text/csv"),  # no signature: extension
        (b"just text", "blob.bin", "application/x-custom", "application/x-custom"),
        (b"just text", "noext", None, "application/octet-stream"),
        (b"just text", "noext", "not a type", "application/octet-stream"),
        (
            ZIP_HEAD,
            "sheet.xlsx",
            None,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        (b"", "empty.txt", None, "text/plain"),
    ],
)
def test_detection(settings, head, filename, declared, expected):
    settings.FILE_UPLOAD_ALLOWED_TYPES = []
    assert upload_file_content_type(head=head, filename=filename, declared=declared) == expected


@pytest.mark.parametrize(
    ("allowed", "head", "filename", "ok"),
    [
        (["image/*"], tiny_png(), "a.png", True),
        (["image/*"], EXE_HEAD, "a.png", False),
        (["image/png"], tiny_png(), "a.exe", False),
        (["text/plain", "text/csv"], b"a,b\n", "a.csv", True),
        (["text/plain"], b"a,b\n", "a.csv", False),
        (["application/pdf"], b"%PDF-1.7\n", "doc.pdf", True),
        (["application/pdf"], b"no signature", "doc.pdf", False),  # the name alone
        (["*/*"], EXE_HEAD, "x.exe", True),
    ],
)
def test_allowed_types(settings, allowed, head, filename, ok):
    settings.FILE_UPLOAD_ALLOWED_TYPES = allowed
    if ok:
        upload_file_content_type(head=head, filename=filename, declared=None)
    else:
        with pytest.raises(UnsupportedMediaTypeError) as exc_info:
            upload_file_content_type(head=head, filename=filename, declared=None)
        assert exc_info.value.as_dict()["error"]["code"] == "unsupported_media_type"


PHP = b"<?php system($_GET['c']); ?>\n"
ALLOW = ["image/png", "image/jpeg", "application/pdf"]


@pytest.mark.parametrize(
    ("head", "filename", "declared"),
    [
        (PHP, "a.png", None),  # a script named like an image
        (b"just some text\n", "a.png", "image/png"),  # text named like an image
        (b"just some text\n", "noext", "image/png"),  # text declared an image
        (b"just some text\n", "a.pdf", "application/pdf"),
        (b"", "a.png", "image/png"),  # nothing to recognise
        (b"", "a.pdf", None),
        (b"\xff\xfe\x00garbage", "photo.jpg", "image/jpeg"),  # no signature either
    ],
)
def test_name_and_declared_type_alone_never_pass_the_allow_list(settings, head, filename, declared):
    settings.FILE_UPLOAD_ALLOWED_TYPES = ALLOW
    with pytest.raises(UnsupportedMediaTypeError) as exc:
        upload_file_content_type(head=head, filename=filename, declared=declared)
    assert exc.value.details["allowed_types"] == ALLOW


def test_recognised_content_of_an_allowed_type_passes(settings):
    settings.FILE_UPLOAD_ALLOWED_TYPES = ALLOW
    assert upload_file_content_type(head=tiny_png(), filename="x", declared=None) == "image/png"
    pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    assert upload_file_content_type(head=pdf, filename="d.pdf", declared=None) == "application/pdf"


@pytest.mark.parametrize(
    ("allowed", "head", "filename", "declared", "expected"),
    [
        (["text/plain"], "héllo\n".encode(), "a.txt", None, "text/plain"),
        (["text/plain"], b"hello", "noext", None, "text/plain"),
        (["text/plain"], b"", "empty.txt", None, "text/plain"),  # empty text is text
        (["text/csv"], b'a,b\n1,"x,y"\n', "d.csv", None, "text/csv"),
        (["text/csv"], b"", "d.csv", None, "text/csv"),
        (["application/json"], b'{"a": [1, 2]}', "d.json", None, "application/json"),
        (["application/json"], b'{"a": "' + b"x" * 9000, "big.json", None, "application/json"),
        (["text/*"], b"# Title\n", "README.md", None, "text/markdown"),
        (["application/xml"], b"<?xml version='1.0'?><a/>", "d.xml", None, "application/xml"),
    ],
)
def test_text_types_pass_when_the_content_is_valid_text_of_that_kind(
    settings, allowed, head, filename, declared, expected
):
    settings.FILE_UPLOAD_ALLOWED_TYPES = allowed
    assert upload_file_content_type(head=head, filename=filename, declared=declared) == expected


@pytest.mark.parametrize(
    ("allowed", "head", "filename"),
    [
        (["text/plain"], b"\xff\xfe not utf-8", "a.txt"),
        (["text/plain"], b"nul\x00inside", "a.txt"),
        (["text/csv"], b'a,"b\n', "d.csv"),  # unterminated quote
        (["application/json"], b'{"a": ', "d.json"),
        (["application/json"], b"", "d.json"),
        (["application/json"], b"x" * 9000, "big.json"),  # not even the start of JSON
        (["application/xml"], b"plain words", "d.xml"),
    ],
)
def test_text_types_are_refused_when_the_content_is_not_that_text(
    settings, allowed, head, filename
):
    settings.FILE_UPLOAD_ALLOWED_TYPES = allowed
    with pytest.raises(UnsupportedMediaTypeError):
        upload_file_content_type(head=head, filename=filename, declared=None)


def test_a_cut_multibyte_character_at_the_end_of_the_head_is_still_text(settings):
    from portal.services.hashing import HEAD_SIZE

    settings.FILE_UPLOAD_ALLOWED_TYPES = ["text/plain"]
    head = ("a" + "é" * HEAD_SIZE).encode()[:HEAD_SIZE]
    assert head[-1:] == b"\xc3"  # half of an "é"
    assert upload_file_content_type(head=head, filename="a.txt", declared=None) == "text/plain"


def test_a_json_head_of_nothing_but_brackets_is_refused_not_a_crash(settings):
    """8 KiB of brackets (4 000 levels): json.loads raised RecursionError (a 500)."""
    settings.FILE_UPLOAD_ALLOWED_TYPES = ["application/json", "application/x-ndjson"]
    head = b"[" * 4000 + b"]" * 4000
    with pytest.raises(UnsupportedMediaTypeError):
        upload_file_content_type(head=head, filename="deep.json", declared=None)
    with pytest.raises(UnsupportedMediaTypeError):
        upload_file_content_type(head=head + b"\n", filename="deep.ndjson", declared=None)
    # Nesting a JSON file may well have still passes; so does Python's NaN.
    ordinary = b"[" * 100 + b"NaN" + b"]" * 100
    assert upload_file_content_type(head=ordinary, filename="d.json", declared=None) == (
        "application/json"
    )
