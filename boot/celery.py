"""The Celery app. Settings come from Django (namespace ``CELERY``)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boot.settings")
os.environ.setdefault("DJANGO_CONFIGURATION", "Dev")

from configurations import importer

# Only the settings importer, not ``django.setup()``: importing ``boot``
# happens while Django loads ``boot.settings``, and setting Django up from
# inside that import built a second settings object that replaced the first
# after the apps were ready, dropping what apps wrote into settings then
# (django-axes' defaults, when it was used). Celery's Django fixup sets
# Django up in workers and beat; web processes and manage.py do it themselves.
importer.install()

from celery import Celery, signals  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import close_old_connections  # noqa: E402
from kombu.transport import TRANSPORT_ALIASES  # noqa: E402

import broker  # noqa: E402

# ``sqla+…`` broker URLs get kombu's SQLAlchemy transport with LISTEN/NOTIFY
# wake-ups (broker/transport.py). kombu hands every broker transport option to
# SQLAlchemy's create_engine, so the poll interval (now only the longest wait
# for a message no notification announced) is a class attribute.
TRANSPORT_ALIASES["sqla"] = TRANSPORT_ALIASES["sqlalchemy"] = "broker:Transport"
broker.Transport.polling_interval = settings.BROKER_POLLING_INTERVAL

app = Celery("boot")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery's Django fixup closes every database connection before and after
# each task unless this (undocumented, un-namespaced) key is set; it then
# closes them every that many tasks. Doorito closes them itself below, by
# Django's own rule, so the fixup's count is set out of reach.
app.conf["CELERY_DB_REUSE_MAX"] = 2**31
app.autodiscover_tasks()


@signals.task_prerun.connect
@signals.task_postrun.connect
def _close_old_connections(task=None, **kwargs) -> None:
    """Treat each task like a Django request: keep or drop connections by ``CONN_MAX_AGE``.

    A new PostgreSQL connection per task (Celery's default with Django) cost
    a worker child a backend start, authentication and session setup on
    every delivery run; the children sat mostly idle waiting for them (the
    worker delivered ~1 200 instead of ~2 100 events/s). Django's rule
    closes connections that errored or outlived ``DATABASE_CONN_MAX_AGE``
    (0 in tests: closed after every task, as before), and with health checks
    on, the first query of a task checks a kept connection is still alive.
    A task run in the caller's process (``apply()``, eager mode) leaves the
    caller's connection alone, as the fixup does.
    """
    if task is not None and getattr(task.request, "is_eager", False):
        return
    close_old_connections()


@signals.beat_init.connect
def _adopt_beat_scheduler(sender=None, **kwargs) -> None:
    """Give a beat started with the stock scheduler the lock and the recovery of ours.

    The documented command names ``django_celery_beat.schedulers:DatabaseScheduler``
    on the command line, which overrides ``CELERY_BEAT_SCHEDULER``.
    """
    from boot.beat import adopt

    adopt(sender.scheduler)


@signals.worker_init.connect
def _import_before_fork(**kwargs) -> None:
    """Import what every task run needs once, in the parent, before the pool forks.

    Otherwise each prefork child pays for it on its first delivery run:
    httpx (which pulls in rich), and the SQLAlchemy dialects that kombu's
    table definitions name (mysql, sqlite) besides PostgreSQL's. Measured,
    that was a third of the children's CPU in a 5 000-event benchmark.
    """
    import sqlalchemy.dialects.mysql
    import sqlalchemy.dialects.postgresql
    import sqlalchemy.dialects.sqlite  # noqa: F401

    import common.services.dispatch  # noqa: F401
