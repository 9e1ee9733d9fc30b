"""Serving a file's bytes from Doorito, and recording each completed download.

Share links and zips are served by Doorito itself, never by a redirect to a
presigned S3 URL: such a URL can be fetched again for its whole lifetime, so
a download limit would mean nothing. The bytes are read in pieces (on S3 from
the object's response body, not through django-storages' ``S3File``, which
first copies the whole object into a temporary file) and each download is
recorded when its last byte has been handed to the server
(``file.downloaded``, documented in docs/webhooks.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction

from common.services.emit import NewEvent, emit_events
from portal.models import FileDownload, ShareLink, UploadFile
from portal.services.payloads import file_downloaded_payload
from portal.storage import file_download_url, file_storage, is_s3_storage

if TYPE_CHECKING:
    from django.http import HttpRequest

logger = logging.getLogger(__name__)

CHUNK_SIZE = 256 * 1024


@dataclass(frozen=True)
class Downloader:
    """How a download was asked for: the ``download`` object of ``file.downloaded``."""

    via: str  # one of FileDownload.Via
    share_link_id: Any = None
    user_id: Any = None
    token_id: Any = None


def file_chunks(file: UploadFile, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The stored bytes of ``file`` in pieces of at most ``chunk_size``, never all at once."""
    storage = file_storage()
    if is_s3_storage(storage):
        name = storage._normalize_name(file.storage_key)
        body = storage.bucket.Object(name).get()["Body"]
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()
        return
    with storage.open(file.storage_key, "rb") as handle:
        while chunk := handle.read(chunk_size):
            yield chunk


def file_exists_in_storage(file: UploadFile) -> bool:
    return bool(file.storage_key) and file_storage().exists(file.storage_key)


def file_downloads_record(
    *, files: Sequence[UploadFile], downloader: Downloader, archive: bool = False
) -> list[FileDownload]:
    """Record completed downloads of ``files`` and emit one ``file.downloaded`` each.

    One transaction for the rows and their events, so a download is either
    both listed on the file's page and announced, or neither.
    """
    if not files:
        return []
    downloads = [
        FileDownload(
            file=file,
            via=downloader.via,
            share_link_id=downloader.share_link_id,
            user_id=downloader.user_id,
            token_id=downloader.token_id,
            archive=archive,
        )
        for file in files
    ]
    with transaction.atomic():
        # A file deleted while its bytes were on the way has no row to point at.
        existing = set(
            UploadFile.objects.filter(pk__in=[f.pk for f in files]).values_list("pk", flat=True)
        )
        downloads = [d for d in downloads if d.file_id in existing]
        FileDownload.objects.bulk_create(downloads)
        emit_events(
            event_type="file.downloaded",
            events=[
                NewEvent(
                    aggregate_type="file",
                    aggregate_id=d.file_id,
                    payload=file_downloaded_payload(d.file, d),
                    idempotency_key=str(d.id),
                )
                for d in downloads
            ],
        )
    return downloads


def stream_then(chunks: Iterable[bytes], on_complete: Callable[[], object]) -> Iterator[bytes]:
    """``chunks`` as they come, then ``on_complete()`` once the server asked past the last.

    The server asks for the next piece only after writing the previous one,
    so a download cut short (the client went away, the server's write failed)
    closes this generator at a ``yield`` and never reaches ``on_complete``.
    """
    yield from chunks
    try:
        on_complete()
    except Exception:
        # The bytes are out; a failure to record them must not turn into a
        # broken response the client already has in full.
        logger.exception("Could not record a completed download")


def share_link_downloader(link: ShareLink) -> Downloader:
    return Downloader(via=FileDownload.Via.SHARE_LINK, share_link_id=link.pk)


def file_download_link(
    *, file: UploadFile, downloader: Downloader, request: HttpRequest | None = None
) -> str:
    """Where a signed-in person's download (portal, API) is sent: a signed, expiring URL.

    On local storage the URL is Doorito's download view, which records the
    download when its last byte is out. On S3 it is a presigned URL and the
    bytes never pass Doorito, so the download is recorded here, when the
    link is handed out (docs/webhooks.md says so).
    """
    url = file_download_url(
        file,
        request=request,
        via=downloader.via,
        user_id=downloader.user_id,
        token_id=downloader.token_id,
    )
    if is_s3_storage(file_storage()):
        file_downloads_record(files=[file], downloader=downloader)
    return url


def downloader_from_link(*, via: str, user_id: str, token_id: str) -> Downloader:
    """Who a signed download link was made for (``portal.storage.download_token_parts``)."""
    if via not in (FileDownload.Via.PORTAL, FileDownload.Via.TOKEN):
        return Downloader(via=FileDownload.Via.SIGNED_LINK)
    return Downloader(via=via, user_id=user_id or None, token_id=token_id or None)
