"""The one HTTP connection pool a process uses for webhooks.

Creating a client per batch spent a third of the time loading CA certificates
(SPEC §1), so the pool lives for the process and is recreated only after a
fork. It is httpcore's pool, which httpx itself is built on, used directly:
per request that costs half the CPU of an ``httpx.Client`` (measured: ~230
vs ~420 µs), and there is nothing of httpx's that webhooks want (no cookie
jar carrying one receiver's cookies into the next request, no redirects, no
content decoding). Every connection goes through the SSRF-safe network
backend, and every socket operation of a request is cut to the time left
before that request's deadline (``request_deadline``): httpcore's timeouts
are per operation, so without it a receiver dripping its answer a byte at a
time could hold a request (and its claim) far beyond
``WEBHOOK_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpcore
import httpx

from common.services.ssrf import SafeNetworkBackend, UnsafeTargetError

CONNECT_TIMEOUT = 10.0
# Requests one process has in flight at most (all endpoints together).
SEND_THREADS = 32

_lock = threading.Lock()
_state: dict[str, object] = {}

# Loading the CA bundle takes tens of milliseconds; made once at import (in
# a worker's parent before it forks) and shared by every client made after.
TLS_CONTEXT = httpx.create_ssl_context(trust_env=False)


def request_timeouts(total: float) -> dict[str, float]:
    """httpcore's per-operation timeouts for a request that may last ``total`` seconds."""
    return {
        "connect": min(CONNECT_TIMEOUT, total),
        "read": total,
        "write": total,
        "pool": total,
    }


_deadline = threading.local()


@contextlib.contextmanager
def request_deadline(seconds: float) -> Iterator[None]:
    """Every socket operation of this thread's request ends by ``seconds`` from now."""
    _deadline.at = time.monotonic() + seconds
    try:
        yield
    finally:
        _deadline.at = None


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    at: float | None = getattr(_deadline, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(
            self._stream.start_tls(
                ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout)
            )
        )

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(SafeNetworkBackend):
    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = super().connect_tcp(
            host,
            port,
            timeout=_left(timeout, httpcore.ConnectTimeout),
            local_address=local_address,
            socket_options=socket_options,
        )
        return _DeadlineStream(stream)


def _fresh() -> None:
    _state["pool"] = httpcore.ConnectionPool(
        ssl_context=TLS_CONTEXT,
        max_connections=200,
        max_keepalive_connections=100,
        retries=0,
        network_backend=_Backend(),
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
