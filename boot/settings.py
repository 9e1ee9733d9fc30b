"""Doorito settings, one class per environment (django-configurations).

Every deploy-specific value is read from an environment variable whose name is
exactly the setting name (``environ_prefix=None``): django-configurations would
otherwise read ``DJANGO_<NAME>`` and silently ignore the names the README
documents. ``tests/test_settings.py`` keeps this honest.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from configurations import Configuration, values
from django.utils.csp import CSP
from dotenv import load_dotenv
from kombu import Queue
from sqlalchemy.engine import URL

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/doorito"
# Published in this file, so good for nothing but development (Production refuses it).
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"  # noqa: S105


def env(value_cls=values.Value, default=None, **kwargs):
    """A configuration value read from the variable named like the setting."""
    return value_cls(default, environ_prefix=None, **kwargs)


def broker_url_for(
    database_url: str, *, test: bool = False, xdist_worker: str | None = None
) -> str:
    """The kombu SQLAlchemy URL that reaches the same database as Django.

    With ``test`` it names the database pytest-django creates: ``test_<name>``,
    or ``test_<name>_<worker>`` in a pytest-xdist worker (``xdist_worker``,
    e.g. ``gw0``). A name that already starts with ``test_`` is that database
    itself (a subprocess started by a test is handed the test database's URL).

    dj_database_url hands back the user, password and name decoded and an
    IPv6 host without its brackets; SQLAlchemy's URL quotes and brackets them
    again, so a password holding ``@ / % :`` or a host ``[::1]`` comes through.
    """
    cfg = dj_database_url.parse(database_url)
    name = cfg["NAME"]
    if test and not name.startswith("test_"):
        name = f"test_{name}_{xdist_worker}" if xdist_worker else f"test_{name}"
    user = cfg.get("USER") or ""
    password = cfg.get("PASSWORD") or None
    url = URL.create(
        "sqla+postgresql+psycopg",
        username=user if user or password else None,
        password=password,
        host=cfg.get("HOST") or "127.0.0.1",
        port=int(cfg.get("PORT") or 5432),
        database=name,
    )
    return url.render_as_string(hide_password=False)


class Base(Configuration):
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
        # Failed sign-in throttling, request.htmx, and the Swagger UI's own
        # static files (so /api/docs works offline).
        "axes",
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
        # A database outage answers 503 + Retry-After (web/outage.py), never 500.
        "web.outage.DatabaseUnavailableMiddleware",
        # Last, as django-axes asks: it turns a locked-out sign-in into its page.
        "axes.middleware.AxesMiddleware",
    ]

    # Every page script and style is a static file of this origin (no inline
    # code, no CDN), so the policy can be this strict. Uppy reads dropped
    # files into blob: URLs for its thumbnails.
    SECURE_CSP = {
        "default-src": [CSP.SELF],
        "script-src": [CSP.SELF],
        "style-src": [CSP.SELF],
        "img-src": [CSP.SELF, "data:", "blob:"],
        "connect-src": [CSP.SELF],
        "font-src": [CSP.SELF, "data:"],
        "object-src": [CSP.NONE],
        "base-uri": [CSP.SELF],
        "form-action": [CSP.SELF],
        "frame-ancestors": [CSP.NONE],
    }

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

    DATABASE_URL = env(default=DEFAULT_DATABASE_URL)
    DATABASE_CONN_MAX_AGE = env(values.IntegerValue, 60)
    # The per-event outbox statement runs as a server-side prepared statement
    # (common/services/sql.py). Off for a pooler that cannot carry them.
    DATABASE_PREPARED_STATEMENTS = env(values.BooleanValue, True)

    @property
    def DATABASES(self):
        db = dj_database_url.parse(
            self.DATABASE_URL, conn_max_age=self.DATABASE_CONN_MAX_AGE, conn_health_checks=True
        )
        if self.DATABASE_PREPARED_STATEMENTS:
            # Django turns psycopg's prepared statements off (threshold None),
            # which also ignores ``prepare=True``. Its own cursors bind on the
            # client and are never prepared; a threshold out of reach keeps
            # psycopg from preparing anything but what asks for it.
            db.setdefault("OPTIONS", {}).setdefault("prepare_threshold", 2**31 - 1)
        return {"default": db}

    AUTH_USER_MODEL = "accounts.User"
    LOGIN_URL = "/login/"
    LOGIN_REDIRECT_URL = "/"
    LOGOUT_REDIRECT_URL = "/login/"
    AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]
    # Whether anyone may create an account at /register/ (staff create users
    # with `make manage ARGS="create_user …"` either way).
    REGISTRATION_OPEN = env(values.BooleanValue, True)

    # Failed sign-ins are counted per (account, address) pair: after
    # AXES_FAILURE_LIMIT failures that pair is locked out for
    # AXES_COOLOFF_MINUTES, without locking the owner out from elsewhere.
    AXES_FAILURE_LIMIT = env(values.IntegerValue, 5)
    AXES_COOLOFF_MINUTES = env(values.IntegerValue, 15)
    AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
    AXES_RESET_ON_SUCCESS = True
    # Django's sign-in form calls the email field "username".
    AXES_USERNAME_FORM_FIELD = "username"
    AXES_LOCKOUT_TEMPLATE = "frontend/accounts/locked_out.html"
    AXES_VERBOSE = False

    @property
    def AXES_COOLOFF_TIME(self):
        return timedelta(minutes=self.AXES_COOLOFF_MINUTES)

    # Password-reset mail. Dev prints it on the console; Production sends it
    # through the SMTP server below.
    EMAIL_BACKEND = env(default="django.core.mail.backends.smtp.EmailBackend")
    EMAIL_HOST = env(default="localhost")
    EMAIL_PORT = env(values.IntegerValue, 25)
    EMAIL_HOST_USER = env(default="")
    EMAIL_HOST_PASSWORD = env(default="")
    EMAIL_USE_TLS = env(values.BooleanValue, False)
    EMAIL_USE_SSL = env(values.BooleanValue, False)
    DEFAULT_FROM_EMAIL = env(default="Doorito <doorito@localhost>")
    AUTH_PASSWORD_VALIDATORS = [
        {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
        {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
        {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
        {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    ]

    LANGUAGE_CODE = "en-us"
    TIME_ZONE = "UTC"
    USE_I18N = True
    USE_TZ = True
    DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

    STATIC_URL = "/static/"
    # Hashed, compressed static files (needs `collectstatic`) outside DEBUG.
    STATIC_MANIFEST = True
    STATIC_ROOT = env(default=str(BASE_DIR / ".data" / "static"))
    MEDIA_ROOT = env(default=str(BASE_DIR / ".data" / "media"))
    MEDIA_URL = "/media/"

    # Storage: local filesystem unless STORAGE_BACKEND=s3.
    STORAGE_BACKEND = env(default="local")
    AWS_STORAGE_BUCKET_NAME = env(default="doorito")
    AWS_S3_ENDPOINT_URL = env(default=None)
    AWS_S3_REGION_NAME = env(default="us-east-1")
    AWS_ACCESS_KEY_ID = env(default=None)
    AWS_SECRET_ACCESS_KEY = env(default=None)
    AWS_QUERYSTRING_EXPIRE = env(values.IntegerValue, 3600)

    @property
    def STORAGES(self):
        if self.STORAGE_BACKEND == "s3":
            default = {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": self.AWS_STORAGE_BUCKET_NAME,
                    "endpoint_url": self.AWS_S3_ENDPOINT_URL,
                    "region_name": self.AWS_S3_REGION_NAME,
                    "access_key": self.AWS_ACCESS_KEY_ID,
                    "secret_key": self.AWS_SECRET_ACCESS_KEY,
                    "querystring_expire": self.AWS_QUERYSTRING_EXPIRE,
                    "file_overwrite": False,
                },
            }
        else:
            default = {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": self.MEDIA_ROOT},
            }
        return {
            "default": default,
            "staticfiles": {
                "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
                if self.STATIC_MANIFEST and not self.DEBUG
                else "django.contrib.staticfiles.storage.StaticFilesStorage"
            },
        }

    # --- Celery (values from the background-tasks design note) ---------------
    # Read from CELERY_BROKER_URL; empty means "the database itself".
    BROKER_URL_FROM_ENV = values.Value(
        None, environ_name="CELERY_BROKER_URL", environ_prefix=None, late_binding=True
    )
    # Longest wait of an idle consumer when no NOTIFY comes (broker/transport.py);
    # a class attribute of the transport, set in boot/celery.py.
    BROKER_POLLING_INTERVAL = env(values.FloatValue, 1.0)

    @property
    def CELERY_BROKER_URL(self):
        return self.BROKER_URL_FROM_ENV or broker_url_for(self.DATABASE_URL)

    CELERY_RESULT_BACKEND = "django-db"
    CELERY_RESULT_EXTENDED = True
    CELERY_ACCEPT_CONTENT = ["json"]
    CELERY_TASK_SERIALIZER = "json"
    CELERY_RESULT_SERIALIZER = "json"
    CELERY_TIMEZONE = "UTC"
    CELERY_TASK_TRACK_STARTED = True
    CELERY_TASK_TIME_LIMIT = 300
    CELERY_TASK_SOFT_TIME_LIMIT = 240
    CELERY_RESULT_EXPIRES = 86400
    CELERY_TASK_ALWAYS_EAGER = env(values.BooleanValue, False)
    CELERY_TASK_EAGER_PROPAGATES = True
    CELERY_TASK_DEFAULT_QUEUE = "default"
    CELERY_TASK_QUEUES = (Queue("high"), Queue("default"))
    CELERY_TASK_ROUTES = {
        "common.tasks.deliver_outbox_events_task": {"queue": "default"},
        "common.tasks.cleanup_delivered_outbox_events_task": {"queue": "default"},
        "common.tasks.prune_broker_messages_task": {"queue": "default"},
        "portal.tasks.cleanup_expired_upload_files_task": {"queue": "default"},
        "portal.tasks.notify_expiring_files_task": {"queue": "default"},
        "portal.tasks.expire_stale_upload_sessions_task": {"queue": "default"},
    }
    CELERY_WORKER_PREFETCH_MULTIPLIER = 1
    CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
    # The seed's value. Beat adopts this class into boot.beat's subclass
    # (single-beat lock, recovery after a database outage; boot/celery.py).
    CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

    # --- Domain settings ----------------------------------------------------
    OUTBOX_SWEEP_INTERVAL_MINUTES = env(values.IntegerValue, 5)
    OUTBOX_RETENTION_HOURS = env(values.IntegerValue, 168)
    DELIVERY_BATCH_SIZE = env(values.IntegerValue, 20)
    BROKER_PRUNE_INTERVAL_MINUTES = env(values.IntegerValue, 5)
    FILE_UPLOAD_TTL_HOURS = env(values.IntegerValue, 24)
    FILE_UPLOAD_EXPIRY_NOTIFY_HOURS = env(values.IntegerValue, 1)
    FILE_UPLOAD_MAX_SIZE = env(values.IntegerValue, 50 * 1024 * 1024)
    FILE_UPLOAD_ALLOWED_TYPES = env(values.ListValue, None)
    CLEANUP_UPLOADS_INTERVAL_HOURS = env(values.IntegerValue, 6)
    RESUMABLE_UPLOAD_MAX_SIZE = env(values.IntegerValue, 5 * 1024**3)
    RESUMABLE_UPLOAD_EXPIRY_HOURS = env(values.IntegerValue, 24)
    # An ``uploading`` record untouched this long was abandoned (its writer is
    # gone); the hourly expire-stale-upload-sessions run removes it and its bytes.
    UPLOAD_STALE_MINUTES = env(values.IntegerValue, 60)
    WEBHOOK_ALLOWED_NETWORKS = env(values.ListValue, [])
    WEBHOOK_SECRET_ROTATION_OVERLAP_HOURS = env(values.IntegerValue, 24)
    WEBHOOK_DISABLE_AFTER_FAILING_DAYS = env(values.IntegerValue, 5)
    WEBHOOK_MAX_ATTEMPTS = env(values.IntegerValue, 8)
    # Seconds to wait before retry n (Svix's schedule); the last entry repeats.
    WEBHOOK_RETRY_SCHEDULE = env(
        values.ListValue, ["5", "300", "1800", "7200", "18000", "36000", "36000"]
    )
    WEBHOOK_MAX_CONCURRENCY_PER_ENDPOINT = env(values.IntegerValue, 10)
    # The longest one webhook request may take, connect to last byte read; a
    # claim's lease is this plus a margin (docs/webhooks.md).
    WEBHOOK_TIMEOUT_SECONDS = env(values.FloatValue, 15.0)
    # /metrics: with a token set, only a request bearing it is served;
    # without one, only peers in these networks (docs/operations.md, "Metrics").
    METRICS_TOKEN = env(values.Value, "")
    METRICS_ALLOWED_NETWORKS = env(values.ListValue, ["127.0.0.1/32", "::1/128"])
    # Browser origins allowed on /api/ and /api/tus/ (django-cors-headers),
    # read from CORS_ALLOWED_ORIGINS: "*" means any origin and then never
    # with credentials; "null" (sandboxed frames, file: pages) is never allowed.
    CORS_ORIGINS_FROM_ENV = values.ListValue(
        [], environ_name="CORS_ALLOWED_ORIGINS", environ_prefix=None
    )
    CORS_URLS_REGEX = r"^/api/.*$"
    CORS_ALLOW_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
    CORS_ALLOW_HEADERS = (
        *("accept", "authorization", "content-type", "x-csrftoken", "x-requested-with"),
        *("tus-resumable", "upload-length", "upload-metadata", "upload-offset"),
        *("upload-defer-length", "upload-concat", "upload-checksum", "x-http-method-override"),
    )
    CORS_EXPOSE_HEADERS = (
        *("Location", "Tus-Resumable", "Tus-Version", "Tus-Extension", "Tus-Max-Size"),
        *("Tus-Checksum-Algorithm", "Upload-Offset", "Upload-Length", "Upload-Metadata"),
        *("Upload-Defer-Length", "Upload-Concat", "Upload-Expires"),
    )

    @property
    def CORS_ALLOW_ALL_ORIGINS(self):
        return "*" in [o.strip() for o in self.CORS_ORIGINS_FROM_ENV]

    @property
    def CORS_ALLOWED_ORIGINS(self):
        origins = [o.strip().rstrip("/") for o in self.CORS_ORIGINS_FROM_ENV]
        return [o for o in origins if o and o not in ("*", "null")]

    @property
    def CORS_ALLOW_CREDENTIALS(self):
        # A logged-in browser session works cross-origin only for listed origins.
        return not self.CORS_ALLOW_ALL_ORIGINS

    LOG_FORMAT = env(default="text")
    LOG_LEVEL = env(default="INFO")

    @property
    def CELERY_BEAT_SCHEDULE(self):
        return {
            "cleanup-expired-upload-files": {
                "task": "portal.tasks.cleanup_expired_upload_files_task",
                "schedule": crontab(minute=0, hour=f"*/{self.CLEANUP_UPLOADS_INTERVAL_HOURS}"),
                "options": {"queue": "default"},
            },
            "deliver-outbox-events-sweep": {
                "task": "common.tasks.deliver_outbox_events_task",
                "schedule": timedelta(minutes=self.OUTBOX_SWEEP_INTERVAL_MINUTES),
                "options": {"queue": "default"},
            },
            "cleanup-delivered-outbox-events": {
                "task": "common.tasks.cleanup_delivered_outbox_events_task",
                "schedule": crontab(minute=30, hour="*/6"),
                "options": {"queue": "default"},
            },
            "notify-expiring-files": {
                "task": "portal.tasks.notify_expiring_files_task",
                "schedule": crontab(minute=0),
                "options": {"queue": "default"},
            },
            "prune-broker-messages": {
                "task": "common.tasks.prune_broker_messages_task",
                "schedule": timedelta(minutes=self.BROKER_PRUNE_INTERVAL_MINUTES),
                "options": {"queue": "default"},
            },
            "expire-stale-upload-sessions": {
                "task": "portal.tasks.expire_stale_upload_sessions_task",
                "schedule": crontab(minute=15),
                "options": {"queue": "default"},
            },
        }

    @property
    def LOGGING(self):
        formatter = "json" if self.LOG_FORMAT == "json" else "text"
        return {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
                "json": {
                    "()": "pythonjsonlogger.json.JsonFormatter",
                    "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                },
            },
            "handlers": {"console": {"class": "logging.StreamHandler", "formatter": formatter}},
            "root": {"handlers": ["console"], "level": self.LOG_LEVEL},
            "loggers": {
                "django.db.backends": {"level": "INFO"},
                # One line per webhook request drowns the worker log; outcomes
                # are recorded on the delivery rows instead.
                "httpx": {"level": "WARNING"},
            },
        }


class Dev(Base):
    @classmethod
    def pre_setup(cls):
        # A developer's .env fills in what the real environment does not set.
        load_dotenv(BASE_DIR / ".env", override=False)
        super().pre_setup()

    DEBUG = env(values.BooleanValue, True)
    EMAIL_BACKEND = env(default="django.core.mail.backends.console.EmailBackend")
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
