"""A bare tus client over httpx and the helpers the tus endpoint tests share."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from accounts.models import User
from accounts.services.tokens import token_create
from portal.models import UploadSession

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {"Content-Type": "application/offset+octet-stream"}
IMF_FIXDATE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$"
)


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def metadata(**values: str) -> str:
    return ",".join(f"{k} {b64(v)}" for k, v in values.items())


class Tus:
    """A bare tus client over httpx, so each test controls every header."""

    user: User  # whose token it sends (set by the fixture)

    def __init__(self, base_url: str, raw_token: str | None):
        self.base = base_url.rstrip("/") + "/api/tus/"
        self.http = httpx.Client(timeout=30)
        self.auth = {"Authorization": f"Bearer {raw_token}"} if raw_token else {}

    def request(self, method: str, url: str | None = None, *, headers=None, content=None, tus=True):
        all_headers = {**(TUS if tus else {}), **self.auth, **(headers or {})}
        return self.http.request(method, url or self.base, headers=all_headers, content=content)

    def create(self, length: int | None = None, **headers) -> str:
        extra = {"Upload-Length": str(length)} if length is not None else {}
        response = self.request("POST", headers={**extra, **headers})
        assert response.status_code == 201, response.text
        return response.headers["Location"]

    def head(self, url: str) -> httpx.Response:
        return self.request("HEAD", url)

    def patch(self, url: str, data: bytes, offset: int, **headers) -> httpx.Response:
        return self.request(
            "PATCH", url, headers={**OCTET, "Upload-Offset": str(offset), **headers}, content=data
        )


def raw_token(user: User) -> str:
    return token_create(user=user, name="tus")[1]


def session_for(url: str) -> UploadSession:
    return UploadSession.objects.get(id=urlsplit(url).path.rstrip("/").rsplit("/", 1)[1])


def stored_objects(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def part_objects(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / "tus"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
