"""A real HTTP receiver on 127.0.0.1 for webhook tests (no mocks).

Each path can be scripted with a list of responses (status, headers, delay);
after the script runs out a path answers 200. Every request is recorded with
its raw body and headers so tests can verify signatures like a receiver would,
and the most requests a path had in flight at once is kept.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) refuses connections when dispatchers open
    # dozens at once; a refused connection is (rightly) a failed attempt.
    request_queue_size = 256


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: bytes = b"ok"
    # Held until the test sets it (at most a minute): a reply timed by what
    # the test did, not by a guess at how long that takes.
    gate: threading.Event | None = None


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered_at: float | None = None  # when the reply was written (None: never)


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.scripts: dict[str, list[Reply]] = defaultdict(list)
        self.defaults: dict[str, Reply] = {}
        self.in_flight: dict[str, int] = defaultdict(int)
        self.max_in_flight: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The reply goes out in two writes (headers, body); with Nagle on,
            # the second waits for the client's delayed ACK (40 ms).
            disable_nagle_algorithm = True

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                received = Received(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()
                )
                with receiver.lock:
                    receiver.requests.append(received)
                    script = receiver.scripts[self.path]
                    reply = script.pop(0) if script else receiver.defaults.get(self.path, Reply())
                    receiver.in_flight[self.path] += 1
                    receiver.max_in_flight[self.path] = max(
                        receiver.max_in_flight[self.path], receiver.in_flight[self.path]
                    )
                try:
                    if reply.delay:
                        time.sleep(reply.delay)
                    if reply.gate is not None:
                        reply.gate.wait(timeout=60)
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                    self.wfile.flush()
                    received.answered_at = time.time()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client went away (a killed worker)
                finally:
                    with receiver.lock:
                        receiver.in_flight[self.path] -= 1

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        with self.lock:
            self.scripts[path].extend(replies)

    def always(self, path: str, reply: Reply) -> None:
        self.defaults[path] = reply

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.on(path) if path else list(self.requests)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        got = self.on(path) if path else list(self.requests)
        raise TimeoutError(f"receiver got {len(got)} of {count} requests")

    def in_flight_at(self, when: float, *, margin: float = 0.0) -> list[Received]:
        """Requests that had arrived by ``when`` and were not answered ``margin`` s before it."""
        with self.lock:
            return [
                r
                for r in self.requests
                if r.at <= when and (r.answered_at is None or r.answered_at > when - margin)
            ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
