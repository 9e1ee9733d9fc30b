"""Everything specific to the Celery broker, behind a few public functions.

- ``transport``: kombu's SQLAlchemy transport woken by PostgreSQL
  ``LISTEN``/``NOTIFY`` (``sqla+…`` URLs are routed to ``Transport`` in
  ``boot/celery.py``), and ``task_waiting``;
- ``housekeeping``: the prune of consumed messages, queue depths for
  ``/metrics``, and closing the broker's pooled connections, all on the
  broker's own engine (the broker may be another database than Django's);
- ``compat``: every private kombu/Celery member the two rely on, checked by
  ``check_private_members`` (the canary test).

Other code uses only the names below; none of it touches kombu's tables or
internals itself.
"""

from broker.compat import check_private_members
from broker.housekeeping import (
    PruneResult,
    dispose_engines,
    ping,
    prune_consumed_broker_messages,
    queue_depths,
    uses_database,
)
from broker.transport import NOTIFY_CHANNEL, Channel, Tables, Transport, task_waiting

__all__ = [
    "NOTIFY_CHANNEL",
    "Channel",
    "PruneResult",
    "Tables",
    "Transport",
    "check_private_members",
    "dispose_engines",
    "ping",
    "prune_consumed_broker_messages",
    "queue_depths",
    "task_waiting",
    "uses_database",
]
