"""The event outbox and webhook delivery: batches, retention, retries,
concurrency, timeouts and the networks endpoints may be in. How often the
sweep runs is a beat setting (``OUTBOX_SWEEP_INTERVAL_MINUTES``,
``boot/settings_parts/celery.py``)."""

from __future__ import annotations

from configurations import values

from boot.settings_parts.environment import env


class WebhookSettings:
    OUTBOX_RETENTION_HOURS = env(values.IntegerValue, 168)
    DELIVERY_BATCH_SIZE = env(values.IntegerValue, 20)
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
