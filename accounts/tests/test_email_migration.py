"""Migration 0003: stored addresses brought to their one spelling, twins reported, not touched."""

from __future__ import annotations

import logging

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("accounts", "0002_apitoken")]
AFTER = [("accounts", "0003_normalize_emails")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _latest():
    # Every app's latest: going back to accounts 0002 also unapplied the
    # migrations of other apps that depend on later accounts ones (portal's
    # share links need accounts 0004), which later tests of this database need.
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_twins_are_reported_and_left_alone_and_lone_spellings_normalised(caplog):
    try:
        old = _migrate(BEFORE)
        User = old.get_model("accounts", "User")
        # What the old code stored: lowercased, domains as typed.
        twin_a = User.objects.create(email="user@bücher.example", password="!")
        twin_b = User.objects.create(email="user@xn--bcher-kva.example", password="!")
        twin_c = User.objects.create(email="\uff55ser@bücher.example", password="!")
        lone = User.objects.create(email="solo@bücher.example", password="!")
        plain = User.objects.create(email="plain@example.com", password="!")
        invisible = User.objects.create(email="zw@example.com\u200b", password="!")

        with caplog.at_level(logging.WARNING, logger="accounts.migrations"):
            new = _migrate(AFTER)
        stored = dict(new.get_model("accounts", "User").objects.values_list("pk", "email"))

        assert stored[twin_a.pk] == "user@bücher.example"
        assert stored[twin_b.pk] == "user@xn--bcher-kva.example"
        assert stored[twin_c.pk] == "\uff55ser@bücher.example"
        assert stored[lone.pk] == "solo@xn--bcher-kva.example"
        assert stored[plain.pk] == "plain@example.com"
        assert stored[invisible.pk] == "zw@example.com\u200b"

        report = "\n".join(r.getMessage() for r in caplog.records)
        twins_line = next(line for line in report.splitlines() if "twin accounts" in line)
        assert "user@xn--bcher-kva.example" in twins_line
        for twin in (twin_a, twin_b, twin_c):
            assert str(twin.pk) in twins_line
        assert str(invisible.pk) in report and "U+200B" in report
        assert f"account {lone.pk}" in report
        assert str(plain.pk) not in report

        # Reversing changes nothing and works.
        _migrate(BEFORE)
        assert (
            dict(User.objects.values_list("pk", "email"))[lone.pk] == "solo@xn--bcher-kva.example"
        )
    finally:
        _migrate(_latest())
