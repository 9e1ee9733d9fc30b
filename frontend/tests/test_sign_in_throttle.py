"""The sign-in lock-out holds: against a parallel burst, behind a proxy, per address.

The burst test runs against the live server over real sockets, fifty client
threads at once, with a password hasher as slow as a real one
(``accounts/tests/hashers.py``): that slowness is the window django-axes'
check-then-record let a burst through.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from accounts.models import User
from accounts.tests.hashers import PATH as SLOW_HASHER
from accounts.tests.hashers import SlowCountingHasher
from frontend.tests.conftest import PASSWORD, PortalClient

BURST = 50
EMAIL = "burst@example.com"


def _ready_client(base_url: str) -> tuple[httpx.Client, str]:
    """A client holding an open connection, the CSRF cookie and the form's token."""
    client = httpx.Client(base_url=base_url, timeout=60)
    page = client.get("/login/")
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert match is not None, page.status_code
    return client, match.group(1)


def _sign_in(client: httpx.Client, token: str, password: str) -> httpx.Response:
    """One sign-in; sent again once if the live server dropped the kept-alive connection.

    Django's test server closes idle connections on its own schedule, and on a
    loaded machine one of fifty could be reset under the request (seen in CI).
    Sending again can only add to the count the lock-out keeps, never to the
    passwords checked, so the assertions below still hold.
    """
    data = {"username": EMAIL, "password": password, "csrfmiddlewaretoken": token}
    try:
        return client.post("/login/", data=data)
    except httpx.TransportError:
        return client.post("/login/", data=data)


@pytest.mark.django_db(transaction=True)
def test_a_parallel_burst_checks_no_more_passwords_than_the_limit(live_server, settings):
    settings.PASSWORD_HASHERS = [SLOW_HASHER]
    SlowCountingHasher.reset(delay_seconds=2.0)
    User.objects.create_user(EMAIL, PASSWORD)
    limit = settings.AXES_FAILURE_LIMIT

    clients = [_ready_client(live_server.url) for _ in range(BURST)]
    start = threading.Barrier(BURST - 1)

    def wrong(index: int) -> int:
        client, token = clients[index]
        start.wait()
        return _sign_in(client, token, f"wrong password {index}").status_code

    def right() -> httpx.Response:
        # Sent while the burst's first passwords are still being checked,
        # none of them recorded as a failure yet.
        assert SlowCountingHasher.wait_for_checks(limit)
        client, token = clients[-1]
        return _sign_in(client, token, PASSWORD)

    try:
        with ThreadPoolExecutor(max_workers=BURST) as pool:
            wrongs = [pool.submit(wrong, i) for i in range(BURST - 1)]
            last = pool.submit(right)
            statuses = [f.result() for f in wrongs]
            answer = last.result()
    finally:
        for client, _ in clients:
            client.close()

    assert SlowCountingHasher.checks <= limit
    assert statuses.count(429) >= BURST - 1 - limit
    assert answer.status_code == 429, answer.status_code
    assert "Too many failed sign-ins" in answer.text
    assert "sessionid" not in answer.cookies
    # And afterwards the pair stays locked: the right password still does not sign in.
    client, token = _ready_client(live_server.url)
    try:
        assert _sign_in(client, token, PASSWORD).status_code == 429
    finally:
        client.close()


@pytest.mark.django_db
def test_forwarded_for_names_the_client_only_behind_a_trusted_proxy(settings, user):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    limit = settings.AXES_FAILURE_LIMIT

    def via(peer: str, forwarded: str) -> PortalClient:
        return PortalClient(REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded)

    # Through the proxy, one client's failures lock out that client only...
    attacker = via("10.0.0.2", "203.0.113.5")
    for _ in range(limit):
        attacker.post_form("/login/", {"username": user.email, "password": "wrong"})
    refused = attacker.post_form("/login/", {"username": user.email, "password": PASSWORD})
    assert refused.status_code == 429
    # ...not the owner, who reaches the same proxy from elsewhere (the proxy
    # appends the peer it saw; what a client put before that is not believed).
    owner = via("10.0.0.2", "203.0.113.5, 198.51.100.7")
    signed_in = owner.post_form("/login/", {"username": user.email, "password": PASSWORD})
    assert signed_in.status_code == 302

    # A peer that is no trusted proxy cannot pick its address with the header:
    # a fresh X-Forwarded-For per attempt still counts as one address.
    direct = PortalClient(REMOTE_ADDR="192.0.2.9")
    for attempt in range(limit):
        direct.defaults["HTTP_X_FORWARDED_FOR"] = f"198.51.100.{attempt + 10}"
        direct.post_form("/login/", {"username": user.email, "password": "wrong"})
    direct.defaults["HTTP_X_FORWARDED_FOR"] = "198.51.100.99"
    locked = direct.post_form("/login/", {"username": user.email, "password": PASSWORD})
    assert locked.status_code == 429


@pytest.mark.django_db
def test_the_lockout_page_says_how_long_in_minutes(anon, user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        page = anon.post_form("/login/", {"username": user.email, "password": "wrong"})
    assert page.status_code == 429
    text = re.sub(r"\s+", " ", page.content.decode())
    assert "Try again in 15 minutes" in text
    assert "PT15M" not in text


@pytest.mark.django_db
def test_the_admin_sign_in_is_throttled_with_the_same_page(client, staff_user, settings):
    staff_user.is_superuser = True
    staff_user.save(update_fields=["is_superuser"])
    for _ in range(settings.AXES_FAILURE_LIMIT):
        page = client.post("/admin/login/", {"username": staff_user.email, "password": "wrong"})
    assert page.status_code == 429
    refused = client.post("/admin/login/", {"username": staff_user.email, "password": PASSWORD})
    assert refused.status_code == 429
    assert "Try again in 15 minutes" in re.sub(r"\s+", " ", refused.content.decode())
    assert client.get("/admin/").status_code == 302
