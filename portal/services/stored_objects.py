"""Deleting objects from file storage: the one place every delete goes through.

Files (TTL cleanup, the owner's delete, abandoned uploads) and the parts of
resumable uploads are all removed here, with the same rules: an object that
is already gone counts as deleted (a crash between deleting the object and
its row leaves exactly that), and a failure is logged and reported, never
raised, so a caller can keep the row for a later run instead of losing track
of the bytes. On S3 one request removes up to 1000 keys.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from storages.utils import clean_name

from common.exceptions import ApplicationError
from portal.storage import file_storage, is_s3_storage

if TYPE_CHECKING:
    from storages.backends.s3 import S3Storage

logger = logging.getLogger(__name__)

S3_DELETE_CHUNK = 1000  # the most keys one DeleteObjects request takes


class StorageUnavailableError(ApplicationError):
    code = "storage_unavailable"
    status_code = 503
    default_message = "File storage could not be reached; nothing was changed. Retry shortly."


def delete_objects(keys: Iterable[str]) -> set[str]:
    """Delete the objects ``keys`` name (each once, empty keys skipped).

    Returns the keys that could not be deleted.
    """
    unique = [k for k in dict.fromkeys(keys) if k]
    storage = file_storage()
    if is_s3_storage(storage):
        return _delete_s3_objects(storage, unique)
    failed: set[str] = set()
    for key in unique:
        try:
            storage.delete(key)
        except FileNotFoundError:
            pass
        except Exception:
            logger.exception("Could not delete object %s", key)
            failed.add(key)
    return failed


def _delete_s3_objects(storage: S3Storage, keys: list[str]) -> set[str]:
    client = storage.connection.meta.client
    bucket = storage.bucket_name
    failed: set[str] = set()
    for start in range(0, len(keys), S3_DELETE_CHUNK):
        chunk = keys[start : start + S3_DELETE_CHUNK]
        names = {storage._normalize_name(clean_name(k)): k for k in chunk}
        try:
            response = client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": n} for n in names], "Quiet": True}
            )
        except Exception:
            logger.exception("Could not delete %d objects", len(chunk))
            failed.update(chunk)
            continue
        for error in response.get("Errors", []):
            if error.get("Code") == "NoSuchKey":
                continue
            logger.error("Could not delete object %s: %s", error.get("Key"), error.get("Code"))
            failed.add(names.get(error.get("Key"), error.get("Key")))
    return failed


def delete_object(key: str) -> None:
    """Delete one object that must be gone before its record goes.

    Raises ``StorageUnavailableError`` (503) when it could not be deleted, so
    the record stays and still names the bytes.
    """
    if delete_objects([key]):
        raise StorageUnavailableError(details={"storage_key": key})
