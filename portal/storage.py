"""Where file bytes live: Django's default storage (local disk or S3).

Keys are generated, never derived from user input, so a filename can never
become a path. Download URLs are always signed and expiring: presigned on S3,
a signed token for the authorised download view on the local filesystem.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeGuard
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.core.files.storage import Storage, storages
from django.urls import reverse
from django.utils import timezone
from uuid_utils.compat import uuid4

if TYPE_CHECKING:
    from django.http import HttpRequest
    from storages.backends.s3 import S3Storage

    from portal.models import UploadFile

DOWNLOAD_SIGNING_SALT = "portal.download"
# Links for the pre-store hook: they serve a file still being verified
# (``scanning``), and only such a file; ordinary links serve stored files only.
PRE_STORE_SIGNING_SALT = "portal.download.pre_store"


def file_storage() -> Storage:
    """The storage holding uploaded files (resolved per call so tests can swap it)."""
    return storages["default"]


def is_s3_storage(storage: Storage) -> TypeGuard[S3Storage]:
    """Whether ``storage`` is django-storages' S3 backend.

    A guard, so that the S3-only calls behind it (presigned URL parameters,
    the boto3 client, the bucket name) type-check.
    """
    return hasattr(storage, "bucket") and hasattr(storage, "connection")


def has_local_paths(storage: Storage | None = None) -> bool:
    """Whether the storage's objects are files on a local (or shared) disk."""
    storage = storage or file_storage()
    try:
        storage.path("probe")
    except NotImplementedError:
        return False
    return True


def generate_storage_key() -> str:
    """A fresh key ``uploads/YYYY/MM/<uuid>``; month prefixes keep listings small."""
    now = timezone.now()
    return f"uploads/{now:%Y}/{now:%m}/{uuid4().hex}"


def download_url_expiry_seconds() -> int:
    return int(getattr(settings, "AWS_QUERYSTRING_EXPIRE", 3600))


def content_disposition(filename: str, *, attachment: bool = True) -> str:
    """A safe RFC 6266 header value for a user-supplied filename.

    The quoted ASCII fallback keeps only harmless characters (no path
    separators, quotes or controls); ``filename*`` carries the exact name.
    """
    kind = "attachment" if attachment else "inline"
    fallback = (
        "".join(
            ch if (ch.isascii() and ch.isprintable() and ch not in '"\\/;%') else "_"
            for ch in filename
        ).strip(". ")
        or "download"
    )
    encoded = quote(filename, safe="")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def file_download_token(
    file: UploadFile,
    *,
    pre_store: bool = False,
    via: str = "",
    user_id: object = None,
    token_id: object = None,
) -> str:
    """The signed value of a download link: the file id, and who the link was made for.

    A link handed to a signed-in person (``via`` "portal" or "token") names
    them, so the download view can say who downloaded (``file.downloaded``);
    a bare file id (webhook payloads, links made before) is a "signed_link".
    ``pre_store``: the upload hook's link to a file being verified, signed
    with its own salt so it never opens a stored-file link's door or back.
    """
    value = str(file.id)
    if via:
        value = "|".join([value, via, str(user_id or ""), str(token_id or "")])
    salt = PRE_STORE_SIGNING_SALT if pre_store else DOWNLOAD_SIGNING_SALT
    return signing.TimestampSigner(salt=salt).sign(value)


def site_url(request: HttpRequest | None = None) -> str:
    """The scheme and host that absolute links to this portal start with.

    ``SITE_URL`` when set. Otherwise the host the request came in on (so a
    portal reached on another port or name links back to itself), and with
    no request — a payload built in a worker or a command —
    ``http://127.0.0.1:WEB_PORT``, the address ``make run`` serves.
    """
    if settings.SITE_URL:
        return settings.SITE_URL.rstrip("/")
    if request is not None:
        return request.build_absolute_uri("/").rstrip("/")
    return f"http://127.0.0.1:{settings.WEB_PORT}"


def file_download_url(
    file: UploadFile,
    *,
    request: HttpRequest | None = None,
    pre_store: bool = False,
    via: str = "",
    user_id: object = None,
    token_id: object = None,
) -> str:
    """An absolute, signed, expiring URL that downloads ``file``.

    The URL is itself the authorisation, so a webhook receiver can fetch the
    file without a session; it stops working after the expiry. ``request``,
    when the link is made while serving one, lets an unset ``SITE_URL``
    fall back to the request's host (see ``site_url``). ``pre_store``: the
    link the pre-store hook gets, which serves the file while it is
    ``scanning`` (and never once it is quarantined or rejected).
    """
    storage = file_storage()
    expire = download_url_expiry_seconds()
    if is_s3_storage(storage):
        return storage.url(
            file.storage_key,
            parameters={
                "ResponseContentDisposition": content_disposition(file.filename),
                "ResponseContentType": file.content_type or "application/octet-stream",
            },
            expire=expire,
        )
    token = file_download_token(
        file, pre_store=pre_store, via=via, user_id=user_id, token_id=token_id
    )
    path = reverse("downloads:file-download", kwargs={"token": token})
    return site_url(request) + path


def file_id_from_download_token(token: str, *, pre_store: bool = False) -> str:
    """The file id a token was issued for; raises ``signing.BadSignature`` or
    ``signing.SignatureExpired``."""
    return download_token_parts(token, pre_store=pre_store)[0]


def download_token_parts(token: str, *, pre_store: bool = False) -> tuple[str, str, str, str]:
    """``(file_id, via, user_id, token_id)`` of a link (empty strings where not named);
    raises ``signing.BadSignature`` or ``signing.SignatureExpired``."""
    salt = PRE_STORE_SIGNING_SALT if pre_store else DOWNLOAD_SIGNING_SALT
    value = signing.TimestampSigner(salt=salt).unsign(token, max_age=download_url_expiry_seconds())
    file_id, via, user_id, token_id = ([*value.split("|"), "", "", ""])[:4]
    return file_id, via, user_id, token_id
