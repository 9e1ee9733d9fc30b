"""Doorito settings, one class per environment (django-configurations).

Every deploy-specific value is read from an environment variable whose name is
exactly the setting name (``environ_prefix=None``): django-configurations would
otherwise read ``DJANGO_<NAME>`` and silently ignore the names the README
documents. ``tests/test_settings.py`` keeps this honest.

``Base`` holds what makes the site (secret key, hosts, apps, middleware, URLs,
templates, locale) and composes the groups of settings in
``boot/settings_parts/``: one mixin class per group, listed before
``Configuration`` so django-configurations reads their values like
``Base``'s own. ``Dev``, ``Test`` and ``Production`` below change what
differs per environment.
"""

from __future__ import annotations

import os
import sys

from configurations import Configuration, values
from dotenv import load_dotenv

from boot.settings_parts.accounts import AccountSettings
from boot.settings_parts.celery import CelerySettings, broker_url_for
from boot.settings_parts.database import DEFAULT_DATABASE_URL, DatabaseSettings
from boot.settings_parts.environment import BASE_DIR, env
from boot.settings_parts.monitoring import MonitoringSettings
from boot.settings_parts.security import SecuritySettings
from boot.settings_parts.storage import StorageSettings
from boot.settings_parts.uploads import UploadSettings
from boot.settings_parts.webhooks import WebhookSettings

# Importable from here as before (conftest.py, tests/test_broker_url.py, ...).
__all__ = [
    "BASE_DIR",
    "DEFAULT_DATABASE_URL",
    "DEV_SECRET_KEY",
    "Base",
    "Dev",
    "Production",
    "Test",
    "broker_url_for",
    "env",
]

# Published in this file, so good for nothing but development (Production refuses it).
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"  # noqa: S105


class Base(
    # Each group is a module of boot/settings_parts/: the database
    # (DATABASE_*), sign-in and mail (AUTH_*, AXES_*, EMAIL_*), static files
    # and file storage (STATIC_*, MEDIA_*, AWS_*, STORAGES), uploads
    # (FILE_UPLOAD_*, RESUMABLE_UPLOAD_*), the outbox and webhooks
    # (OUTBOX_RETENTION_HOURS, WEBHOOK_*), Celery with its task routes, the
    # beat schedule and the intervals it reads (CELERY_*, CELERY_TASK_ROUTES,
    # CELERY_BEAT_SCHEDULE, *_INTERVAL_*), the Content Security Policy and
    # CORS (SECURE_CSP, CORS_*), logging and /metrics (LOG_*, LOGGING,
    # METRICS_*). They come before Configuration: django-configurations'
    # metaclass copies the attributes of the bases last to first, so
    # Django's defaults on Configuration would hide a group listed after it.
    DatabaseSettings,
    AccountSettings,
    StorageSettings,
    UploadSettings,
    WebhookSettings,
    CelerySettings,
    SecuritySettings,
    MonitoringSettings,
    Configuration,
):
    BASE_DIR = BASE_DIR
    SECRET_KEY = env(default=DEV_SECRET_KEY)
    DEBUG = env(values.BooleanValue, False)
    ALLOWED_HOSTS = env(values.ListValue, ["localhost", "127.0.0.1", "[::1]", "testserver"])
    CSRF_TRUSTED_ORIGINS = env(values.ListValue, [])
    # Empty: links made while serving a request name that request's host, and
    # links made without one (webhook payloads) name http://127.0.0.1:WEB_PORT
    # (portal.storage.site_url). Set it wherever the portal has a public name.
    SITE_URL = env(default="")
    # The port `make run` serves on (Procfile.dev), so links name that port.
    WEB_PORT = env(values.IntegerValue, 8000)

    INSTALLED_APPS = [
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "whitenoise.runserver_nostatic",
        "django.contrib.staticfiles",
        "django_celery_results",
        "django_celery_beat",
        # request.htmx, and the Swagger UI's own static files (so /api/docs
        # works offline).
        "django_htmx",
        "corsheaders",
        "ninja",
        "accounts",
        "common",
        "portal",
        "monitoring",
        "frontend",
        "api",
    ]

    MIDDLEWARE = [
        # First, so preflights and error responses of /api/ carry CORS headers.
        "corsheaders.middleware.CorsMiddleware",
        "django.middleware.security.SecurityMiddleware",
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        "django.middleware.csp.ContentSecurityPolicyMiddleware",
        "django_htmx.middleware.HtmxMiddleware",
        # Pages in the reader's time zone (the browser's, from a cookie).
        "frontend.middleware.BrowserTimeZoneMiddleware",
        # A form's address opened in the browser: a page, not an empty 405.
        "frontend.middleware.MethodNotAllowedPageMiddleware",
        # A database outage answers 503 + Retry-After (web/outage.py), never 500.
        "web.outage.DatabaseUnavailableMiddleware",
        # Last: it turns a locked-out sign-in (the admin's too) into its page.
        "frontend.middleware.SignInLockoutMiddleware",
    ]

    ROOT_URLCONF = "boot.urls"
    WSGI_APPLICATION = "boot.wsgi.application"
    ASGI_APPLICATION = "boot.asgi.application"

    TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [],
            "APP_DIRS": True,
            "OPTIONS": {
                "context_processors": [
                    "django.template.context_processors.request",
                    "django.contrib.auth.context_processors.auth",
                    "django.contrib.messages.context_processors.messages",
                    "frontend.context_processors.portal",
                ]
            },
        }
    ]

    LANGUAGE_CODE = "en-us"
    TIME_ZONE = "UTC"
    USE_I18N = True
    USE_TZ = True
    DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


