"""The one HTTP client a process uses for webhooks.

Creating a client per batch spent a third of the time loading CA certificates
(SPEC §1), so the client (and its connection pool) lives for the process and
is recreated only after a fork. Redirects are never followed; every
connection goes through the SSRF-safe network backend.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from common.services.ssrf import SafeNetworkBackend

CONNECT_TIMEOUT = 10.0
TOTAL_TIMEOUT = 30.0
SEND_THREADS = 32

_lock = threading.Lock()
_state: dict[str, object] = {}


class SafeTransport(httpx.HTTPTransport):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._pool._network_backend = SafeNetworkBackend()


def _fresh() -> None:
    transport = SafeTransport(
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
        retries=0,
    )
    _state["client"] = httpx.Client(
        transport=transport,
        follow_redirects=False,
        timeout=httpx.Timeout(TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT),
        headers={"user-agent": "Doorito-Webhooks/1"},
        trust_env=False,
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


def webhook_client() -> httpx.Client:
    _ensure()
    return _state["client"]  # type: ignore[return-value]


def send_executor() -> ThreadPoolExecutor:
    _ensure()
    return _state["executor"]  # type: ignore[return-value]


def background_executor() -> ThreadPoolExecutor:
    """One thread for small fire-and-forget work (queueing the next run)."""
    _ensure()
    return _state["background"]  # type: ignore[return-value]
