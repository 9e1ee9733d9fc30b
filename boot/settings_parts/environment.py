"""What every settings module shares: the checkout's root and ``env()``."""

from __future__ import annotations

from pathlib import Path

from configurations import values

BASE_DIR = Path(__file__).resolve().parents[2]


def env(value_cls=values.Value, default=None, **kwargs):
    """A configuration value read from the variable named like the setting."""
    return value_cls(default, environ_prefix=None, **kwargs)
