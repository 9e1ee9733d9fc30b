"""Events for tests that need many of them and care only that each is new."""

from __future__ import annotations

from common.models import OutboxEvent
from common.services.emit import emit_event


def emit_file_stored(i: int) -> OutboxEvent:
    """A ``file.stored`` event about a file ``f{i}``, in the caller's transaction."""
    event = emit_event(
        event_type="file.stored",
        aggregate_type="file",
        aggregate_id=f"f{i}",
        payload={"i": i},
    )
    assert event is not None  # a new aggregate id is never an idempotent repeat
    return event
