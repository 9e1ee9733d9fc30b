"""The Celery app. Settings come from Django (namespace ``CELERY``)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boot.settings")
os.environ.setdefault("DJANGO_CONFIGURATION", "Dev")

import configurations

configurations.setup()

from celery import Celery  # noqa: E402
from django.conf import settings  # noqa: E402
from kombu.transport import sqlalchemy as kombu_sqlalchemy  # noqa: E402

# kombu hands every broker transport option to SQLAlchemy's create_engine, so
# a ``polling_interval`` option crashes the transport; the class attribute is
# the only knob. The 1 s default makes a worker with a full prefetch window
# sleep a whole second between tasks.
kombu_sqlalchemy.Transport.polling_interval = settings.BROKER_POLLING_INTERVAL

app = Celery("boot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
