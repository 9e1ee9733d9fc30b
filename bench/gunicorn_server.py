"""gunicorn with one sync worker on a free port, for the HTTP benchmarks.

One worker so the process whose memory is measured is the one that served
every request. Imported by ``bench/upload.py`` and ``bench/api_endpoints.py``
(run as scripts, so this folder is on ``sys.path``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GunicornServer:
    def __init__(
        self,
        env: dict[str, str],
        log: Path,
        *,
        app: str = "boot.wsgi",
        timeout: int = 300,
        pythonpath: Path | None = None,
    ):
        self.port = free_port()
        self.log = log.open("w")
        cmd = [sys.executable, "-m", "gunicorn", app, "-b", f"127.0.0.1:{self.port}"]
        cmd += ["-w", "1", "--timeout", str(timeout)]
        if pythonpath is not None:
            cmd += ["--pythonpath", str(pythonpath)]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                # Any answer below 500 means the app is up (the drain app has no /healthz).
                if httpx.get(self.url + "/healthz", timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start; see {log}")

    def worker_pid(self) -> int:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return int(children[0])

    def peak_rss_mib(self) -> float:
        """VmHWM: the worker's peak resident set since it started."""
        for line in Path(f"/proc/{self.worker_pid()}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


class ProductionServer:
    """The documented production command (``gunicorn -c deploy/gunicorn.conf.py``) on a free port.

    Its own process group, so ``stop()`` takes the master and its workers.
    """

    def __init__(
        self, env: dict[str, str], log: Path, *, app: str = "boot.wsgi", ready: str = "/healthz"
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", app]
        self.proc = subprocess.Popen(
            [*cmd, "--bind", f"127.0.0.1:{self.port}"],
            cwd=ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + ready, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{app} did not start; see {log}")

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def production_env(database_url: str, media: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``Production`` web process on plain-HTTP loopback.

    The caller's own ``DJANGO_*`` and ``CELERY_*`` variables are left out, so
    a bench measures the documented configuration, not the shell's.
    """
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    return {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "boot.settings",
        "DJANGO_CONFIGURATION": "Production",
        "SECRET_KEY": "bench-only-secret-not-the-published-dev-key",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Loopback without TLS: no redirect to https, cookies sent over http.
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_PROXY_SSL_HEADER": "",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "DATABASE_URL": database_url,
        "MEDIA_ROOT": str(media),
        "STORAGE_BACKEND": "local",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def manage(env: dict[str, str], *args: str) -> str:
    """``manage.py`` in a subprocess; its stdout, or the command's output as the error."""
    out = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(out.stdout + out.stderr)
    return out.stdout
