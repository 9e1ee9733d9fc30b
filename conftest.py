"""Shared fixtures: users, a webhook receiver, free ports, temporary MEDIA_ROOT,
real Celery workers and beat, and the helpers that wait for them.

Every fixture more than one app's tests use lives here, once.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from scripts.private_cluster import free_port  # noqa: F401 - shared with the tests

ROOT = Path(__file__).resolve().parent
# Fixture modules shared by every app's tests (registered once, here).
pytest_plugins = ["tests.fixtures.storage", "tests.fixtures.clusters", "tests.fixtures.clamd"]
# The password of the ``user``/``other_user``/``staff_user`` fixtures.
PASSWORD = "correct-horse-battery-staple"  # noqa: S105


@pytest.fixture
def user(db):
    from accounts.models import User

    return User.objects.create_user("alice@example.com", PASSWORD)


@pytest.fixture
def other_user(db):
    from accounts.models import User

    return User.objects.create_user("bob@example.com", PASSWORD)


@pytest.fixture
def staff_user(db):
    from accounts.models import User

    return User.objects.create_user("staff@example.com", PASSWORD, is_staff=True)


@pytest.fixture
def receiver():
    """A real HTTP receiver on 127.0.0.1 (``common/tests/receivers.py``)."""
    from common.tests.receivers import Receiver

    r = Receiver()
    yield r
    r.close()


# Tests that start processes (Celery workers, beat, gunicorn, PostgreSQL
# clusters, make, a fresh interpreter) carry this marker. They run in
# PROCESS_LANES xdist groups, each one test after another, so at most that
# many run at once beside the in-process tests: they neither starve each
# other of the two cores nor race for the Redis/RabbitMQ queues.
# ``_spawning_is_marked`` fails a test that spawns without the marker.
PROCESSES = "processes"
PROCESS_LANES = 2
# Rough seconds each module's process tests take (``--durations``), to
# balance the lanes; a module not named counts 10.
PROCESS_MODULE_SECONDS = {
    "tests/test_database_restart.py": 110,
    "common/tests/test_delivery_faults.py": 90,
    "tests/test_beat.py": 80,
    "tests/test_scale_out.py": 55,
    "tests/test_connection_budget.py": 55,
    "web/tests/test_gunicorn_worker.py": 30,
    "common/tests/test_isolation.py": 50,
    "tests/test_ensure_db.py": 47,
    "frontend/tests/test_browser_journey.py": 41,
    "frontend/tests/test_browser_upload_resume.py": 35,
    "tests/test_run_command.py": 40,
    "common/tests/test_worker.py": 40,
    "monitoring/tests/test_status.py": 34,
    "tests/test_brokers.py": 26,
    "tests/test_worker.py": 25,
    "tests/test_make.py": 20,
}


def _process_lanes(modules: set[str]) -> dict[str, str]:
    """Each module's lane: the heaviest first, each to the lane with least so far."""
    load = [0] * PROCESS_LANES
    lanes = {}
    for module in sorted(modules, key=lambda m: (-PROCESS_MODULE_SECONDS.get(m, 10), m)):
        lane = load.index(min(load))
        load[lane] += PROCESS_MODULE_SECONDS.get(module, 10)
        lanes[module] = f"{PROCESSES}-{lane + 1}"
    return lanes


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the group markers
def pytest_collection_modifyitems(config, items) -> None:
    # pytest-xdist tells items apart by node id: of two with one id it runs
    # one and says nothing about the other.
    counts = Counter(item.nodeid for item in items)
    twins = sorted(nodeid for nodeid, n in counts.items() if n > 1)
    if twins:
        raise pytest.UsageError(f"tests share a node id (xdist would run only one): {twins[:5]}")
    for item in items:
        if "celery_worker" in getattr(item, "fixturenames", ()):
            item.add_marker(PROCESSES)
    spawning = [item for item in items if item.get_closest_marker(PROCESSES)]
    lanes = _process_lanes({item.nodeid.split("::")[0] for item in spawning})
    for item in spawning:
        item.add_marker(pytest.mark.xdist_group(lanes[item.nodeid.split("::")[0]]))


@pytest.fixture(autouse=True)
def _spawning_is_marked(request, monkeypatch) -> Iterator[None]:
    """A test that starts a process must say so (``@pytest.mark.processes``)."""
    if request.node.get_closest_marker(PROCESSES):
        yield
        return
    spawned: list[str] = []
    original = subprocess.Popen.__init__

    def watching(self, args, *rest, **kwargs):
        spawned.append(str(args)[:200])
        original(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", watching)
    yield
    if spawned:
        pytest.fail(
            f"this test started {spawned[0]} but is not marked @pytest.mark.processes "
            "(conftest.py: such tests run in their own serial group)"
        )


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    storages = dict(settings.STORAGES)
    if storages["default"]["BACKEND"].endswith("FileSystemStorage"):
        storages["default"] = {**storages["default"], "OPTIONS": {"location": settings.MEDIA_ROOT}}
        settings.STORAGES = storages


@pytest.fixture(scope="session", autouse=True)
def _broker_is_the_test_database(django_db_setup) -> Iterator[None]:
    """The broker is this run's test database; its pooled connections go at the end.

    Under pytest-xdist each worker has a database of its own
    (``test_<name>_gw0``, …); the SQL broker must name the same one, so that
    a worker subprocess and the test share one message table, and two
    xdist workers never share one. Closing the pool (and the upload locks'
    connection) lets pytest-django drop the database at the end.
    """
    from boot.celery import app
    from boot.settings import broker_url_for
    from broker import dispose_engines
    from portal.services.tus.locks import close_lock_connection

    if app.conf.broker_url.startswith("sqla+"):
        url = broker_url_for(database_url_for_tests())
        settings.CELERY_BROKER_URL = url
        app.conf.broker_url = url
    yield

    app.pool.force_close_all()
    dispose_engines()
    close_lock_connection()


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
    """A graceful stop: SIGTERM to the main process, then SIGKILL to the group.

    The signal goes to the main process only: a Celery worker stops its pool
    children itself, and a child signalled directly while it held the pool's
    queue lock left the parent waiting on that lock forever at exit.
    """
    if proc.poll() is not None:
        return
    import signal

    proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    kill_process(proc)


def kill_process(proc: subprocess.Popen) -> None:
    """SIGKILL the process and everything in its session: a test's teardown.

    A test has asserted what it needed by then; waiting for a graceful stop
    cost each worker test 5-15 s.
    """
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


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
        kill_process(worker.proc)
