"""The documented defaults stay inside PostgreSQL's connections (docs/operations.md).

web (``gunicorn -c deploy/gunicorn.conf.py``), a worker with ``-c 4`` and
beat, all at their defaults, on a PostgreSQL with its default
``max_connections`` of 100: under 40 uploaders and sign-in bursts they use
at most 80 % of it and answer no request with a 5xx; left idle, the web
tier gives its pooled connections back. Before the pool, 20 uploaders got
7-11 % 503s and the web tier alone held 83 connections.
"""

from __future__ import annotations

import multiprocessing
import os
import runpy
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from conftest import start_beat, start_worker, stop_process, wait_for_log
from tests.load import ConnectionCounter, Uploaders, sign_in_burst
from tests.web import WebServer, doorito_env, manage

BUDGET = 80  # of max_connections 100
PASSWORD = "budget-correct-horse"
IDLE_SECONDS = 1


# Connections of the other processes at their defaults (docs/operations.md):
# a worker with -c 4 (each pool child: Django + the broker pool of 2; the
# parent: Django, LISTEN, the broker pool) and beat (Django, the broker pool,
# the session holding the beat lock), and PostgreSQL's superuser reserve.
WORKER = 4 * (1 + 2) + (1 + 1 + 2)
BEAT = 1 + 2 + 1
RESERVED = 3


@pytest.mark.parametrize("cpus", [1, 2, 4, 8, 16, 64])
def test_the_default_sizing_fits_the_budget(cpus: int, monkeypatch) -> None:
    """The formula in docs/operations.md, from the production config itself."""
    monkeypatch.setattr(multiprocessing, "cpu_count", lambda: cpus)
    names = ("WEB_CONCURRENCY", "WEB_DB_CONNECTION_BUDGET", "BROKER_POOL_SIZE")
    for name in names:
        monkeypatch.delenv(name, raising=False)
    before = os.environ.pop("DATABASE_POOL_SIZE", None)
    try:
        conf = runpy.run_path("deploy/gunicorn.conf.py")
    finally:
        os.environ.pop("DATABASE_POOL_SIZE", None)
        if before is not None:
            os.environ["DATABASE_POOL_SIZE"] = before
    web = conf["workers"] * (conf["database_pool_size"] + conf["PER_WORKER_CONNECTIONS"])
    assert conf["database_pool_size"] >= 2
    assert web <= conf["WEB_DB_CONNECTION_BUDGET"]
    assert web + WORKER + BEAT + RESERVED <= BUDGET


def production_env(database, media: Path) -> dict[str, str]:
    return doorito_env(
        database.url,
        media,
        DJANGO_CONFIGURATION="Production",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        SECURE_PROXY_SSL_HEADER="",
        CELERY_TASK_ALWAYS_EAGER="false",
        CELERY_BROKER_URL=database.broker_url,
        DATABASE_POOL_IDLE_SECONDS=str(IDLE_SECONDS),
        STATIC_ROOT=str(media.parent / "static"),
    )


@pytest.mark.slow
@pytest.mark.processes
def test_web_worker_and_beat_stay_inside_80_connections_under_load(
    private_database, tmp_path: Path
) -> None:
    env = production_env(private_database, tmp_path / "media")
    manage(env, "collectstatic", "--noinput")
    manage(env, "create_user", "uploader@example.com", "--no-password")
    token = manage(env, "create_token", "uploader@example.com", "load").strip().splitlines()[-1]
    subprocess.run(
        [".venv/bin/python", "manage.py", "create_user", "signer@example.com", "--password-stdin"],
        input=PASSWORD + "\n",
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    web = WebServer(env, tmp_path / "web.log", "-c", "deploy/gunicorn.conf.py")
    worker = start_worker(tmp_path, concurrency=4, **env)
    beat = start_beat(tmp_path, **env)
    counter = ConnectionCounter(private_database.dsn)
    try:
        wait_for_log(worker, "ready.")
        counter.start()
        uploaders = Uploaders(web.url, token, n=40, size=256 * 1024).start()
        time.sleep(2)
        wrong = sign_in_burst(web.url, "signer@example.com", "wrong", n=50)
        right = sign_in_burst(web.url, "signer@example.com", PASSWORD, n=50)
        time.sleep(4)
        uploaders.stop()
        loaded_peak = counter.peak()

        assert uploaders.stored > 40, uploaders.outcomes
        assert set(uploaders.outcomes) == {"2xx"}, uploaders.outcomes
        assert "5xx" not in wrong and "error" not in wrong, wrong
        assert "5xx" not in right and "error" not in right, right
        # The lock-out holds under a burst (issue #21, item 3): after the
        # wrong passwords, the right one signs in nowhere (429, not 302).
        assert wrong["4xx"] >= 45, wrong
        assert right == {"4xx": 50}, right
        assert loaded_peak <= BUDGET, f"peak {loaded_peak} connections"

        # Idle: the pools close a connection per DATABASE_POOL_IDLE_SECONDS
        # each, down to one per process.
        deadline = time.monotonic() + 30
        while counter.now() > loaded_peak // 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert counter.now() <= loaded_peak // 2, (loaded_peak, counter.now())
    finally:
        counter.stop()
        web.stop()
        stop_process(worker.proc)
        stop_process(beat.proc)
    print(f"peak {loaded_peak} connections, idle {counter.now()}; {uploaders.outcomes}")


def test_the_pool_retry_pace_relies_on_attributes_psycopg_pool_still_has() -> None:
    from psycopg_pool.base import AttemptWithBackoff

    assert isinstance(AttemptWithBackoff.INITIAL_DELAY, float)
    assert isinstance(AttemptWithBackoff.DELAY_BACKOFF, float)


def test_the_quick_pool_check_relies_on_an_attribute_psycopg_pool_still_has() -> None:
    from psycopg_pool import ConnectionPool

    from common.services.connections import check_pooled_connection

    pool = ConnectionPool(kwargs={}, open=False, check=check_pooled_connection)
    assert pool._check is check_pooled_connection
