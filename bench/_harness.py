"""Processes the webhook benchmarks share: the receiver and the Celery commands.

``bench/webhooks.py`` and ``bench/faults.py`` start the same uvicorn receiver
and the documented ``celery -A boot worker`` / ``beat`` commands; both stop
them by process group, since a worker's pool children must go with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.private_cluster import free_port  # noqa: E402

__all__ = [
    "ROOT",
    "free_port",
    "receiver_get",
    "receiver_post",
    "spawn",
    "start_beat",
    "start_receiver",
    "stop",
    "worker_command",
]


def spawn(cmd: list[str], env: dict[str, str] | None, log: Path | None = None) -> subprocess.Popen:
    """A child in its own session, so stopping it stops its whole group."""
    out = log.open("a") if log is not None else None
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def start_receiver(port: int) -> subprocess.Popen:
    """``bench/webhook_receiver.py`` under uvicorn on 127.0.0.1, once it answers."""
    cmd = [sys.executable, "-m", "uvicorn", "bench.webhook_receiver:app"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = spawn([*cmd, "--no-access-log"], None)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            receiver_get(port, "/_count", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    stop(proc)
    raise RuntimeError("receiver did not start")


def receiver_get(port: int, path: str, *, timeout: float = 30) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return json.loads(r.read())


def receiver_post(port: int, path: str, data: Any) -> Any:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(data).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def worker_command(concurrency: int, loglevel: str = "warning") -> list[str]:
    """The documented worker (Procfile.dev), without the chatter the SQL broker cannot use."""
    return [
        *(sys.executable, "-m", "celery", "-A", "boot", "worker", "-Q", "high,default"),
        *("-c", str(concurrency), f"--loglevel={loglevel}"),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
    ]


def start_beat(env: dict[str, str], log: Path, schedule: Path) -> subprocess.Popen:
    """The documented beat (Procfile.dev): Doorito's DatabaseScheduler."""
    cmd = [sys.executable, "-m", "celery", "-A", "boot", "beat", "--loglevel=info"]
    cmd += ["--scheduler", "boot.beat:DatabaseScheduler", "--schedule", str(schedule)]
    return spawn(cmd, env, log)


def stop(proc: subprocess.Popen, *, timeout: float = 20) -> None:
    """SIGTERM to the group, SIGKILL if it is still there after ``timeout``."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()
