"""What the outbox engine announces to whoever listens (metrics, for one).

Signals keep the engine below its observers: ``monitoring`` connects to them
in its ``ready()``, so nothing here imports the app that counts.
"""

from django.dispatch import Signal

# After a delivery run's outcomes are committed: ``status_codes``, one per
# request sent (``None`` for a request that got no answer).
delivery_attempts_recorded = Signal()
