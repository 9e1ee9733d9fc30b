"""The README's run command serves /readyz and its worker answers ping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import psycopg
import pytest
from psycopg import sql

from conftest import ROOT, free_port


@pytest.mark.processes
@pytest.mark.slow
def test_run_command_serves_readyz_and_worker_answers_ping(tmp_path):
    port = free_port()
    dbname = f"doorito_run_{port}"
    url = f"postgres://postgres@127.0.0.1:5432/{dbname}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    env.update({"DATABASE_URL": url, "WEB_PORT": str(port), "MEDIA_ROOT": str(tmp_path)})
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(
        ["bash", "scripts/run.sh"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        started = time.monotonic()
        ready = None
        # Migrations, then three processes importing Django at once: on a busy
        # 2-core machine that alone can take most of a minute.
        while time.monotonic() - started < 150:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                    ready = r.status
                    break
            except OSError:
                time.sleep(0.5)
        assert ready == 200, (tmp_path / "run.log").read_text()[-4000:]
        # Beat may still be starting: it counts once it holds the scheduler lock.
        for _ in range(10):
            status = subprocess.run(
                [sys.executable, "manage.py", "status", "--timeout", "60"],
                cwd=ROOT,
                env={**env, "DJANGO_CONFIGURATION": "Dev", "CELERY_TASK_ALWAYS_EAGER": "false"},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if status.returncode == 0:
                break
            time.sleep(3)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "beat       ok" in status.stdout
        assert "worker     ok" in status.stdout
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
            c.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
