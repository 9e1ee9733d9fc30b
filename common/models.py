"""Shared model base: UUIDv7 keys (time-ordered, index-friendly) and timestamps."""

from __future__ import annotations

from django.db import models
from uuid_utils.compat import uuid7


class BaseModel(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
