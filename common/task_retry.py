"""The retry policy of the maintenance and delivery tasks, written once.

Every such task (names, policy, returns: the seed note and docs/tasks.md)
failed the same way: log the exception with its traceback, then ask Celery
for a retry a minute later, at most twice. Each body used to repeat that
``try``/``except``; ``retrying_task`` is that wrapper, so a task body is just
the service call and its success log line.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from celery import shared_task

# The seed note's policy for every periodic task: a failure (the database
# away, a storage error) is retried a minute later, twice, then the run is
# left to the next beat tick.
MAX_RETRIES = 2
RETRY_DELAY_SECONDS = 60

TaskBody = Callable[[], dict[str, Any]]


def retrying_task(*, name: str, failure: str, **options: Any) -> Callable[[TaskBody], Any]:
    """``shared_task`` for a body that takes no arguments and returns its JSON result.

    When the body raises, ``failure`` is logged with the traceback (on the
    logger of the body's module) and the task is retried after
    ``RETRY_DELAY_SECONDS``; once ``MAX_RETRIES`` are spent Celery's ``retry``
    raises the original exception, so the run ends FAILURE with it. Other
    ``options`` go to ``shared_task`` as they are (e.g. ``track_started``).
    """

    def decorate(body: TaskBody) -> Any:
        logger = logging.getLogger(body.__module__)

        @functools.wraps(body)
        def run(self: Any) -> dict[str, Any]:
            try:
                return body()
            except Exception as exc:
                logger.exception(failure)
                raise self.retry(exc=exc) from exc

        return shared_task(
            name=name,
            bind=True,
            max_retries=MAX_RETRIES,
            default_retry_delay=RETRY_DELAY_SECONDS,
            **options,
        )(run)

    return decorate
