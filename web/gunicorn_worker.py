"""gunicorn's threaded worker, with request heads read by the event loop.

Why: the stock ``gthread`` worker hands a connection to a thread as soon as
its first byte arrives, and the thread then blocks until the headers are
complete. A client that sends one header line every few seconds (slowloris)
holds a thread for as long as it likes: 85 such sockets held every thread of
the production server, and ``/healthz`` answered 0 of 5.

Here the worker's main loop, which already waits on every socket with a
selector, reads each request's head itself, without blocking, and gives the
connection to a thread only once the head is complete, together with the
body when it is small (at most ``PREREAD_BODY_BYTES`` with a
``Content-Length``). A socket that sends nothing or trickles costs a
selector entry and a buffer, never a thread. Deadlines:

- the whole head within ``WEB_HEADER_TIMEOUT`` seconds (10) of the
  connection being accepted (or of a kept-alive connection's next byte);
- a small body that is read here: no silence longer than
  ``WEB_BODY_READ_TIMEOUT`` (the same idle limit the threads apply to the
  bodies they read, ``deploy/gunicorn.conf.py``).

A socket past its deadline gets ``408`` and is closed. The worker also stops
accepting while every thread is busy, so new connections (health probes
included) wait in the listen queue for a worker that can answer them rather
than in this worker's thread queue behind slow uploads.

A request answered before its body was read (a refusal: 401, 409, 413,
423, 503 …) has the rest of its body read and thrown away before the
answer goes out, up to ``DISCARD_UNREAD_BODY_BYTES`` within
``DISCARD_UNREAD_BODY_SECONDS``, so the kept-alive connection carries the
client's next request. gunicorn itself skips at most 64 KiB of such a body
and otherwise closes a connection its answer had called ``keep-alive``: a
client that reused it (httpx, a browser) then failed with "server
disconnected" instead of getting the answer; seen as uploads refused with
``503`` during a database restart. A body too large to skip is answered
with ``Connection: close``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import selectors
import time
from functools import partial

from gunicorn.workers.gthread import TConn, ThreadWorker

#: A body at most this long (with Content-Length, no ``Expect``) is read
#: before a thread sees the request: JSON, forms and tus creation requests
#: then never hold a thread (or a database connection) while a slow client
#: sends them. Larger bodies (uploads) stream through a thread.
PREREAD_BODY_BYTES = 64 * 1024
RECV_BYTES = 64 * 1024
#: How much of a refused request's unread body is read and dropped (see above).
DISCARD_UNREAD_BODY_BYTES = 16 * 1024 * 1024
DISCARD_UNREAD_BODY_SECONDS = 5.0
TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

_CONTENT_LENGTH = re.compile(rb"^content-length[ \t]*:[ \t]*(\d{1,19})[ \t]*\r?$", re.I | re.M)
_NO_PREREAD = re.compile(rb"^(transfer-encoding|expect)[ \t]*:", re.I | re.M)


def body_to_preread(head: bytes) -> int:
    """How many body bytes to read with this head before a thread takes it.

    Chunked bodies and ``Expect: 100-continue`` (the client waits for the
    server's go-ahead) go to a thread as they are; so does anything this
    cannot read plainly, for gunicorn's parser to refuse.
    """
    if _NO_PREREAD.search(head):
        return 0
    lengths = _CONTENT_LENGTH.findall(head)
    if len(lengths) != 1:
        return 0
    length = int(lengths[0])
    return length if length <= PREREAD_BODY_BYTES else 0


def _discard_unread_body(environ: dict, start_response) -> None:
    """Read and drop what the application left of a ``Content-Length`` body.

    If that is too much or too slow, the answer (its headers not sent yet)
    says ``Connection: close`` instead of ``keep-alive``.
    """
    reader = getattr(environ.get("wsgi.input"), "reader", None)
    left = getattr(reader, "length", None)  # gunicorn's LengthReader: bytes not yet read
    if not left:
        return
    answer = getattr(start_response, "__self__", None)  # gunicorn's Response
    if left <= DISCARD_UNREAD_BODY_BYTES and _skip(environ, reader):
        return
    if answer is not None:
        answer.force_close()


def _skip(environ: dict, reader) -> bool:
    """Drop the rest of the body within the time allowed; whether it all came."""
    sock = environ.get("gunicorn.socket")
    deadline = time.monotonic() + DISCARD_UNREAD_BODY_SECONDS
    prior = sock.gettimeout() if sock is not None else None
    try:
        while reader.length:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if sock is not None:
                sock.settimeout(remaining)
            if not reader.read(min(reader.length, RECV_BYTES)):
                return False
        return True
    except OSError:
        return False
    finally:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.settimeout(prior)


class HeadFirstWorker(ThreadWorker):
    """``gthread`` that reads request heads (and small bodies) in its main loop."""

    busy = 0  # requests handed to the thread pool and not finished

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timeout = float(os.environ.get("WEB_HEADER_TIMEOUT") or 10)
        self.body_idle_timeout = float(os.environ.get("WEB_BODY_READ_TIMEOUT") or 60)
        cfg = self.cfg
        # Past this, no valid head can still be coming: the parser refuses it.
        fields = cfg.limit_request_fields * (cfg.limit_request_field_size + 2)
        self.max_head_bytes = cfg.limit_request_line + fields + 4
        self.reading: dict[TConn, None] = {}

    # run() compares nr_conns with this on every turn of its loop.
    @property
    def worker_connections(self) -> int:
        if self.busy >= self.cfg.threads:
            return 0
        return self._max_connections

    @worker_connections.setter
    def worker_connections(self, value: int) -> None:
        self._max_connections = value

    # --- the main loop's side ------------------------------------------------

    def accept(self, listener):
        try:
            sock, client = listener.accept()
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return
            raise
        self.nr_conns += 1
        self._read_head(TConn(self.cfg, sock, client, listener.getsockname()))

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection's next request: its head is read here too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._read_head(conn)
        self._on_readable(conn, client)

    def _read_head(self, conn: TConn) -> None:
        conn.sock.setblocking(False)
        conn.early = bytearray()
        conn.early_total = None  # head + pre-read body, once the head is complete
        conn.early_deadline = time.monotonic() + self.header_timeout
        self.reading[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _on_readable(self, conn: TConn, _sock) -> None:
        if conn not in self.reading:
            return
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        conn.early += data
        if conn.early_total is None:
            end = conn.early.find(b"\r\n\r\n")
            if end < 0:
                if len(conn.early) > self.max_head_bytes:
                    self._dispatch(conn)  # the parser answers it (431/400)
                return
            conn.early_total = end + 4 + body_to_preread(bytes(conn.early[:end]))
        if len(conn.early) >= conn.early_total:
            self._dispatch(conn)
        else:
            conn.early_deadline = time.monotonic() + self.body_idle_timeout

    def _dispatch(self, conn: TConn) -> None:
        del self.reading[conn]
        self.poller.unregister(conn.sock)
        self.enqueue_req(conn)

    def _drop(self, conn: TConn, answer: bytes = b"") -> None:
        self.reading.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        if answer:
            with contextlib.suppress(OSError):
                conn.sock.send(answer)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self):
        """Also close sockets past their head (or small-body) deadline.

        A stopping worker closes every socket still sending a head at once:
        no request has started on them.
        """
        super().murder_pending()
        now = time.monotonic()
        for conn in list(self.reading):
            if not self.alive or conn.early_deadline <= now:
                self._drop(conn, TIMED_OUT if conn.early else b"")

    def enqueue_req(self, conn):
        self.busy += 1
        super().enqueue_req(conn)

    def finish_request(self, conn, fs):
        self.busy -= 1
        super().finish_request(conn, fs)

    # --- the thread's side ---------------------------------------------------

    def load_wsgi(self):
        super().load_wsgi()
        application = self.wsgi

        def discarding_unread_body(environ, start_response):
            result = application(environ, start_response)
            _discard_unread_body(environ, start_response)
            return result

        self.wsgi = discarding_unread_body

    def handle(self, conn):
        early = getattr(conn, "early", None)
        if early is not None:
            conn.early = None
            conn.data_ready = True  # no need to wait for a first byte
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(bytes(early))
        return super().handle(conn)
