"""A password hasher as slow as a real one, that counts the passwords it checks.

The Test configuration hashes with MD5 so tests run fast, but a real hash
takes a good part of a second, and that time is the window a parallel burst
of sign-ins races through. ``SlowCountingHasher`` gives every check that
window (sleeping, so two cores can hold fifty of them) and counts the checks
begun, so a test can tell how many passwords were actually tried.
"""

from __future__ import annotations

import threading
import time

from django.contrib.auth.hashers import MD5PasswordHasher

PATH = "accounts.tests.hashers.SlowCountingHasher"


class SlowCountingHasher(MD5PasswordHasher):
    algorithm = "slow_counting_md5"
    delay_seconds = 2.0
    checks = 0
    _changed = threading.Condition()

    @classmethod
    def reset(cls, *, delay_seconds: float = 2.0) -> None:
        with cls._changed:
            cls.checks = 0
            cls.delay_seconds = delay_seconds

    @classmethod
    def wait_for_checks(cls, count: int, *, timeout: float = 30.0) -> bool:
        """Whether ``count`` checks have begun within ``timeout`` seconds."""
        with cls._changed:
            return cls._changed.wait_for(lambda: cls.checks >= count, timeout=timeout)

    def verify(self, password: str, encoded: str) -> bool:
        cls = type(self)
        with cls._changed:
            cls.checks += 1
            cls._changed.notify_all()
        time.sleep(cls.delay_seconds)
        return super().verify(password, encoded)
