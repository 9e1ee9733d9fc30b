"""Broker and test-database URLs keep credentials and hosts exactly (issue #18).

dj_database_url hands back the user, password and name decoded and an IPv6
host without brackets; the URLs built from them must quote and bracket them
again, or ``p%40ss`` turns into a host ``ss`` and ``[::1]`` into nonsense.
"""

from __future__ import annotations

import dj_database_url
import pytest
from django.db import connection
from kombu import Connection
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from boot.settings import broker_url_for
from conftest import database_url_for_tests

# DATABASE_URL -> (user, password, host, port, database) it names.
DATABASES = [
    ("postgres://app:p%40ss%2Fw@db/x", ("app", "p@ss/w", "db", 5432, "x")),
    (
        "postgres://app:a%40b%2Fc%25d%3Ae@db.internal:5433/files",
        ("app", "a@b/c%d:e", "db.internal", 5433, "files"),
    ),
    (
        "postgres://u%40corp%3A1:pw%2F%25%40%3A@[::1]:5433/x",
        ("u@corp:1", "pw/%@:", "::1", 5433, "x"),
    ),
    ("postgres://app:p%3A%40w@[::1]/x", ("app", "p:@w", "::1", 5432, "x")),
    ("postgres://app@[2001:db8::1]:6432/files", ("app", None, "2001:db8::1", 6432, "files")),
    ("postgres://u:pw@db.internal:5433/files", ("u", "pw", "db.internal", 5433, "files")),
]


def parsed_by_sqlalchemy(url: str) -> tuple:
    u = make_url(url)
    return u.username, u.password, u.host, u.port, u.database


def parsed_by_kombu(url: str) -> tuple:
    """What the broker connects with: kombu's Connection hands the URL after
    ``sqla+`` to SQLAlchemy's create_engine (kombu.transport.sqlalchemy),
    whose psycopg dialect turns it into psycopg's connection arguments."""
    conn = Connection(url)
    assert conn.transport_cls == "sqla"
    assert conn.hostname
    engine = create_engine(conn.hostname)
    try:
        _, kwargs = engine.dialect.create_connect_args(engine.url)
    finally:
        engine.dispose()
    assert engine.url.get_backend_name() == "postgresql"
    assert engine.url.get_driver_name() == "psycopg"
    return tuple(kwargs.get(k) for k in ("user", "password", "host", "port", "dbname"))


@pytest.mark.parametrize(("database_url", "expected"), DATABASES)
def test_broker_url_names_the_same_user_password_host_port_and_database(database_url, expected):
    url = broker_url_for(database_url)
    assert url.startswith("sqla+postgresql+psycopg://")
    assert parsed_by_sqlalchemy(url) == expected
    assert parsed_by_kombu(url) == expected
    if ":" in expected[2]:
        assert f"@[{expected[2]}]:" in url


@pytest.mark.parametrize(("database_url", "expected"), DATABASES)
def test_test_broker_url_names_the_test_database(database_url, expected):
    user, password, host, port, name = expected
    for worker, test_name in ((None, f"test_{name}"), ("gw0", f"test_{name}_gw0")):
        url = broker_url_for(database_url, test=True, xdist_worker=worker)
        assert parsed_by_sqlalchemy(url) == (user, password, host, port, test_name)
        assert parsed_by_kombu(url) == (user, password, host, port, test_name)


def test_a_test_database_url_is_taken_as_is():
    """A subprocess started by a test gets the test database's URL (test_<name>[_gwN])."""
    for name in ("test_files", "test_files_gw0"):
        url = broker_url_for(f"postgres://u@db/{name}", test=True, xdist_worker="gw0")
        assert make_url(url).database == name


def test_plain_urls_read_as_before():
    assert (
        broker_url_for("postgres://u:pw@db.internal:5433/files")
        == "sqla+postgresql+psycopg://u:pw@db.internal:5433/files"
    )
    assert (
        broker_url_for("postgres://postgres@127.0.0.1:5432/doorito", test=True)
        == "sqla+postgresql+psycopg://postgres@127.0.0.1:5432/test_doorito"
    )
    # No user, host or port: the local server on PostgreSQL's port, as before.
    url = make_url(broker_url_for("postgres:///files"))
    assert not url.username and url.password is None
    assert (url.host, url.port, url.database) == ("127.0.0.1", 5432, "files")


@pytest.mark.parametrize(
    ("user", "password", "host", "port"),
    [
        ("app", "a@b/c%d:e", "db.internal", 5433),
        ("u@corp:1", "p:@w/%", "::1", 5432),
        ("app", "", "2001:db8::1", 6432),
    ],
)
def test_database_url_for_tests_reads_back_exactly(monkeypatch, user, password, host, port):
    for key, value in {"USER": user, "PASSWORD": password, "HOST": host, "PORT": port}.items():
        monkeypatch.setitem(connection.settings_dict, key, value)
    name = connection.settings_dict["NAME"]
    url = database_url_for_tests()
    parsed = dj_database_url.parse(url)
    assert (parsed["USER"], parsed["PASSWORD"], parsed["HOST"], parsed["PORT"], parsed["NAME"]) == (
        user,
        password,
        host,
        port,
        name,
    )
    assert parsed_by_sqlalchemy(url) == (user, password or None, host, port, name)


def test_database_url_for_tests_reads_as_before(monkeypatch):
    for key, value in {"USER": "postgres", "PASSWORD": "", "HOST": "", "PORT": ""}.items():
        monkeypatch.setitem(connection.settings_dict, key, value)
    monkeypatch.setitem(connection.settings_dict, "NAME", "test_doorito")
    assert database_url_for_tests() == "postgres://postgres@127.0.0.1:5432/test_doorito"
