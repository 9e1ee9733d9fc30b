"""Fixtures of the portal's tests."""

from __future__ import annotations

import pytest

from portal.services import cleanup


@pytest.fixture
def follow_ups(monkeypatch) -> list[int]:
    """Records the follow-ups a run asks for instead of queueing them."""
    asked: list[int] = []

    def ask() -> bool:
        asked.append(1)
        return True

    monkeypatch.setattr(cleanup, "cleanup_follow_up_request", ask)
    return asked
