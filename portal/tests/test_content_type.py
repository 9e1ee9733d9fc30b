"""Type detection: content first, then extension, then the client's declaration."""

from __future__ import annotations

import pytest

from common.exceptions import UnsupportedMediaTypeError
from portal.services.uploads import upload_file_content_type
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
        (["application/pdf"], b"no signature", "doc.pdf", True),  # text has no magic
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
