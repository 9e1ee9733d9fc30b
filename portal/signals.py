"""What the portal announces to whoever listens (metrics, for one).

Sent after the transaction that stored the file committed, so a rolled-back
file is never counted; ``monitoring`` connects in its ``ready()``.
"""

from django.dispatch import Signal

# ``kind`` ("simple" or "tus"), ``size`` in bytes.
file_stored = Signal()
