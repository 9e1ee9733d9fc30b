"""Shared model base: UUIDv7 keys (time-ordered, index-friendly) and timestamps."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from uuid_utils.compat import uuid7


class BaseModel(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class OutboxEvent(BaseModel):
    """One domain event, written in the transaction of the change it describes.

    Delivery state lives per endpoint in ``WebhookDelivery``; the fields here
    summarise it (terminal once every delivery is), so dashboards and the
    partial index can answer "how much is pending" without a join.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        # No active endpoint was subscribed when it was written, or every
        # endpoint it was for was deleted before delivering it: nobody got it.
        NO_SUBSCRIBERS = "no_subscribers", "No subscribers"

    TERMINAL_STATUSES = (Status.DELIVERED, Status.FAILED, Status.NO_SUBSCRIBERS)

    aggregate_type = models.CharField(max_length=64)
    aggregate_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=64)
    idempotency_key = models.CharField(max_length=255)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=8)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["event_type", "idempotency_key"], name="outbox_event_type_idem_uniq"
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="outbox_pending_next_idx",
                condition=models.Q(status="pending"),
            ),
            models.Index(fields=["aggregate_type", "aggregate_id"], name="outbox_aggregate_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.id} ({self.status})"


class WebhookEndpoint(BaseModel):
    """A receiver of signed webhooks.

    ``secret`` is a shared HMAC key (``whsec_…``), not a password: it must be
    readable to sign. ``previous_secrets`` holds rotated-out secrets with the
    time they stop signing, so receivers can switch keys without a gap.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="webhook_endpoints",
    )
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=255, blank=True, default="")
    secret = models.CharField(max_length=100)
    previous_secrets = models.JSONField(default=list, blank=True)
    event_types = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=255, blank=True, default="")
    failing_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.url

    def subscribes_to(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class WebhookDelivery(BaseModel):
    """The state of one event for one endpoint (Saleor's EventDelivery).

    ``sending`` is a lease: a dispatcher owns the row until ``lease_expires_at``;
    a crashed dispatcher's rows become claimable again after it.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    # No index of its own: the unique (event, endpoint) index serves lookups by
    # event, and every index here is rewritten on each status change.
    event = models.ForeignKey(
        OutboxEvent, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    # Indexed with created_at below (the delivery log pages through one
    # endpoint's deliveries newest first), not on its own.
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=8)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_response = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["created_at"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["event", "endpoint"], name="delivery_event_endpoint_uniq"
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_pending_next_idx",
                condition=models.Q(status="pending"),
            ),
            models.Index(
                fields=["lease_expires_at"],
                name="delivery_sending_lease_idx",
                condition=models.Q(status="sending"),
            ),
            models.Index(fields=["endpoint", "-created_at"], name="delivery_endpoint_created_idx"),
            # "Re-send what failed since T": only failed rows, so a delivery
            # that succeeds (nearly all) never enters it.
            models.Index(
                fields=["updated_at"],
                name="delivery_failed_updated_idx",
                condition=models.Q(status="failed"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.endpoint_id} ({self.status})"


class WebhookDeliveryAttempt(BaseModel):
    """One HTTP attempt of a delivery (Saleor's EventDeliveryAttempt).

    ``WebhookDelivery`` keeps the state and the last attempt; this is the
    history a receiver's operator asks for ("what did you get back on
    Tuesday?"). Rows are written in bulk with the outcomes of a run
    (``common.services.recording``) and never change; they live as long as the
    event (retention cleanup deletes them with it).
    ``created_at`` is when the outcome was recorded, right after the request.
    """

    # No index of its own: rows are read per delivery, newest first, through
    # the (delivery, created_at) index below.
    created_at = models.DateTimeField(auto_now_add=True)
    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log", db_index=False
    )
    # The delivery's attempt counter when this attempt was made; it restarts
    # at 1 after a manual re-send.
    attempt_number = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    # The exception's class name for a network/timeout/refused target error.
    error_class = models.CharField(max_length=64, blank=True, default="")
    error = models.TextField(blank=True, default="")
    response_headers = models.JSONField(default=dict, blank=True)
    response_excerpt = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["delivery", "created_at"], name="attempt_delivery_created_idx"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.attempt_number} of {self.delivery_id}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def error_text(self) -> str:
        """The error as pages show it: with its class, and not when it only
        repeats the status code shown beside it ("HTTP 500")."""
        if self.status_code is not None and self.error == f"HTTP {self.status_code}":
            return ""
        if self.error_class and self.error_class not in self.error:
            return f"{self.error_class}: {self.error}"
        return self.error


class BeatHeartbeat(models.Model):
    """What the beat that holds the scheduler lock last said about itself (one row).

    The lock itself is a PostgreSQL advisory lock (``boot/beat.py``); this row
    lets ``manage.py status`` tell a beat that ticks from one that hangs, and
    shows sends that keep failing, which django-celery-beat's ``last_run_at``
    cannot (it records an attempt, not a delivered message).
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    holder = models.CharField(max_length=255)
    acquired_at = models.DateTimeField()
    ticked_at = models.DateTimeField()
    # Entry name -> {"since": ISO time, "attempts": int, "error": str}.
    failing = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"beat {self.holder} (ticked {self.ticked_at:%Y-%m-%d %H:%M:%S})"
