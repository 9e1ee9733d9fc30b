"""The operator's upload hook (``UPLOAD_HOOK_URL``): asked before an upload is
created (``upload.pre_create``) and before a received file is stored
(``upload.pre_store``).

One signed POST per question, in the Standard Webhooks shape the outbox sends
(``{"type", "timestamp", "data"}``, ``webhook-id``/``-timestamp``/``-signature``
headers signed with ``UPLOAD_HOOK_SECRET``), through the webhooks' connection
pool, so the SSRF guard vets the hook's address at connect time as it does an
endpoint's. The whole request, connect to last byte, lasts at most
``UPLOAD_HOOK_TIMEOUT_SECONDS`` (5 s): an upload waits for the answer.

Answers: 2xx lets the upload go on (a JSON object body may carry
``metadata`` to merge into the file's); 4xx refuses it (the body's
``message`` is shown to the uploader); anything else — 5xx, a timeout, no
connection, a refused address — is "the hook is unavailable", which
``UPLOAD_HOOK_FAIL_MODE`` decides (``closed``: refuse or hold; ``open``: go on).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpcore
from django.conf import settings
from uuid_utils.compat import uuid7

from common.exceptions import ApplicationError, PermissionDeniedError
from common.services.http import request_deadline, request_timeouts, request_url, webhook_pool
from common.services.signing import signature_header
from common.services.ssrf import UnsafeTargetError
from common.services.text import clean_text

logger = logging.getLogger(__name__)

USER_AGENT = b"Doorito-Upload-Hook/1"
# An answer's body is read up to this many bytes (a message and some metadata).
MAX_ANSWER_BYTES = 64 * 1024
MAX_MESSAGE_LENGTH = 500


class UploadHookUnavailableError(ApplicationError):
    """The hook did not answer and ``UPLOAD_HOOK_FAIL_MODE`` is ``closed``."""

    code = "upload_hook_unavailable"
    status_code = 503
    default_message = "Uploads cannot be checked right now; try again later."


@dataclass
class HookAnswer:
    """What the hook said: ``refused`` with its message, or ``unavailable`` with
    the reason, or neither (go on, with ``metadata`` to add)."""

    refused: bool = False
    unavailable: bool = False
    message: str = ""
    status: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def hook_url() -> str:
    return str(getattr(settings, "UPLOAD_HOOK_URL", "") or "")


def hook_enabled() -> bool:
    return bool(hook_url())


def fail_open() -> bool:
    return str(getattr(settings, "UPLOAD_HOOK_FAIL_MODE", "closed")).strip().lower() == "open"


def _timeout() -> float:
    return max(float(getattr(settings, "UPLOAD_HOOK_TIMEOUT_SECONDS", 5.0)), 0.1)


def upload_hook_call(event_type: str, data: dict[str, Any]) -> HookAnswer:
    """POST ``data`` as ``event_type`` to the hook; never raises (the answer says it all)."""
    msg_id = f"hook_{uuid7()}"
    now = time.time()
    envelope = {
        "type": event_type,
        "timestamp": datetime.fromtimestamp(now, tz=UTC).isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    body = json.dumps(envelope, separators=(",", ":"), default=str).encode()
    headers = [
        (b"user-agent", USER_AGENT),
        (b"content-type", b"application/json"),
        (b"webhook-id", msg_id.encode()),
        (b"webhook-timestamp", str(int(now)).encode()),
    ]
    secret = str(getattr(settings, "UPLOAD_HOOK_SECRET", "") or "")
    if secret:
        signature = signature_header(secrets=[secret], msg_id=msg_id, timestamp=int(now), body=body)
        headers.append((b"webhook-signature", signature.encode()))
    total = _timeout()
    url = hook_url()
    try:
        with (
            request_deadline(total),
            webhook_pool().stream(
                "POST",
                request_url(url),
                headers=headers,
                content=body,
                extensions={"timeout": request_timeouts(total)},
            ) as response,
        ):
            raw = bytearray()
            for chunk in response.iter_stream():
                raw += chunk
                if len(raw) > MAX_ANSWER_BYTES:
                    break
    except UnsafeTargetError as exc:
        return _unavailable(event_type, f"the hook's address is {exc}")
    except httpcore.TimeoutException:
        return _unavailable(event_type, f"the hook did not answer within {total:g} s")
    except Exception as exc:  # connection refused, protocol errors: all "no answer"
        return _unavailable(event_type, f"the hook could not be reached ({type(exc).__name__})")
    return _answer(event_type, response.status, bytes(raw))


def _unavailable(event_type: str, reason: str) -> HookAnswer:
    logger.warning("Upload hook %s: %s", event_type, reason)
    return HookAnswer(unavailable=True, message=reason)


def _answer(event_type: str, status: int, raw: bytes) -> HookAnswer:
    parsed: Any = None
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    parsed = parsed if isinstance(parsed, dict) else {}
    message = parsed.get("message")
    message = _clean_message(message) if isinstance(message, str) else ""
    if 200 <= status < 300:
        metadata = parsed.get("metadata")
        return HookAnswer(status=status, metadata=metadata if isinstance(metadata, dict) else {})
    if 400 <= status < 500:
        logger.info("Upload hook %s refused (HTTP %d): %s", event_type, status, message)
        return HookAnswer(refused=True, status=status, message=message or "The upload was refused.")
    return _unavailable(event_type, f"the hook answered HTTP {status}")


def _clean_message(message: str) -> str:
    try:
        text = clean_text(message, field="message")
    except ApplicationError:
        return ""
    return " ".join(text.split())[:MAX_MESSAGE_LENGTH]


def upload_hook_pre_create(
    *,
    owner: Any,
    filename: str,
    size: int | None,
    content_type: str,
    metadata: dict[str, Any] | None,
    batch: Any = None,
    file_request: Any = None,
    kind: str,
) -> dict[str, Any]:
    """Ask the hook whether this upload may begin; the metadata it adds.

    Every upload path calls this before it creates its record or session and
    before any byte is stored: ``uploads.upload_file_create`` and
    ``upload_file_reserve`` (simple), ``tus.sessions.upload_session_create``
    (tus). A refusal raises 403 with the hook's message; an unavailable hook
    raises 503 (``closed``) or lets the upload go on (``open``).
    """
    if not hook_enabled():
        return {}
    data = {
        "upload": {
            "kind": kind,
            "filename": filename,
            "size": size,
            "content_type": content_type,
            "metadata": metadata or {},
            "batch_id": str(batch.pk) if batch is not None else None,
            "file_request_id": str(file_request.pk) if file_request is not None else None,
        },
        "uploader": {"id": str(owner.pk), "email": owner.email},
    }
    answer = upload_hook_call("upload.pre_create", data)
    if answer.refused:
        raise PermissionDeniedError(
            answer.message,
            code="upload_refused",
            details={"refused_by": "upload_hook", "hook_status": answer.status},
        )
    if answer.unavailable:
        if fail_open():
            return {}
        raise UploadHookUnavailableError(
            "Uploads cannot be checked right now (the upload hook is unavailable); "
            "try again later.",
            details={"reason": answer.message},
        )
    return answer.metadata
