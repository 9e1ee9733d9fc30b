"""``retrying_task``: the tasks' shared log-and-retry policy."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from common import tasks as common_tasks
from common.task_retry import MAX_RETRIES, RETRY_DELAY_SECONDS, retrying_task
from portal import tasks as portal_tasks

# How many of the next runs of ``flaky`` raise, and how many ran.
state = {"failures": 0, "runs": 0}


@retrying_task(name="common.tests.test_task_retry.flaky", failure="Flaky work failed")
def flaky() -> dict[str, Any]:
    """A body that fails ``state["failures"]`` times, then succeeds."""
    state["runs"] += 1
    if state["runs"] <= state["failures"]:
        raise RuntimeError(f"failure {state['runs']}")
    return {"runs": state["runs"]}


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logged() -> Iterator[list[logging.LogRecord]]:
    """What the task's module logger wrote at ERROR (pytest's log capture may be off)."""
    # Eager runs (apply) then end in a state, as on a worker, instead of
    # raising the first Retry into the test.
    conf = flaky.app.conf
    propagates = conf.task_eager_propagates
    conf.task_eager_propagates = False
    handler = _Records()
    logger = logging.getLogger(__name__)
    logger.addHandler(handler)
    state.update(failures=0, runs=0)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        conf.task_eager_propagates = propagates


def test_a_failure_is_logged_with_its_traceback_and_retried(logged):
    state["failures"] = MAX_RETRIES
    # apply() runs the retries at once, in this process, instead of queueing them.
    assert flaky.apply().get() == {"runs": MAX_RETRIES + 1}
    assert [r.getMessage() for r in logged] == ["Flaky work failed"] * MAX_RETRIES
    assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in logged)


def test_the_last_failure_propagates_once_the_retries_are_spent(logged):
    state["failures"] = MAX_RETRIES + 5
    result = flaky.apply()
    assert result.failed()
    with pytest.raises(RuntimeError, match=f"failure {MAX_RETRIES + 1}"):
        result.get()
    assert state["runs"] == MAX_RETRIES + 1
    assert len(logged) == MAX_RETRIES + 1


@pytest.mark.parametrize(
    ("task", "name"),
    [
        (common_tasks.prune_broker_messages_task, "common.tasks.prune_broker_messages_task"),
        (common_tasks.deliver_outbox_events_task, "common.tasks.deliver_outbox_events_task"),
        (
            common_tasks.cleanup_delivered_outbox_events_task,
            "common.tasks.cleanup_delivered_outbox_events_task",
        ),
        (
            portal_tasks.cleanup_expired_upload_files_task,
            "portal.tasks.cleanup_expired_upload_files_task",
        ),
        (portal_tasks.notify_expiring_files_task, "portal.tasks.notify_expiring_files_task"),
        (
            portal_tasks.expire_stale_upload_sessions_task,
            "portal.tasks.expire_stale_upload_sessions_task",
        ),
    ],
)
def test_every_periodic_task_keeps_its_name_and_the_seed_policy(task, name):
    assert task.name == name
    assert (task.max_retries, task.default_retry_delay) == (2, 60)
    assert (MAX_RETRIES, RETRY_DELAY_SECONDS) == (2, 60)


def test_delivery_runs_still_skip_the_started_state():
    assert common_tasks.deliver_outbox_events_task.track_started is False
