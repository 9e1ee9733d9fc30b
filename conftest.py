"""Shared fixtures: temporary MEDIA_ROOT, a real Celery worker, live helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    storages = dict(settings.STORAGES)
    if storages["default"]["BACKEND"].endswith("FileSystemStorage"):
        storages["default"] = {**storages["default"], "OPTIONS": {"location": settings.MEDIA_ROOT}}
        settings.STORAGES = storages


@pytest.fixture(scope="session", autouse=True)
def _close_broker_connections(django_db_setup) -> Iterator[None]:
    """Drop pooled broker connections so pytest-django can drop the test database."""
    yield
    from boot.broker import dispose_engines
    from boot.celery import app

    app.pool.force_close_all()
    dispose_engines()


def database_url_for_tests() -> str:
    """The URL of the database pytest-django created for this run.

    Built with SQLAlchemy's URL, which quotes the user and password and
    brackets an IPv6 host, so dj_database_url reads back exactly these values.
    """
    from django.db import connection
    from sqlalchemy.engine import URL

    s = connection.settings_dict
    user = s["USER"] or ""
    password = s.get("PASSWORD") or None
    url = URL.create(
        "postgres",
        username=user if user or password else None,
        password=password,
        host=s["HOST"] or "127.0.0.1",
        port=int(s["PORT"] or 5432),
        database=s["NAME"],
    )
    return url.render_as_string(hide_password=False)


def subprocess_env(**extra: str) -> dict[str, str]:
    from django.conf import settings

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "boot.settings",
        "DJANGO_CONFIGURATION": "Test",
        "DATABASE_URL": database_url_for_tests(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "MEDIA_ROOT": settings.MEDIA_ROOT,
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


class WorkerProcess:
    def __init__(self, proc: subprocess.Popen, log: Path):
        self.proc = proc
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _spawn(cmd: list[str], log: Path, env: dict[str, str]) -> WorkerProcess:
    """A Celery process in its own session (so its whole group can be stopped)."""
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=subprocess_env(**env),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return WorkerProcess(proc, log)


def start_worker(
    tmp_dir: Path,
    *,
    queues: str = "high,default",
    concurrency: int = 2,
    name: str | None = None,
    **env,
):
    """``name`` (``-n``) tells workers apart in task results.

    The log is ``tmp_dir/<name or "worker">.log``.
    """
    log = tmp_dir / f"{(name or 'worker').split('@')[0]}.log"
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "boot",
        "worker",
        "-Q",
        queues,
        "-c",
        str(concurrency),
        "--loglevel=info",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if name:
        cmd += ["-n", name]
    return _spawn(cmd, log, env)


def start_beat(
    tmp_dir: Path,
    *,
    name: str = "beat",
    scheduler: str = "django_celery_beat.schedulers:DatabaseScheduler",
    **env: str,
) -> WorkerProcess:
    """The documented ``celery -A boot beat`` command, logging to ``tmp_dir/<name>.log``."""
    log = tmp_dir / f"{name}.log"
    cmd = [sys.executable, "-m", "celery", "-A", "boot", "beat", "--loglevel=info"]
    cmd += ["--scheduler", scheduler, "--schedule", str(tmp_dir / f"{name}-schedule")]
    return _spawn(cmd, log, env)


def wait_for_log(process: WorkerProcess, text: str, timeout: float = 60) -> float:
    """Waits until ``text`` appears in the process's log; returns the monotonic time seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in process.output():
            return time.monotonic()
        if process.proc.poll() is not None:
            raise RuntimeError(f"process died:\n{process.output()[-4000:]}")
        time.sleep(0.1)
    raise TimeoutError(f"{text!r} not logged within {timeout}s:\n{process.output()[-4000:]}")


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    import signal

    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def wait_until(predicate, timeout: float = 30, what: str = "condition") -> float:
    """Polls ``predicate`` every 0.1 s; returns the seconds it took to hold."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def wait_for_ping(worker: WorkerProcess, queue: str = "default", timeout: float = 60) -> dict:
    from common.tasks import ping

    deadline = time.monotonic() + timeout
    result = ping.apply_async(queue=queue)
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise RuntimeError(f"worker died:\n{worker.output()[-4000:]}")
        if result.ready():
            return result.get(timeout=1)
        time.sleep(0.2)
    raise TimeoutError(f"worker did not answer ping:\n{worker.output()[-4000:]}")


@pytest.fixture
def celery_worker(transactional_db, tmp_path) -> Iterator[WorkerProcess]:
    """A real ``celery -A boot worker -Q high,default`` on the PostgreSQL broker.

    Function-scoped and transactional: what the test commits is what the
    worker sees.
    """
    worker = start_worker(tmp_path)
    try:
        wait_for_ping(worker)
        yield worker
    finally:
        stop_process(worker.proc)
