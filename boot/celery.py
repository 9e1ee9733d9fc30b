"""The Celery app. Settings come from Django (namespace ``CELERY``)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boot.settings")
os.environ.setdefault("DJANGO_CONFIGURATION", "Dev")

import configurations

configurations.setup()

from celery import Celery, signals  # noqa: E402
from django.conf import settings  # noqa: E402
from kombu.transport import TRANSPORT_ALIASES  # noqa: E402

from boot import broker  # noqa: E402

# ``sqla+…`` broker URLs get kombu's SQLAlchemy transport with LISTEN/NOTIFY
# wake-ups (boot/broker.py). kombu hands every broker transport option to
# SQLAlchemy's create_engine, so the poll interval (now only the longest wait
# for a message no notification announced) is a class attribute.
TRANSPORT_ALIASES["sqla"] = TRANSPORT_ALIASES["sqlalchemy"] = "boot.broker:Transport"
broker.Transport.polling_interval = settings.BROKER_POLLING_INTERVAL

app = Celery("boot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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

    import common.services.delivery  # noqa: F401
