"""Settings load per configuration, and the README's env names are the names read.

Each configuration is evaluated in this process as a fresh process would
evaluate it: ``boot.settings`` is imported anew through django-configurations'
importer under exactly the environment given (``resolve_settings``), and a
throwaway Celery app reads the result the way ``boot.celery``'s app reads
Django's settings (``probe``). Nothing of it outlives the call: the module,
``os.environ`` and Django's settings are put back (``_nothing_leaks`` checks).

What only a fresh interpreter shows (``manage.py``, ``import boot.wsgi``)
runs in forked children of one helper interpreter (``entry_points``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest
from celery import Celery
from django.conf import Settings
from sqlalchemy.engine import make_url

from conftest import ROOT

SETTINGS_MODULE = "boot.settings"


@contextmanager
def exact_environ(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` is exactly ``env`` inside; the old one is put back after."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        time.tzset()  # Django's Settings sets TZ from TIME_ZONE


def resolve_settings(configuration: str, env: Mapping[str, str]) -> Settings:
    """Django's settings for ``configuration`` as a process with exactly ``env`` has them.

    The values read the environment while ``boot.settings`` runs (class
    attributes of django-configurations), so the module is imported anew,
    through django-configurations' own importer (``pre_setup``, ``setup``,
    properties, ``post_setup``), into Django's ``Settings``. The loaded
    ``boot.settings`` module and the environment are put back afterwards.
    """
    from configurations import importer

    import boot

    assert importer.installed, "boot.celery installs django-configurations' importer"
    saved_module = sys.modules.pop(SETTINGS_MODULE)
    saved_attribute = vars(boot)["settings"]
    env = {**env, "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE, "DJANGO_CONFIGURATION": configuration}
    try:
        with exact_environ(env), warnings.catch_warnings():
            # The importer's loader has load_module() only, as at startup.
            warnings.simplefilter("ignore", ImportWarning)
            return Settings(SETTINGS_MODULE)
    finally:
        sys.modules[SETTINGS_MODULE] = saved_module
        vars(boot)["settings"] = saved_attribute


@contextmanager
def django_settings(resolved: Any) -> Iterator[None]:
    """``django.conf.settings`` is ``resolved`` inside (as override_settings swaps it)."""
    from django.conf import settings

    saved = settings._wrapped
    settings._wrapped = resolved
    try:
        yield
    finally:
        settings._wrapped = saved


def celery_values(c: Any) -> dict[str, Any]:
    """What the tests check of a Celery app's configuration."""
    return {
        "broker_url": c.broker_url,
        "always_eager": c.task_always_eager,
        "accept_content": list(c.accept_content),
        "task_serializer": c.task_serializer,
        "result_serializer": c.result_serializer,
        "timezone": c.timezone,
        "track_started": c.task_track_started,
        "time_limit": c.task_time_limit,
        "soft_time_limit": c.task_soft_time_limit,
        "result_expires": getattr(c.result_expires, "total_seconds", lambda: c.result_expires)(),
        "result_backend": c.result_backend,
        "default_queue": c.task_default_queue,
        "queues": sorted(q.name for q in c.task_queues),
        "beat_scheduler": c.beat_scheduler,
    }


def probe(s: Any) -> dict:
    """The values a process with settings ``s`` has, as JSON would carry them."""
    from portal.storage import site_url

    # boot.celery's app, built the same way: CELERY_* names of the settings.
    app = Celery("settings-probe", set_as_current=False, fixups=[])
    app.config_from_object(s, namespace="CELERY")
    with django_settings(s):
        site_url_without_request = site_url()
    db = s.DATABASES["default"]
    values = {
        **celery_values(app.conf),
        "db_name": db["NAME"],
        "db_port": db["PORT"],
        "debug": s.DEBUG,
        "ttl": s.FILE_UPLOAD_TTL_HOURS,
        "prepare_threshold": db.get("OPTIONS", {}).get("prepare_threshold"),
        "hsts": s.SECURE_HSTS_SECONDS,
        "hsts_subdomains": s.SECURE_HSTS_INCLUDE_SUBDOMAINS,
        "ssl_redirect": s.SECURE_SSL_REDIRECT,
        "proxy_ssl_header": s.SECURE_PROXY_SSL_HEADER,
        "cors_all": s.CORS_ALLOW_ALL_ORIGINS,
        "cors_origins": s.CORS_ALLOWED_ORIGINS,
        "cors_credentials": s.CORS_ALLOW_CREDENTIALS,
        "site_url_without_request": site_url_without_request,
    }
    return json.loads(json.dumps(values))


