"""A minimal ASGI webhook receiver for bench/webhooks.py (run by uvicorn).

Records, per request path, the ``webhook-id`` and the wall-clock arrival time;
``GET /_stats`` returns them as JSON, ``GET /_count?path=/x`` only how many
distinct ids one path received (cheap enough to poll while a run is going on
without taking CPU from it). Answers 204 at once.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict

RECEIVED: dict[str, list[tuple[str, float]]] = defaultdict(list)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    path = scope["path"]
    if scope["method"] == "GET" and path in ("/_stats", "/_count"):
        if path == "/_count":
            wanted = scope["query_string"].decode().partition("path=")[2]
            body = str(len({i for i, _ in RECEIVED.get(wanted, [])})).encode()
        else:
            body = json.dumps(RECEIVED).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    msg_id = ""
    for name, value in scope["headers"]:
        if name == b"webhook-id":
            msg_id = value.decode()
            break
    RECEIVED[path].append((msg_id, time.time()))
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
