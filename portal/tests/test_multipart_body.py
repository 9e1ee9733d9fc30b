"""The streaming multipart parser: fields, files in pieces, Django's limits, malformed bodies."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http.multipartparser import MultiPartParserError

from portal.services import multipart_body
from portal.services.multipart_body import (
    READ_SIZE,
    SLOW_READ_SIZE,
    parse_multipart,
    sanitize_file_name,
)

BOUNDARY = b"----doorito-test-boundary"


class Collects:
    """An upload handler that keeps what it is given, piece by piece."""

    def __init__(self) -> None:
        self.files: dict[str, dict[str, Any]] = {}
        self.current: dict[str, Any] | None = None

    def new_file(
        self, field_name, file_name, content_type, content_length, charset=None, extra=None
    ):
        self.current = {
            "name": file_name,
            "content_type": content_type,
            "length": content_length,
            "pieces": [],
            "starts": [],
        }
        self.files[field_name] = self.current

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        assert self.current is not None
        self.current["starts"].append(start)
        self.current["pieces"].append(raw_data)

    def file_complete(self, file_size: int) -> str:
        assert self.current is not None
        self.current["size"] = file_size
        return f"<{self.current['name']}>"


class Trickle:
    """A body handed out in pieces of at most ``size`` bytes (a slow socket)."""

    def __init__(self, body: bytes, size: int):
        self.body = body
        self.size = size
        self.reads: list[int] = []

    def read(self, n: int) -> bytes:
        self.reads.append(n)
        data, self.body = self.body[: min(n, self.size)], self.body[min(n, self.size) :]
        return data


def part(name: str, value: bytes, *, filename: str | None = None, headers: str = "") -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"Content-Disposition: {disposition}\r\n{headers}\r\n"
    return b"--" + BOUNDARY + b"\r\n" + head.encode() + value + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--" + BOUNDARY + b"--\r\n"


def parse(data: bytes, *, piece: int = READ_SIZE, handler: Collects | None = None):
    handler = handler or Collects()
    post, files = parse_multipart(
        stream=Trickle(data, piece),
        boundary=BOUNDARY,
        content_length=len(data),
        encoding="utf-8",
        handler=handler,
    )
    return post, files, handler


@pytest.mark.parametrize("piece", [1, 7, 4096, READ_SIZE])
def test_fields_and_a_file_arrive_whatever_the_read_sizes(piece):
    payload = os.urandom(3 * 4096 + 11)
    # A payload holding most of the delimiter must not end the part early.
    payload += b"\r\n--" + BOUNDARY[:-1] + b"x"
    data = body(
        part("before", "é".encode()),
        part("file", payload, filename="a.bin", headers="Content-Type: application/pdf\r\n"),
        part("after", b"2"),
    )

    post, files, handler = parse(data, piece=piece)

    assert post.getlist("before") == ["é"]
    assert post.getlist("after") == ["2"]
    assert files.getlist("file") == ["<a.bin>"]
    got = handler.files["file"]
    assert b"".join(got["pieces"]) == payload
    assert got["size"] == len(payload)
    assert got["content_type"] == "application/pdf"
    # Each piece's offset is the byte count before it, as Django's handlers expect.
    assert got["starts"] == [sum(map(len, got["pieces"][:i])) for i in range(len(got["pieces"]))]


def test_a_fast_body_is_read_in_large_reads_and_passed_on_in_those_pieces():
    payload = os.urandom(3 * READ_SIZE)
    data = body(part("file", payload, filename="big.bin"))
    stream = Trickle(data, READ_SIZE)
    handler = Collects()

    parse_multipart(
        stream=stream, boundary=BOUNDARY, content_length=len(data), encoding=None, handler=handler
    )

    # A small first read (headers and head), then READ_SIZE for as long as it keeps up.
    assert stream.reads[0] == SLOW_READ_SIZE
    assert set(stream.reads[1:]) == {READ_SIZE}
    pieces = handler.files["file"]["pieces"]
    assert b"".join(pieces) == payload
    assert len(pieces) <= 6  # one per read (the first and last cut at the part's ends)


def test_a_slow_client_gets_small_reads_so_its_pieces_keep_coming(monkeypatch):
    """A read returns only once full: 1 MiB at 2 KB/s would hold everything back 8 minutes."""
    now = [0.0]
    monkeypatch.setattr(multipart_body, "monotonic", lambda: now[0])

    class Slow(Trickle):
        def read(self, n: int) -> bytes:
            data = super().read(n)
            now[0] += len(data) / 2000  # 2 KB/s
            return data

    payload = os.urandom(3 * READ_SIZE)
    data = body(part("file", payload, filename="slow.bin"))
    stream = Slow(data, READ_SIZE)
    handler = Collects()

    parse_multipart(
        stream=stream, boundary=BOUNDARY, content_length=len(data), encoding=None, handler=handler
    )

    assert set(stream.reads) == {SLOW_READ_SIZE}
    assert b"".join(handler.files["file"]["pieces"]) == payload


def test_file_names_are_cut_to_their_last_component_as_django_did():
    data = body(
        part("file", b"x", filename="C:\\Users\\me\\report.pdf"),
        part("other", b"y", filename="../../etc/passwd"),
        part("skipped", b"z", filename=".."),
    )

    _, files, handler = parse(data)

    assert handler.files["file"]["name"] == "report.pdf"
    assert handler.files["other"]["name"] == "passwd"
    assert "skipped" not in handler.files  # no usable name: dropped, as Django drops it
    assert sorted(files) == ["file", "other"]
    assert sanitize_file_name("a&amp;b.txt") == "a&b.txt"


def test_a_part_with_an_empty_file_name_is_a_field():
    """What a browser sends for a file input left empty."""
    post, files, handler = parse(body(part("file", b"", filename="")))

    assert post.getlist("file") == [""]
    assert not files
    assert not handler.files


def test_a_body_cut_short_is_malformed():
    data = body(part("file", b"x" * 10_000, filename="a.bin"))
    with pytest.raises(MultiPartParserError):
        parse_multipart(
            stream=Trickle(data[:5000], READ_SIZE),
            boundary=BOUNDARY,
            content_length=len(data),
            encoding=None,
            handler=Collects(),
        )


@pytest.mark.parametrize(
    "data",
    [
        b"no boundary anywhere",
        b"--" + BOUNDARY + b"\r\nContent-Type: text/plain\r\n\r\nx\r\n--" + BOUNDARY + b"--\r\n",
        body(part("f", b"eA==", filename="a", headers="Content-Transfer-Encoding: base64\r\n")),
        body(part("f", b"x", headers="X-H: 1\r\n" * 20)),
    ],
    ids=["no-boundary", "no-disposition", "base64", "too-many-headers"],
)
def test_malformed_bodies_raise_djangos_parser_error(data):
    with pytest.raises(MultiPartParserError):
        parse(data)


def test_djangos_limits_apply(settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 3
    with pytest.raises(TooManyFieldsSent):
        parse(body(*(part(f"f{i}", b"1") for i in range(4))))

    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 1
    with pytest.raises(TooManyFilesSent):
        parse(body(part("a", b"1", filename="a"), part("b", b"2", filename="b")))

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    with pytest.raises(RequestDataTooBig):
        parse(body(part("big", b"x" * 1001)))
    # File bytes do not count against it.
    _, files, _ = parse(body(part("file", b"x" * 5000, filename="a")))
    assert files.getlist("file") == ["<a>"]


def test_names_are_read_as_djangos_parser_read_them():
    """RFC 2231 names decoded; quoted names kept as sent (no percent-decoding)."""
    encoded = "Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''%C3%A9t%C3%A9.txt"
    data = (
        b"--"
        + BOUNDARY
        + b"\r\n"
        + encoded.encode()
        + b"\r\n\r\nx\r\n"
        + part("other", b"y", filename="a%22b.txt")
        + b"--"
        + BOUNDARY
        + b"--\r\n"
    )

    _, _, handler = parse(data)

    assert handler.files["file"]["name"] == "été.txt"
    assert handler.files["other"]["name"] == "a%22b.txt"
