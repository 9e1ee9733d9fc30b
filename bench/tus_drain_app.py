"""A WSGI app that speaks just enough tus to take an upload and throw it away.

``bench/upload.py`` runs it under the same gunicorn as Doorito to measure
what the stock client and the HTTP server alone can move on this machine:
no Django, no storage, no hashing, no database.

``bench/browser_upload.py`` also opens its page (``GET /``) in Chromium: the
vendored Uppy bundle (``GET /uppy.min.js``) or plain ``fetch`` uploading a
file here, the browser's own ceiling. The offset each ``PATCH`` answers is
the one it was sent plus what it carried, so any number of workers can serve
one upload (nothing is kept between requests).
"""

from __future__ import annotations

import uuid
from pathlib import Path

CHUNK = 1024 * 1024
UPPY = Path(__file__).resolve().parent.parent / "frontend/static/frontend/vendor/uppy/uppy.min.js"

# The ceiling page: the same Uppy bundle as the portal (Tus plugin only, no
# Dashboard, no GoldenRetriever), or fetch() PATCHes of File.slice()s.
PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tus drain</title>
<script src="/uppy.min.js"></script></head>
<body><input type="file" id="file">
<script>
"use strict";
function picked() { return document.getElementById("file").files[0]; }
window.uploadWithUppy = (chunkSize) => new Promise((resolve, reject) => {
  const file = picked();
  const uppy = new Uppy.Uppy({ autoProceed: false });
  uppy.use(Uppy.Tus, { endpoint: "/files/", chunkSize, retryDelays: null });
  uppy.addFile({ name: file.name, type: file.type, data: file });
  uppy.upload().then((result) => {
    if (result.failed.length) reject(String(result.failed[0].error));
    else resolve(true);
  }, reject);
});
window.uploadWithFetch = async (chunkSize) => {
  const file = picked();
  const tus = { "Tus-Resumable": "1.0.0" };
  const created = await fetch("/files/", {
    method: "POST",
    headers: { ...tus, "Upload-Length": String(file.size) },
  });
  const url = created.headers.get("Location");
  let offset = 0;
  while (offset < file.size) {
    const end = Math.min(offset + chunkSize, file.size);
    const answer = await fetch(url, {
      method: "PATCH",
      headers: {
        ...tus,
        "Upload-Offset": String(offset),
        "Content-Type": "application/offset+octet-stream",
      },
      body: file.slice(offset, end),
    });
    offset = Number(answer.headers.get("Upload-Offset"));
  }
  return true;
};
</script></body></html>
"""


# Any origin may upload here: bench/browser_upload.py also points the
# portal's own page (served by Doorito, another origin) at this app, to
# tell the page's cost from the server's.
CORS = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Expose-Headers", "Location, Upload-Offset, Upload-Length, Tus-Resumable"),
]


def app(environ, start_response):
    method = environ["REQUEST_METHOD"]
    if method == "OPTIONS":
        preflight = [
            ("Access-Control-Allow-Methods", "POST, PATCH, HEAD, OPTIONS"),
            (
                "Access-Control-Allow-Headers",
                environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "*"),
            ),
            ("Access-Control-Max-Age", "86400"),
        ]
        start_response("204 No Content", [*CORS, *preflight])
        return [b""]
    if method == "GET":
        if environ["PATH_INFO"] == "/uppy.min.js":
            body = UPPY.read_bytes()
            start_response("200 OK", [("Content-Type", "text/javascript")])
            return [body]
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [PAGE]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    received = 0
    while received < length:
        data = stream.read(min(CHUNK, length - received))
        if not data:
            break
        received += len(data)
    headers = [*CORS, ("Tus-Resumable", "1.0.0")]
    if method == "POST":
        host = f"http://{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
        location = f"{host}/files/{uuid.uuid4().hex}"
        start_response("201 Created", [*headers, ("Location", location)])
        return [b""]
    offset = int(environ.get("HTTP_UPLOAD_OFFSET") or 0) + received
    start_response("204 No Content", [*headers, ("Upload-Offset", str(offset))])
    return [b""]
