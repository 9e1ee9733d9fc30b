"""The portal's single door to the outbox (every portal event goes through here)."""

from __future__ import annotations

from typing import Any

from common.services.outbox import EventSpec


def emit(
    *,
    aggregate_type: str,
    aggregate_id: Any,
    event_type: str,
    payload: dict[str, Any],
    idempotency_key: str | None = None,
) -> Any:
    """Write one outbox row in the caller's transaction."""
    from common.services.outbox import emit_event

    return emit_event(
        aggregate_type, str(aggregate_id), event_type, payload, idempotency_key=idempotency_key
    )


def existing_idempotency_keys(*, event_type: str, keys: list[str]) -> set[str]:
    """Which of ``keys`` already have an outbox event of ``event_type``."""
    from common.models import OutboxEvent

    return set(
        OutboxEvent.objects.filter(event_type=event_type, idempotency_key__in=keys).values_list(
            "idempotency_key", flat=True
        )
    )


def emit_many(*, event_type: str, events: list[EventSpec]) -> int:
    """Many events of one type in a few statements (TTL cleanup's ``file.deleted``)."""
    from common.services.outbox import emit_events

    return emit_events(event_type=event_type, events=events)
