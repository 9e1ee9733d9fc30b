"""A WSGI app that speaks just enough tus to take an upload and throw it away.

``bench/upload.py`` runs it under the same gunicorn as Doorito to measure
what the stock client and the HTTP server alone can move on this machine:
no Django, no storage, no hashing, no database.
"""

from __future__ import annotations

import uuid

CHUNK = 1024 * 1024
_offsets: dict[str, int] = {}


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    received = 0
    while received < length:
        data = stream.read(min(CHUNK, length - received))
        if not data:
            break
        received += len(data)
    headers = [("Tus-Resumable", "1.0.0")]
    if environ["REQUEST_METHOD"] == "POST":
        upload_id = uuid.uuid4().hex
        _offsets[upload_id] = 0
        host = f"http://{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
        start_response("201 Created", [*headers, ("Location", f"{host}/files/{upload_id}")])
        return [b""]
    upload_id = environ["PATH_INFO"].rsplit("/", 1)[-1]
    _offsets[upload_id] = _offsets.get(upload_id, 0) + received
    start_response("204 No Content", [*headers, ("Upload-Offset", str(_offsets[upload_id]))])
    return [b""]