class Dev(Base):
    @classmethod
    def pre_setup(cls):
        # A developer's .env fills in what the real environment does not set.
        load_dotenv(BASE_DIR / ".env", override=False)
        super().pre_setup()

    DEBUG = env(values.BooleanValue, True)
    # The console, with each mail decoded: links on one line (common/mail.py).
    EMAIL_BACKEND = env(default="common.mail.ReadableConsoleEmailBackend")
    # A developer needs no worker: tasks run in-process unless told otherwise.
    CELERY_TASK_ALWAYS_EAGER = env(values.BooleanValue, True)
    WEBHOOK_ALLOWED_NETWORKS = env(values.ListValue, ["127.0.0.0/8", "::1/128"])


class Test(Base):
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    CELERY_TASK_ALWAYS_EAGER = env(values.BooleanValue, False)
    WEBHOOK_ALLOWED_NETWORKS = env(values.ListValue, ["127.0.0.0/8", "::1/128"])
    MEDIA_ROOT = env(default=str(BASE_DIR / ".data" / "test-media"))
    # Live-server threads must not keep connections open, or the test
    # database cannot be dropped at the end of the run.
    DATABASE_CONN_MAX_AGE = env(values.IntegerValue, 0)
    # Admin pages render without a collectstatic manifest.
    STATIC_MANIFEST = False

    @property
    def CELERY_BROKER_URL(self):
        # pytest-django runs against test_<name> (test_<name>_gw0 in the
        # pytest-xdist worker gw0); the broker follows it so a worker
        # subprocess and the test process share one message table.
        if self.BROKER_URL_FROM_ENV:
            return self.BROKER_URL_FROM_ENV
        return broker_url_for(
            self.DATABASE_URL, test=True, xdist_worker=os.environ.get("PYTEST_XDIST_WORKER")
        )


class Production(Base):
    SECRET_KEY = values.SecretValue(environ_prefix=None)
    # A public portal is opened on purpose, not by default.
    REGISTRATION_OPEN = env(values.BooleanValue, False)
    ALLOWED_HOSTS = values.ListValue(environ_prefix=None, environ_required=True)
    LOG_FORMAT = env(default="json")
    SESSION_COOKIE_SECURE = env(values.BooleanValue, True)
    CSRF_COOKIE_SECURE = env(values.BooleanValue, True)
    # HTTPS only: redirect plain HTTP (health probes excepted: load balancers
    # and orchestrators call them over HTTP) and tell browsers for a year.
    SECURE_SSL_REDIRECT = env(values.BooleanValue, True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env(values.IntegerValue, 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env(values.BooleanValue, False)
    SECURE_HSTS_PRELOAD = env(values.BooleanValue, False)
    # "HEADER,value" set by the TLS proxy in front; empty = trust no header.
    SECURE_PROXY_SSL_HEADER = env(values.TupleValue, ("HTTP_X_FORWARDED_PROTO", "https"))

    @property
    def SILENCED_SYSTEM_CHECKS(self):
        # HSTS for subdomains and preloading bind every subdomain of the
        # operator's domain to HTTPS for good; only the operator can know
        # that is safe, so they are opt-in and their deploy warnings are not
        # a fault of this configuration.
        silenced = []
        if not self.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            silenced.append("security.W005")
        if not self.SECURE_HSTS_PRELOAD:
            silenced.append("security.W021")
        return silenced

    @classmethod
    def setup(cls):
        super().setup()
        from django.core.exceptions import ImproperlyConfigured

        problem = None
        if cls.SECRET_KEY == DEV_SECRET_KEY:
            problem = (
                "SECRET_KEY is the published development key; set a long random "
                "SECRET_KEY for Production (python -c 'import secrets; "
                "print(secrets.token_urlsafe(50))')."
            )
        elif cls.DEBUG:
            problem = (
                "DEBUG=true is refused in Production (it shows settings and code to "
                "anyone who triggers an error); unset it, or use DJANGO_CONFIGURATION=Dev."
            )
        if problem:
            # manage.py sets a first ImproperlyConfigured aside and imports the
            # settings again; without the half-loaded module it fails again, loudly.
            sys.modules.pop(__name__, None)
            raise ImproperlyConfigured(problem)

    # Production never runs tasks in the web process, whatever the env says.
    CELERY_TASK_ALWAYS_EAGER = False


os.environ.setdefault("DJANGO_CONFIGURATION", "Dev")