def clean_env(**env: str) -> dict[str, str]:
    """This process's environment without what configures Doorito, plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    clean.pop("DATABASE_URL", None)
    clean.update(env)
    return clean


def load(configuration: str, **env: str) -> dict:
    return probe(resolve_settings(configuration, clean_env(**env)))


@pytest.fixture(autouse=True)
def _nothing_leaks() -> Iterator[None]:
    """Loading a configuration leaves this process's settings, modules and environment alone."""
    from django.conf import settings

    import boot

    def state() -> tuple:
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        return sys.modules[SETTINGS_MODULE], vars(boot)["settings"], settings._wrapped, env

    before = state()
    yield
    after = state()
    assert after[:3] == before[:3]
    assert after[3] == before[3]


def test_the_probe_reads_celery_settings_as_boot_celery_does():
    """For this process's own configuration and environment, the throwaway
    app of ``probe`` has the values ``boot.celery``'s app has."""
    from django.conf import settings

    from boot.celery import app

    configuration = settings.CONFIGURATION.rsplit(".", 1)[1]
    conf = probe(resolve_settings(configuration, os.environ))
    live = json.loads(json.dumps(celery_values(app.conf)))
    assert {k: conf[k] for k in live} == live
    assert conf["broker_url"] == settings.CELERY_BROKER_URL


# --- Entry points, each in a fresh process ------------------------------------

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

# What docs/operations.md ("Running in production") sets, besides
# DATABASE_URL, which the checks below do not need.
PRODUCTION_ENV = {
    "DJANGO_CONFIGURATION": "Production",
    "SECRET_KEY": "q7Yb2-production-example-key-0123456789-abcdefghijklmnop",
    "ALLOWED_HOSTS": "files.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://files.example.com",
    "SITE_URL": "https://files.example.com",
}

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


@pytest.mark.parametrize("configuration", ["Dev", "Test"])
def test_seed_celery_values(configuration):
    conf = load(configuration)
    assert conf["accept_content"] == ["json"]
    assert conf["task_serializer"] == conf["result_serializer"] == "json"
    assert conf["timezone"] == "UTC"
    assert conf["track_started"] is True
    assert conf["time_limit"] == 300
    assert conf["soft_time_limit"] == 240
    assert conf["result_expires"] == 86400
    assert conf["result_backend"] == "django-db"
    assert conf["default_queue"] == "default"
    assert conf["queues"] == ["default", "high"]
    assert conf["beat_scheduler"] == "django_celery_beat.schedulers:DatabaseScheduler"
    assert conf["broker_url"].startswith("sqla+postgresql+psycopg://")


def test_dev_is_eager_by_default_and_overridable():
    assert load("Dev")["always_eager"] is True
    assert load("Dev", CELERY_TASK_ALWAYS_EAGER="false")["always_eager"] is False
    assert load("Test")["always_eager"] is False
    assert load("Test", CELERY_TASK_ALWAYS_EAGER="true")["always_eager"] is True


def test_production_requires_secret_key_and_hosts(entry_points):
    out = entry_points["import boot without secrets"]
    assert out.returncode != 0
    assert "SECRET_KEY" in out.stderr or "ALLOWED_HOSTS" in out.stderr


def test_production_loads_with_required_env_and_is_never_eager():
    conf = load(
        "Production",
        SECRET_KEY="s" * 50,
        ALLOWED_HOSTS="files.example.com",
        CELERY_TASK_ALWAYS_EAGER="true",
    )
    assert conf["always_eager"] is False
    assert conf["debug"] is False
    assert conf["time_limit"] == 300


