"""Celery: the broker (the database itself unless ``CELERY_BROKER_URL`` names
another), the task settings, queues and routes (``CELERY_TASK_ROUTES``), and
the beat schedule (``CELERY_BEAT_SCHEDULE``) with the intervals it reads.

``boot/celery.py`` builds the app from these (namespace ``CELERY``).
"""

from __future__ import annotations

from datetime import timedelta

import dj_database_url
from celery.schedules import crontab
from configurations import values
from kombu import Queue
from sqlalchemy.engine import URL

from boot.settings_parts.environment import env


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


class CelerySettings:
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

    # Connections each process keeps to a SQL broker (SQLAlchemy's pool;
    # up to twice as many while busy). SQLAlchemy's own default, 5 + 10,
    # let one web process open 15 under a burst of uploads.
    BROKER_POOL_SIZE = env(values.IntegerValue, 1)

    @property
    def CELERY_BROKER_TRANSPORT_OPTIONS(self):
        if not self.CELERY_BROKER_URL.startswith("sqla+"):
            return {}
        return {
            "pool_size": self.BROKER_POOL_SIZE,
            "max_overflow": self.BROKER_POOL_SIZE,
            "pool_timeout": 10,
        }

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
        "portal.tasks.verify_file_task": {"queue": "default"},
        "portal.tasks.verify_held_files_task": {"queue": "default"},
        "accounts.tasks.prune_sign_in_throttles_task": {"queue": "default"},
    }
    CELERY_WORKER_PREFETCH_MULTIPLIER = 1
    CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
    # The seed's value. Beat adopts this class into boot.beat's subclass
    # (single-beat lock, recovery after a database outage; boot/celery.py).
    CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

    # --- Beat schedule ----------------------------------------------------
    OUTBOX_SWEEP_INTERVAL_MINUTES = env(values.IntegerValue, 5)
    BROKER_PRUNE_INTERVAL_MINUTES = env(values.IntegerValue, 5)
    CLEANUP_UPLOADS_INTERVAL_HOURS = env(values.IntegerValue, 6)

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
            # Files held in ``scanning`` (scanner or hook away, a verifier
            # that died): portal/services/verification.py.
            # Without a scanner or hook it finds nothing (one indexed query).
            "verify-held-files": {
                "task": "portal.tasks.verify_held_files_task",
                "schedule": timedelta(seconds=15),
                "options": {"queue": "default", "expires": 15},
            },
            "finish-idle-upload-request-submissions": {
                "task": "portal.tasks.finish_idle_upload_request_submissions_task",
                "schedule": crontab(minute=25),
                "options": {"queue": "default"},
            },
            "prune-sign-in-throttles": {
                "task": "accounts.tasks.prune_sign_in_throttles_task",
                "schedule": crontab(minute=45),
                "options": {"queue": "default"},
            },
        }
