"""Settings load per configuration, and the README's env names are the names read.

Each configuration is evaluated in this process as a fresh process would
(``tests/settings_probe.py``); what only a fresh interpreter shows
(``manage.py``, ``import boot.wsgi``) is in ``test_settings_entry_points.py``.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from conftest import ROOT
from tests.settings_probe import (
    PRODUCTION_ENV,
    celery_values,
    clean_env,
    django_settings,
    load,
    nothing_leaks,  # noqa: F401 - the fixture pytestmark applies
    probe,
    resolve_settings,
)

pytestmark = pytest.mark.usefixtures("nothing_leaks")


def test_the_probe_reads_celery_settings_as_boot_celery_does():
    """For this process's own configuration and environment, the throwaway
    app of ``probe`` has the values ``boot.celery``'s app has."""
    from django.conf import settings

    from boot.celery import app

    configuration = settings.CONFIGURATION.rsplit(".", 1)[1]
    conf = probe(resolve_settings(configuration, os.environ))
    live = json.loads(json.dumps(celery_values(app.conf)))
    # The test session points the live app's broker at the database it made
    # (conftest.py), so the broker URL is left out here; the configuration's
    # own choice is checked by test_test_broker_names_the_database_pytest_django_creates.
    live.pop("broker_url")
    assert {k: conf[k] for k in live} == live
    assert conf["broker_url"].startswith("sqla+postgresql+psycopg://")


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


def test_dev_prints_mail_decoded_by_default():
    # Django's console backend printed the reset link quoted-printable, cut
    # in two by a soft line break (common/mail.py).
    dev = resolve_settings("Dev", clean_env())
    assert dev.EMAIL_BACKEND == "common.mail.ReadableConsoleEmailBackend"
    chosen = resolve_settings(
        "Dev", clean_env(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
    )
    assert chosen.EMAIL_BACKEND == "django.core.mail.backends.locmem.EmailBackend"


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
def test_test_broker_names_the_database_pytest_django_creates(worker):
    """In the pytest-xdist worker gw0, pytest-django runs against test_<name>_gw0.

    ``clean_env`` leaves out this run's own worker id, so only ``worker`` counts.
    """
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
    """Every environment name boot/settings.py and its parts read, found in their source."""
    paths = [ROOT / "boot" / "settings.py", *sorted(ROOT.glob("boot/settings_parts/*.py"))]
    source = "\n".join(path.read_text() for path in paths)
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
    """Names read by the scripts, Procfile.dev, entry points, deploy/ and the gunicorn worker."""
    found: set[str] = set()
    files = [*ROOT.glob("scripts/*.py"), *ROOT.glob("scripts/*.sh"), ROOT / "Procfile.dev"]
    files += [ROOT / "manage.py", *ROOT.glob("boot/*.py"), *ROOT.glob("deploy/*.py")]
    files.append(ROOT / "web" / "gunicorn_worker.py")
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
