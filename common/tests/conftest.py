from __future__ import annotations

import pytest

from common.tests.receivers import Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()