def test_documented_names_are_the_names_read():
    conf = load(
        "Dev",
        DATABASE_URL="postgres://someone@127.0.0.1:6543/elsewhere",
        CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//",
        CELERY_TASK_ALWAYS_EAGER="false",
        FILE_UPLOAD_TTL_HOURS="48",
    )
    assert conf["db_name"] == "elsewhere"
    assert conf["db_port"] == 6543
    assert conf["broker_url"] == "amqp://guest:guest@127.0.0.1:5672//"
    assert conf["always_eager"] is False
    assert conf["ttl"] == 48


def test_prefixed_names_are_not_read():
    conf = load("Dev", DJANGO_DATABASE_URL="postgres://x@127.0.0.1:1/wrong")
    assert conf["db_name"] == "doorito"


def test_broker_defaults_to_the_database():
    conf = load("Dev", DATABASE_URL="postgres://u:pw@db.internal:5433/files")
    assert conf["broker_url"] == "sqla+postgresql+psycopg://u:pw@db.internal:5433/files"


def test_broker_keeps_the_databases_credentials_and_ipv6_host():
    conf = load("Dev", DATABASE_URL="postgres://app:p%40ss%2Fw%25%3A@[::1]:5433/files")
    url = make_url(conf["broker_url"])
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "app",
        "p@ss/w%:",
        "::1",
        5433,
        "files",
    )
    assert (conf["db_name"], conf["db_port"]) == ("files", 5433)


def created_test_database(s: Any, *, xdist_worker: str | None) -> str:
    """The name of the test database pytest-django creates for settings ``s``.

    Django's creation names it (``test_`` + NAME unless TEST NAME is set);
    in an xdist worker pytest-django first suffixes it with the worker's id.
    """
    from django.db.backends.postgresql.base import DatabaseWrapper
    from pytest_django.fixtures import _set_suffix_to_test_databases

    if xdist_worker:
        with django_settings(s):
            _set_suffix_to_test_databases(suffix=xdist_worker)
    db = s.DATABASES["default"]
    db.setdefault("TEST", {}).setdefault("NAME", None)
    # What create_test_db() names the database it creates.
    return DatabaseWrapper(db).creation._get_test_db_name()  # type: ignore[attr-defined]


