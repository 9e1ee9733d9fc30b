"""The in-process settings loader the settings tests use.

Each configuration is evaluated in this process as a fresh process would
evaluate it: ``boot.settings`` (with its parts, ``boot.settings_parts``) is
imported anew through django-configurations' importer under exactly the
environment given (``resolve_settings``), and a throwaway Celery app reads
the result the way ``boot.celery``'s app reads Django's settings
(``probe``). Nothing of it outlives the call: the modules, ``os.environ``
and Django's settings are put back (the ``nothing_leaks`` fixture checks).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest
from celery import Celery
from django.conf import Settings

SETTINGS_MODULE = "boot.settings"
# The modules boot.settings is made of; each reads the environment when
# imported, so a configuration is resolved with all of them imported anew.
SETTINGS_PARTS = "boot.settings_parts"

# What docs/operations.md ("Running in production") sets, besides
# DATABASE_URL, which the checks do not need.
PRODUCTION_ENV = {
    "DJANGO_CONFIGURATION": "Production",
    "SECRET_KEY": "q7Yb2-production-example-key-0123456789-abcdefghijklmnop",
    "ALLOWED_HOSTS": "files.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://files.example.com",
    "SITE_URL": "https://files.example.com",
}


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


def settings_modules() -> dict[str, ModuleType]:
    """The loaded modules of ``boot.settings`` and its parts, by name."""
    return {
        name: module
        for name, module in sys.modules.items()
        if name in (SETTINGS_MODULE, SETTINGS_PARTS) or name.startswith(f"{SETTINGS_PARTS}.")
    }


def resolve_settings(configuration: str, env: Mapping[str, str]) -> Settings:
    """Django's settings for ``configuration`` as a process with exactly ``env`` has them.

    The values read the environment while ``boot.settings`` and its parts
    run (class attributes of django-configurations), so the modules are
    imported anew, through django-configurations' own importer
    (``pre_setup``, ``setup``, properties, ``post_setup``), into Django's
    ``Settings``. The loaded modules and the environment are put back
    afterwards.
    """
    from configurations import importer

    import boot

    assert importer.installed, "boot.celery installs django-configurations' importer"
    saved_modules = settings_modules()
    assert SETTINGS_MODULE in saved_modules
    for name in saved_modules:
        del sys.modules[name]
    saved_attributes = {name: vars(boot)[name] for name in ("settings", "settings_parts")}
    env = {**env, "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE, "DJANGO_CONFIGURATION": configuration}
    try:
        with exact_environ(env), warnings.catch_warnings():
            # The importer's loader has load_module() only, as at startup.
            warnings.simplefilter("ignore", ImportWarning)
            return Settings(SETTINGS_MODULE)
    finally:
        for name in settings_modules():
            del sys.modules[name]
        sys.modules.update(saved_modules)
        vars(boot).update(saved_attributes)


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
    """This process's environment without what configures Doorito, plus ``env``.

    That includes this process's pytest-xdist worker id (``Test`` names its
    broker's database after it): a configuration loaded here sees a worker
    id only when ``env`` gives one.
    """
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    clean.pop("DATABASE_URL", None)
    clean.pop("PYTEST_XDIST_WORKER", None)
    clean.update(env)
    return clean


def load(configuration: str, **env: str) -> dict:
    return probe(resolve_settings(configuration, clean_env(**env)))


@pytest.fixture
def nothing_leaks() -> Iterator[None]:
    """Loading a configuration leaves this process's settings, modules and environment alone."""
    from django.conf import settings

    import boot

    def state() -> tuple:
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        attributes = (vars(boot)["settings"], vars(boot)["settings_parts"])
        return settings_modules(), attributes, settings._wrapped, env

    before = state()
    yield
    after = state()
    assert after[:3] == before[:3]
    assert after[3] == before[3]
