"""The Makefile and scripts/bootstrap.sh, run as a user runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, subprocess_env


def find_uv() -> str:
    uv = shutil.which("uv") or str(ROOT / ".data" / "tools" / "bin" / "uv")
    if not Path(uv).exists():
        pytest.skip("no uv on PATH or in .data/tools (make test installs it there)")
    return uv


def user_shell_env(**extra: str) -> dict[str, str]:
    """The environment of a shell, not of a recipe: `make test` exports MAKELEVEL,
    which makes any make started from here print "Entering directory" lines."""
    # Filtered after the update too: callers pass subprocess_env(), which
    # copies os.environ (MAKELEVEL included, under `make test`).
    env = {**os.environ, **extra}
    return {
        k: v for k, v in env.items() if k not in {"MAKELEVEL", "MAKEFLAGS", "MFLAGS", "VIRTUAL_ENV"}
    }


@pytest.mark.processes
@pytest.mark.slow
def test_bootstrap_keeps_an_unchanged_venv(tmp_path):
    """A second bootstrap neither deletes nor re-creates .venv (it once did on
    every make target, under running processes, when python was a pyenv shim)."""
    for name in ("pyproject.toml", "uv.lock", ".python-version", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", tmp_path / "scripts" / "bootstrap.sh")
    (tmp_path / ".data" / "tools" / "bin").mkdir(parents=True)
    (tmp_path / ".data" / "tools" / "bin" / "uv").symlink_to(find_uv())

    def bootstrap() -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "scripts/bootstrap.sh"],
            cwd=tmp_path,
            # Compiling this throwaway venv's ~10 000 modules would be a
            # minute of CPU that says nothing about keeping it.
            env={**user_shell_env(), "UV_COMPILE_BYTECODE": "0"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    first = bootstrap()
    assert first.returncode == 0, first.stderr
    cfg = tmp_path / ".venv" / "pyvenv.cfg"
    before = cfg.stat()

    second = bootstrap()
    assert second.returncode == 0, second.stderr
    assert "virtual environment" not in second.stderr, second.stderr
    # Nothing to do, nothing said: every `make manage` printed uv's sync
    # report ("Bytecode compiled 10277 files") before the command's output.
    assert second.stderr == "", second.stderr
    after = cfg.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert second.stdout.strip().splitlines()[-1].endswith("uv")


@pytest.mark.processes
@pytest.mark.slow
def test_make_manage_prints_only_the_commands_output(transactional_db):
    """TOKEN=$(make manage ARGS="create_token …") captures a token that works."""
    from accounts.services.tokens import token_authenticate
    from accounts.services.users import user_create

    find_uv()
    user = user_create(email="runner@example.com", password=None)
    done = subprocess.run(
        ["make", "manage", 'ARGS=create_token runner@example.com "runner 1"'],
        cwd=ROOT,
        env=user_shell_env(**{k: v for k, v in subprocess_env().items() if k != "VIRTUAL_ENV"}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    assert token_authenticate(raw=lines[0]) == user
    assert "shown once" in done.stderr


@pytest.mark.processes
def test_make_stop_db_twice_exits_0(tmp_path):
    """`make stop-db` on a cluster that is not running (stopped already) says so, exit 0."""
    find_uv()
    data = tmp_path / "cluster"
    data.mkdir()
    (data / "DOORITO_CLUSTER").write_text("created by doorito scripts/ensure_db.py\n")
    (data / "PG_VERSION").write_text("16\n")
    for _ in range(2):
        done = subprocess.run(
            ["make", "stop-db"],
            cwd=ROOT,
            env=user_shell_env(DOORITO_PG_DATA=str(data)),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        assert "the project-local cluster is not running" in done.stdout


@pytest.mark.processes
@pytest.mark.slow
def test_make_manage_create_user_without_a_terminal(transactional_db):
    """`make manage ARGS="create_user … --staff"` from a script: a clear error
    naming --password-stdin and --no-password (it was an EOFError traceback),
    and --password-stdin then works through make."""
    from accounts.models import User

    find_uv()
    env = user_shell_env(**{k: v for k, v in subprocess_env().items() if k != "VIRTUAL_ENV"})

    def manage(args: str, stdin: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["make", "--no-print-directory", "manage", f"ARGS={args}"],
            cwd=ROOT,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            # No controlling terminal, as under CI or a scheduler.
            start_new_session=True,
        )

    refused = manage("create_user ops@example.com --staff", "")
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr, refused.stderr
    assert "--password-stdin" in refused.stderr and "--no-password" in refused.stderr
    assert not User.objects.exists()

    made = manage("create_user ops@example.com --staff --password-stdin", "a-Long-passw0rd\n")
    assert made.returncode == 0, made.stderr
    assert User.objects.get(email="ops@example.com").check_password("a-Long-passw0rd")


@pytest.mark.processes
@pytest.mark.parametrize(("given", "eager"), [(None, "False"), ("true", "True")])
def test_make_manage_sends_tasks_to_the_worker_as_make_run_does(given, eager):
    """Dev's eager default would run `make manage`'s tasks in its own process,
    and `status` beside `make run` said it "cannot check a worker"."""
    find_uv()
    env = user_shell_env()
    for name in [n for n in env if n.startswith(("DJANGO_", "CELERY_"))]:
        del env[name]  # Dev, as a new user has it
    if given is not None:
        env["CELERY_TASK_ALWAYS_EAGER"] = given
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "manage",
            "ARGS=shell --verbosity 0 -c 'from django.conf import settings; "
            "print(settings.CONFIGURATION, settings.CELERY_TASK_ALWAYS_EAGER)'",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["boot.settings.Dev", eager]
