"""The entry points refuse or accept a configuration as a fresh process does.

What only a fresh interpreter shows (``manage.py check --deploy``,
Production's refusals in ``manage.py`` and ``import boot.wsgi``, ``import
boot`` without secrets) runs in forked children of one helper interpreter
(``entry_points``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from tests.settings_probe import (
    PRODUCTION_ENV,
    nothing_leaks,  # noqa: F401 - the fixture pytestmark applies
)

# The helper interpreter is a process of its own (conftest.py, "processes").
pytestmark = [pytest.mark.processes, pytest.mark.usefixtures("nothing_leaks")]

ENTRY_POINT_RUNNER = r'''
import json, os, runpy, signal, sys, tempfile, traceback

# Third-party modules the entry points import, loaded once before forking.
# None reads Django's settings or a variable the cases set when imported;
# the project's modules, Django's settings and django-configurations'
# importer are each child's to load, as in a fresh interpreter.
import celery.app.base, kombu.transport.sqlalchemy, psycopg, sqlalchemy.orm
import django.core.management, django.db.models, django.http, django.urls
from django.conf import settings

assert not settings.configured and "boot" not in sys.modules
assert not any(type(f).__name__ == "ConfigurationImporter" for f in sys.meta_path)


def run(args, env, out, err):
    """What `python <args>` does, in this already forked child."""
    os.environ.clear()
    os.environ.update(env)
    os.dup2(out, 1)
    os.dup2(err, 2)
    signal.alarm(100)
    if args[0] == "-c":
        sys.argv = ["-c", *args[2:]]
        exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__"})
    else:
        sys.argv = list(args)
        runpy.run_path(args[0], run_name="__main__")


cases = json.load(sys.stdin)
children = {}
with tempfile.TemporaryDirectory() as tmp:
    for n, (key, (args, env)) in enumerate(cases.items()):
        paths = [os.path.join(tmp, f"{n}.{stream}") for stream in ("out", "err")]
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                run(args, env, *(os.open(p, os.O_WRONLY | os.O_CREAT) for p in paths))
                code = 0
            except SystemExit as exc:
                if exc.code is None or isinstance(exc.code, int):
                    code = exc.code or 0
                else:
                    print(exc.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        children[key] = (pid, paths)
    results = {}
    for key, (pid, paths) in children.items():
        _, status = os.waitpid(pid, 0)
        out, err = (open(p, errors="replace").read() for p in paths)
        code = os.waitstatus_to_exitcode(status)
        results[key] = {"returncode": code, "stdout": out, "stderr": err}
print(json.dumps(results))
'''

REFUSALS = [
    ({"SECRET_KEY": "dev-insecure-secret-key-change-me"}, "published development key"),
    ({"DEBUG": "true"}, "DEBUG=true is refused in Production"),
]
REFUSING_ENTRY_POINTS = (["-c", "import boot.wsgi"], ["manage.py", "check"])
CHECK_DEPLOY = ["manage.py", "check", "--deploy", "--fail-level", "WARNING"]


def _env(**env: str) -> dict[str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CELERY_", "SECURE_", "CORS_"))
        and k not in ("SECRET_KEY", "ALLOWED_HOSTS", "DEBUG")
    }
    clean.update({"DJANGO_SETTINGS_MODULE": "boot.settings", **env})
    return clean


def refusal(args: list[str], message: str) -> str:
    return f"{' '.join(args)} refusing: {message}"


def entry_point_cases() -> dict[str, tuple[list[str], dict[str, str]]]:
    """Every `python` command the tests below run: (arguments, environment) by name."""
    without_secrets = {
        k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "ALLOWED_HOSTS")
    }
    without_secrets.update(
        {"DJANGO_SETTINGS_MODULE": "boot.settings", "DJANGO_CONFIGURATION": "Production"}
    )
    cases = {
        "import boot without secrets": (["-c", "import boot"], without_secrets),
        "check --deploy": (CHECK_DEPLOY, _env(**PRODUCTION_ENV)),
    }
    for env, message in REFUSALS:
        for args in REFUSING_ENTRY_POINTS:
            cases[refusal(args, message)] = (args, _env(**{**PRODUCTION_ENV, **env}))
    return cases


@pytest.fixture(scope="module")
def entry_points() -> dict[str, subprocess.CompletedProcess]:
    """The outcome of each case of ``entry_point_cases``, by name.

    One interpreter imports the heavy libraries once and forks a child per
    case (in parallel); a child is a fresh process for everything of the
    project, and runs the command as ``python <args>`` would.
    """
    cases = entry_point_cases()
    runner_env = {k: v for k, v in _env().items() if not k.startswith("DJANGO_")}
    done = subprocess.run(
        [sys.executable, "-c", ENTRY_POINT_RUNNER],
        cwd=ROOT,
        env=runner_env,
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        name: subprocess.CompletedProcess(cases[name][0], **outcome)
        for name, outcome in results.items()
    }


def test_production_requires_secret_key_and_hosts(entry_points):
    out = entry_points["import boot without secrets"]
    assert out.returncode != 0
    assert "SECRET_KEY" in out.stderr or "ALLOWED_HOSTS" in out.stderr


def test_check_deploy_is_clean_with_the_documented_production_settings(entry_points):
    out = entry_points["check --deploy"]
    assert out.returncode == 0, out.stdout + out.stderr
    assert "System check identified no issues" in out.stdout
    assert "WARNINGS" not in out.stdout + out.stderr


@pytest.mark.parametrize(("env", "message"), REFUSALS)
def test_production_refuses_to_start_with_dev_key_or_debug(entry_points, env, message):
    for args in REFUSING_ENTRY_POINTS:
        out = entry_points[refusal(args, message)]
        assert out.returncode != 0
        assert "ImproperlyConfigured" in out.stderr and message in out.stderr
