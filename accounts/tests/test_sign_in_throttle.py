"""The sign-in count (accounts/services/sign_in_throttle.py) and the client's address."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import RequestFactory
from django.utils import timezone

from accounts import tasks
from accounts.client_address import client_address, throttle_address
from accounts.models import SignInThrottle
from accounts.services.sign_in_throttle import (
    sign_in_attempt_count,
    sign_in_attempts_clear,
    sign_in_throttles_prune,
)

PAIR = {"username": "alice@example.com", "address": "203.0.113.5"}


def _row() -> SignInThrottle:
    return SignInThrottle.objects.get(**PAIR)


@pytest.mark.django_db
def test_attempts_past_the_limit_are_refused_and_the_lock_starts_at_the_limit():
    limit = settings.AXES_FAILURE_LIMIT
    attempts = [sign_in_attempt_count(**PAIR) for _ in range(limit)]
    assert [a.number for a in attempts] == list(range(1, limit + 1))
    assert all(a.allowed for a in attempts)
    assert [a.last_allowed for a in attempts] == [False] * (limit - 1) + [True]
    locked_until = attempts[-1].expires_at
    assert locked_until - timezone.now() > timedelta(minutes=14, seconds=50)

    refused = sign_in_attempt_count(**PAIR)
    assert not refused.allowed
    # Refused attempts do not move the end of the lock-out.
    assert refused.expires_at == locked_until
    assert refused.lockout.minutes_left() == 15


@pytest.mark.django_db
def test_pairs_are_counted_apart():
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in_attempt_count(**PAIR)
    assert sign_in_attempt_count(username="alice@example.com", address="198.51.100.7").number == 1
    assert sign_in_attempt_count(username="bob@example.com", address="203.0.113.5").number == 1


@pytest.mark.django_db
def test_a_success_starts_the_count_over():
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in_attempt_count(**PAIR)
    sign_in_attempts_clear(**PAIR)
    assert not SignInThrottle.objects.exists()
    assert sign_in_attempt_count(**PAIR).number == 1


@pytest.mark.django_db
def test_an_ended_window_starts_again_at_one_and_is_pruned():
    for _ in range(settings.AXES_FAILURE_LIMIT + 3):
        sign_in_attempt_count(**PAIR)
    SignInThrottle.objects.filter(**PAIR).update(expires_at=timezone.now() - timedelta(seconds=1))
    again = sign_in_attempt_count(**PAIR)
    assert (again.number, again.allowed) == (1, True)

    SignInThrottle.objects.filter(**PAIR).update(expires_at=timezone.now() - timedelta(seconds=1))
    sign_in_attempt_count(username="bob@example.com", address="203.0.113.5")
    assert sign_in_throttles_prune() == 1
    assert list(SignInThrottle.objects.values_list("username", flat=True)) == ["bob@example.com"]


@pytest.mark.django_db(transaction=True)
def test_parallel_counts_are_all_different():
    """Twenty threads, twenty connections, one row: every count is its own number."""

    def count(_: int) -> int:
        try:
            return sign_in_attempt_count(**PAIR).number
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=20) as pool:
        numbers = sorted(pool.map(count, range(20)))
    assert numbers == list(range(1, 21))
    assert _row().attempts == 20


def test_the_statement_names_the_models_table():
    from accounts.services import sign_in_throttle

    assert f"INSERT INTO {SignInThrottle._meta.db_table} AS t" in sign_in_throttle._COUNT_SQL


@pytest.mark.django_db
def test_the_prune_task_is_routed_and_scheduled():
    name = "accounts.tasks.prune_sign_in_throttles_task"
    assert tasks.prune_sign_in_throttles_task.name == name
    assert settings.CELERY_TASK_ROUTES[name] == {"queue": "default"}
    assert settings.CELERY_BEAT_SCHEDULE["prune-sign-in-throttles"]["task"] == name
    SignInThrottle.objects.create(
        username="old@example.com", address="192.0.2.1", attempts=9, expires_at=timezone.now()
    )
    assert tasks.prune_sign_in_throttles_task.apply().get() == {"deleted": 1}


def _request(remote: str, forwarded: str | None = None):
    request = RequestFactory().get("/")
    request.META["REMOTE_ADDR"] = remote
    if forwarded is not None:
        request.META["HTTP_X_FORWARDED_FOR"] = forwarded
    return request


@pytest.mark.parametrize(
    ("trusted", "remote", "forwarded", "client"),
    [
        # No trusted proxy: the header is never read.
        ([], "203.0.113.5", "198.51.100.7", "203.0.113.5"),
        # A peer outside the list cannot choose its address.
        (["10.0.0.0/8"], "192.0.2.9", "198.51.100.7", "192.0.2.9"),
        # The trusted proxy's entry (the rightmost) names the client.
        (["10.0.0.0/8"], "10.0.0.2", "198.51.100.7", "198.51.100.7"),
        # What the client wrote to the left of it is ignored.
        (["10.0.0.0/8"], "10.0.0.2", "1.2.3.4, 198.51.100.7", "198.51.100.7"),
        # Chained trusted proxies are walked past, right to left.
        (
            ["10.0.0.0/8", "172.16.0.1"],
            "10.0.0.2",
            "1.2.3.4, 198.51.100.7, 172.16.0.1",
            "198.51.100.7",
        ),
        # Ports and brackets as proxies write them; IPv4-mapped IPv6.
        (["10.0.0.2"], "10.0.0.2", "[2001:db8::7]:443", "2001:db8::7"),
        (["10.0.0.2"], "10.0.0.2", "198.51.100.7:5123", "198.51.100.7"),
        (["10.0.0.0/8"], "::ffff:10.0.0.2", "198.51.100.7", "198.51.100.7"),
        (["::1"], "::1", "2001:db8::9", "2001:db8::9"),
        # A trusted proxy that sent no header, or garbage: the proxy's address.
        (["10.0.0.0/8"], "10.0.0.2", None, "10.0.0.2"),
        (["10.0.0.0/8"], "10.0.0.2", "1.2.3.4, unknown", "10.0.0.2"),
        # Every hop trusted: the leftmost is as far as can be told.
        (["10.0.0.0/8"], "10.0.0.2", "10.9.9.9, 10.0.0.1", "10.9.9.9"),
    ],
)
def test_client_address(settings, trusted, remote, forwarded, client):
    settings.TRUSTED_PROXIES = trusted
    assert client_address(_request(remote, forwarded)) == client


def test_a_malformed_trusted_proxy_is_a_configuration_error(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "proxy.internal"]
    with pytest.raises(ImproperlyConfigured, match=r"proxy\.internal"):
        client_address(_request("10.0.0.2", "198.51.100.7"))


def test_ipv6_clients_are_counted_per_64():
    assert throttle_address("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert throttle_address("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert throttle_address("203.0.113.5") == "203.0.113.5"
