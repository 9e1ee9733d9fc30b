"""Pointing this process and the workers it starts at another broker (RabbitMQ, Redis,
another database), for tests that need one."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from kombu import pools


def require_server(host: str, port: int, name: str) -> None:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        reason = f"{name} is not reachable at {host}:{port} ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; under CI=true this test must run")
        pytest.skip(reason)


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A vhost of its own (so no other worker on the machine takes our tasks),
    made with rabbitmqctl where it can; the default vhost otherwise."""
    ctl = shutil.which("rabbitmqctl") or ""
    vhost = f"doorito-test-{os.getpid()}-{random.randrange(10**6)}"

    def run(*args: str) -> bool:
        done = subprocess.run([ctl, *args], capture_output=True, timeout=60, check=False)
        return done.returncode == 0

    if (
        ctl
        and run("add_vhost", vhost)
        and run("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    ):
        try:
            yield vhost
        finally:
            run("delete_vhost", vhost)
    else:
        yield "/"


@contextmanager
def publishing_to(settings, url: str) -> Iterator[None]:
    """This process sends its tasks (the on-commit delivery runs, the ping)
    through ``url``, as the worker it starts reads from it."""
    from boot.celery import app

    def drop_connections() -> None:
        # app.pool is kombu's global pool for the broker URL. Closing it alone
        # left the closed pool in kombu's registry, and every later test on
        # the default broker was handed it again ("Acquire on closed pool"):
        # close and forget them all.
        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    old = app.conf.broker_url
    settings.CELERY_BROKER_URL = url  # the worker's environment (conftest.subprocess_env)
    drop_connections()
    app.conf.broker_url = url
    try:
        yield
    finally:
        drop_connections()
        app.conf.broker_url = old