@pytest.mark.parametrize("worker", [None, "gw0", "gw11"])
def test_test_broker_names_the_database_pytest_django_creates(monkeypatch, worker):
    """In the pytest-xdist worker gw0, pytest-django runs against test_<name>_gw0."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    env = {"DATABASE_URL": "postgres://u:p%40w@db.internal:5433/files"}
    if worker:
        env["PYTEST_XDIST_WORKER"] = worker
    s = resolve_settings("Test", clean_env(**env))
    created = created_test_database(s, xdist_worker=worker)
    assert created == (f"test_files_{worker}" if worker else "test_files")
    url = make_url(s.CELERY_BROKER_URL)
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "u",
        "p@w",
        "db.internal",
        5433,
        created,
    )
    # A given broker URL is used as given.
    given = "sqla+postgresql+psycopg://broker@elsewhere:5432/messages"
    broker = resolve_settings("Test", clean_env(**env, CELERY_BROKER_URL=given)).CELERY_BROKER_URL
    assert broker == given


def test_prepared_statements_are_on_unless_switched_off():
    # psycopg ignores prepare=True when the threshold is None (Django's default).
    assert load("Test")["prepare_threshold"] is not None
    assert load("Test", DATABASE_PREPARED_STATEMENTS="false")["prepare_threshold"] is None


def env_names_read() -> set[str]:
    """Every environment name boot/settings.py reads, found in its source."""
    source = (ROOT / "boot" / "settings.py").read_text()
    names = set(re.findall(r"^\s+([A-Z][A-Z0-9_]+) = (?:env|values\.\w+)\(", source, re.M))
    names |= set(re.findall(r'environ_name="([A-Z0-9_]+)"', source))
    names = {n for n in names if not n.endswith("_FROM_ENV")}
    return names | {"DJANGO_CONFIGURATION"}


def test_readme_lists_every_env_name_read():
    readme = (ROOT / "README.md").read_text()
    names = env_names_read()
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER"} <= names
    missing = sorted(n for n in names if f"| `{n}`" not in readme)
    assert not missing, f"README configuration table lacks {missing}"


def test_check_deploy_is_clean_with_the_documented_production_settings(entry_points):
    out = entry_points["check --deploy"]
    assert out.returncode == 0, out.stdout + out.stderr
    assert "System check identified no issues" in out.stdout
    assert "WARNINGS" not in out.stdout + out.stderr


def test_production_defaults_are_https_only():
    conf = load(
        "Production", **{k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_CONFIGURATION"}
    )
    assert conf["hsts"] == 365 * 24 * 3600
    assert conf["hsts_subdomains"] is False
    assert conf["ssl_redirect"] is True
    assert conf["proxy_ssl_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert load("Dev")["hsts"] == 0 and load("Dev")["ssl_redirect"] is False


def test_production_https_settings_come_from_the_environment():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_CONFIGURATION"}
    conf = load(
        "Production",
        **env,
        SECURE_HSTS_SECONDS="60",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_SSL_REDIRECT="false",
        SECURE_PROXY_SSL_HEADER="",
    )
    assert (conf["hsts"], conf["hsts_subdomains"], conf["ssl_redirect"]) == (60, True, False)
    assert conf["proxy_ssl_header"] == []


@pytest.mark.parametrize(("env", "message"), REFUSALS)
def test_production_refuses_to_start_with_dev_key_or_debug(entry_points, env, message):
    for args in REFUSING_ENTRY_POINTS:
        out = entry_points[refusal(args, message)]
        assert out.returncode != 0
        assert "ImproperlyConfigured" in out.stderr and message in out.stderr


@pytest.mark.parametrize(
    ("value", "all_", "origins", "credentials"),
    [
        ("", False, [], True),
        (
            "https://a.example, https://b.example/",
            False,
            ["https://a.example", "https://b.example"],
            True,
        ),
        ("*", True, [], False),
        ("null,https://a.example", False, ["https://a.example"], True),
    ],
)
def test_cors_origins_from_the_environment(value, all_, origins, credentials):
    conf = load("Test", CORS_ALLOWED_ORIGINS=value)
    assert (conf["cors_all"], conf["cors_origins"], conf["cors_credentials"]) == (
        all_,
        origins,
        credentials,
    )


def env_names_read_elsewhere() -> set[str]:
    """Names the scripts, Procfile.dev, entry points and deploy/ configs read themselves."""
    found: set[str] = set()
    files = [*ROOT.glob("scripts/*.py"), *ROOT.glob("scripts/*.sh"), ROOT / "Procfile.dev"]
    files += [ROOT / "manage.py", *ROOT.glob("boot/*.py"), *ROOT.glob("deploy/*.py")]
    for path in files:
        text = path.read_text()
        found |= set(
            re.findall(r'os\.environ(?:\.get|\.setdefault)?[(\[]"([A-Z][A-Z0-9_]+)"', text)
        )
        found |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", text))
    return found


def readme_table_names() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", section, re.M))


def env_example_names() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, re.M))


def test_env_example_readme_and_settings_name_the_same_variables():
    """Every name the settings read is in the README table and in .env.example;
    the two list the same names; neither names a variable nothing reads."""
    settings_names = env_names_read()
    readme = readme_table_names()
    example = env_example_names()
    assert sorted(settings_names - readme) == [], "README configuration table lacks these"
    assert sorted(settings_names - example) == [], ".env.example lacks these"
    assert sorted(readme ^ example) == [], "README and .env.example differ"
    read = settings_names | env_names_read_elsewhere()
    assert sorted(readme - read) == [], "documented, but nothing reads them"
