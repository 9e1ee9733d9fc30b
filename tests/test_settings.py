"""Settings load per configuration, and the README's env names are the names read."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

PROBE = """
import json
import boot
from boot.celery import app
from django.conf import settings
from portal.storage import site_url
c = app.conf
print(json.dumps({
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
    "db_name": settings.DATABASES["default"]["NAME"],
    "db_port": settings.DATABASES["default"]["PORT"],
    "debug": settings.DEBUG,
    "ttl": settings.FILE_UPLOAD_TTL_HOURS,
    "prepare_threshold": settings.DATABASES["default"].get("OPTIONS", {}).get("prepare_threshold"),
    "hsts": settings.SECURE_HSTS_SECONDS,
    "hsts_subdomains": settings.SECURE_HSTS_INCLUDE_SUBDOMAINS,
    "ssl_redirect": settings.SECURE_SSL_REDIRECT,
    "proxy_ssl_header": settings.SECURE_PROXY_SSL_HEADER,
    "cors_all": settings.CORS_ALLOW_ALL_ORIGINS,
    "cors_origins": settings.CORS_ALLOWED_ORIGINS,
    "cors_credentials": settings.CORS_ALLOW_CREDENTIALS,
    "site_url_without_request": site_url(),
}))
"""


def load(configuration: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    clean.pop("DATABASE_URL", None)
    clean.update({"DJANGO_SETTINGS_MODULE": "boot.settings", "DJANGO_CONFIGURATION": configuration})
    clean.update(env)
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


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


def test_production_requires_secret_key_and_hosts():
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "ALLOWED_HOSTS")}
    clean.update({"DJANGO_SETTINGS_MODULE": "boot.settings", "DJANGO_CONFIGURATION": "Production"})
    out = subprocess.run(
        [sys.executable, "-c", "import boot"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
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


# What docs/operations.md ("Running in production") sets, besides
# DATABASE_URL, which the checks below do not need.
PRODUCTION_ENV = {
    "DJANGO_CONFIGURATION": "Production",
    "SECRET_KEY": "q7Yb2-production-example-key-0123456789-abcdefghijklmnop",
    "ALLOWED_HOSTS": "files.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://files.example.com",
    "SITE_URL": "https://files.example.com",
}


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CELERY_", "SECURE_", "CORS_"))
        and k not in ("SECRET_KEY", "ALLOWED_HOSTS", "DEBUG")
    }
    clean.update({"DJANGO_SETTINGS_MODULE": "boot.settings", **env})
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_is_clean_with_the_documented_production_settings():
    out = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION_ENV)
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


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SECRET_KEY": "dev-insecure-secret-key-change-me"}, "published development key"),
        ({"DEBUG": "true"}, "DEBUG=true is refused in Production"),
    ],
)
def test_production_refuses_to_start_with_dev_key_or_debug(env, message):
    for args in (["-c", "import boot.wsgi"], ["manage.py", "check"]):
        out = _run(args, **{**PRODUCTION_ENV, **env})
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
