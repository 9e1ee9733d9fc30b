"""The one HTTP connection pool a process uses for webhooks.

Creating a client per batch spent a third of the time loading CA certificates
(SPEC §1), so the pool lives for the process and is recreated only after a
fork. It is httpcore's pool, which httpx itself is built on, used directly:
per request that costs half the CPU of an ``httpx.Client`` (measured: ~230
vs ~420 µs), and there is nothing of httpx's that webhooks want (no cookie
jar carrying one receiver's cookies into the next request, no redirects, no
content decoding). Every connection goes through the SSRF-safe network
backend.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import httpcore
import httpx

from common.services.ssrf import SafeNetworkBackend, UnsafeTargetError

CONNECT_TIMEOUT = 10.0
TOTAL_TIMEOUT = 30.0
SEND_THREADS = 32

_lock = threading.Lock()
_state: dict[str, object] = {}

# Loading the CA bundle takes tens of milliseconds; made once at import (in
# a worker's parent before it forks) and shared by every client made after.
TLS_CONTEXT = httpx.create_ssl_context(trust_env=False)


TIMEOUTS = {
    "connect": CONNECT_TIMEOUT,
    "read": TOTAL_TIMEOUT,
    "write": TOTAL_TIMEOUT,
    "pool": TOTAL_TIMEOUT,
}


def _fresh() -> None:
    _state["pool"] = httpcore.ConnectionPool(
        ssl_context=TLS_CONTEXT,
        max_connections=200,
        max_keepalive_connections=100,
        retries=0,
        network_backend=SafeNetworkBackend(),
    )
    _state["executor"] = ThreadPoolExecutor(
        max_workers=SEND_THREADS, thread_name_prefix="webhook-send"
    )
    _state["background"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-bg")
    _state["pid"] = os.getpid()


def _ensure() -> None:
    if _state.get("pid") != os.getpid():
        with _lock:
            if _state.get("pid") != os.getpid():
                _fresh()


def webhook_pool() -> httpcore.ConnectionPool:
    _ensure()
    return _state["pool"]  # type: ignore[return-value]


@functools.lru_cache(maxsize=1024)
def request_url(url: str) -> httpcore.URL:
    """An endpoint URL as httpcore takes it (IDNA host, percent-encoded target).

    httpx's parser does the encoding; cached because every delivery to an
    endpoint posts to the same URL.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UnsafeTargetError(f"refused: invalid URL ({exc})") from exc
    return httpcore.URL(
        scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path
    )


def send_executor() -> ThreadPoolExecutor:
    _ensure()
    return _state["executor"]  # type: ignore[return-value]


def background_executor() -> ThreadPoolExecutor:
    """One thread for small fire-and-forget work (queueing the next run)."""
    _ensure()
    return _state["background"]  # type: ignore[return-value]
