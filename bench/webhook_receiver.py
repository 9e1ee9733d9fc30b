"""A minimal ASGI webhook receiver for the webhook benchmarks (run by uvicorn).

Records, per request path, the ``webhook-id`` and the wall-clock arrival time
of every request it answers 2xx; ``GET /_stats`` returns them as JSON,
``GET /_count?path=/x`` only how many distinct ids one path received (cheap
enough to poll while a run is going on without taking CPU from it). An
unconfigured path answers 204 at once (``bench/webhooks.py``).

A path configured with ``POST /_config`` (``{"/x": {"secret": "whsec_…",
"fail_pct": 30, "stall_pct": 3, "stall_seconds": 5}}``) misbehaves on
purpose for ``bench/faults.py``: it verifies the Standard Webhooks
signature (a bad one is answered 400 and counted), holds ``stall_pct`` % of
the requests for ``stall_seconds`` before answering, and answers
``fail_pct`` % with a 500. ``GET /_log?path=/x`` returns one row per
request: ``[webhook-id, arrived, answered, status, signature ok]``;
``GET /_inflight`` how many requests each path holds unanswered.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import defaultdict

RECEIVED: dict[str, list[tuple[str, float]]] = defaultdict(list)
CONFIG: dict[str, dict] = {}
LOG: dict[str, list[tuple[str, float, float, int, bool]]] = defaultdict(list)
IN_FLIGHT: dict[str, int] = defaultdict(int)


async def _read_body(receive) -> bytes:
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _answer(send, status: int, body: bytes = b"") -> None:
    headers = [(b"content-type", b"application/json")] if body else []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _control(method: str, path: str, query: str, body: bytes) -> bytes | None:
    """The receiver's own endpoints (``/_…``); None for a webhook path."""
    wanted = query.partition("path=")[2]
    if method == "GET" and path == "/_count":
        return str(len({i for i, _ in RECEIVED.get(wanted, [])})).encode()
    if method == "GET" and path == "/_stats":
        return json.dumps(RECEIVED).encode()
    if method == "GET" and path == "/_log":
        return json.dumps(LOG.get(wanted, [])).encode()
    if method == "GET" and path == "/_inflight":
        return json.dumps(IN_FLIGHT).encode()
    if method == "POST" and path == "/_config":
        CONFIG.update(json.loads(body))
        return b"{}"
    return None


async def _misbehave(config: dict, headers: dict[str, str], body: bytes) -> tuple[int, bool]:
    """Checks the signature, then stalls and fails at the configured rates."""
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    try:
        Webhook(config["secret"]).verify(body, headers, json_parse=False)
    except WebhookVerificationError:
        return 400, False
    if random.random() * 100 < config.get("stall_pct", 0):
        await asyncio.sleep(config.get("stall_seconds", 0))
    if random.random() * 100 < config.get("fail_pct", 0):
        return 500, True
    return 204, True


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = await _read_body(receive)
    path = scope["path"]
    control = _control(scope["method"], path, scope["query_string"].decode(), body)
    if control is not None:
        await _answer(send, 200, control)
        return
    headers = {name.decode(): value.decode() for name, value in scope["headers"]}
    msg_id = headers.get("webhook-id", "")
    arrived = time.time()
    config = CONFIG.get(path)
    if config is None:
        RECEIVED[path].append((msg_id, arrived))
        await _answer(send, 204)
        return
    IN_FLIGHT[path] += 1
    try:
        status, signature_ok = await _misbehave(config, headers, body)
        if 200 <= status < 300:
            RECEIVED[path].append((msg_id, arrived))
        LOG[path].append((msg_id, arrived, time.time(), status, signature_ok))
    finally:
        IN_FLIGHT[path] -= 1
    await _answer(send, status)
