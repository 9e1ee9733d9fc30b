from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ApiToken, User
from accounts.services.tokens import token_authenticate

pytestmark = pytest.mark.django_db


def test_create_user_and_token(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a-Long-passw0rd\n"))
    out = io.StringIO()
    call_command("create_user", "Runner@Example.com", "--password-stdin", stdout=out)
    user = User.objects.get(email="runner@example.com")
    assert user.check_password("a-Long-passw0rd") and not user.is_staff
    assert "Created user runner@example.com" in out.getvalue()

    out, err = io.StringIO(), io.StringIO()
    call_command("create_token", "runner@example.com", "ci", stdout=out, stderr=err)
    raw = out.getvalue().strip()
    assert token_authenticate(raw=raw) == user
    assert ApiToken.objects.get(user=user).name == "ci"
    assert raw not in err.getvalue()


def test_create_staff_without_password():
    call_command("create_user", "ops@example.com", "--staff", "--no-password", stdout=io.StringIO())
    user = User.objects.get(email="ops@example.com")
    assert user.is_staff and user.is_superuser and not user.has_usable_password()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not-an-email", "--no-password"], "valid email"),
        (["dup@example.com", "--no-password"], "already exists"),
    ],
)
def test_create_user_bad_input(args, message):
    User.objects.create_user("dup@example.com", None)
    before = User.objects.count()
    with pytest.raises(CommandError, match=message):
        call_command("create_user", *args, stdout=io.StringIO())
    assert User.objects.count() == before


def test_create_user_weak_password(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("123\n"))
    with pytest.raises(CommandError, match="password"):
        call_command("create_user", "weak@example.com", "--password-stdin", stdout=io.StringIO())
    assert not User.objects.filter(email="weak@example.com").exists()


def test_create_user_without_a_terminal_names_the_options_that_work(monkeypatch):
    """No terminal (a script, CI): refuse with what to do, never getpass's EOFError."""

    def no_terminal(prompt: str = "") -> str:
        raise EOFError  # what getpass does when there is nothing to read a password from

    monkeypatch.setattr("getpass.getpass", no_terminal)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CommandError) as refused:
        call_command("create_user", "ops@example.com", "--staff", stdout=io.StringIO())
    assert "no terminal" in str(refused.value)
    assert "--password-stdin" in str(refused.value) and "--no-password" in str(refused.value)
    assert not User.objects.exists()


def test_create_user_password_stdin_that_ends_at_once(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CommandError, match="stdin ended before a password line"):
        call_command("create_user", "ops@example.com", "--password-stdin", stdout=io.StringIO())
    assert not User.objects.exists()


def test_create_token_bad_input():
    with pytest.raises(CommandError, match="No user"):
        call_command("create_token", "nobody@example.com", "ci", stdout=io.StringIO())
    User.objects.create_user("u@example.com", None)
    with pytest.raises(CommandError, match="name"):
        call_command("create_token", "u@example.com", "  ", stdout=io.StringIO())
    assert not ApiToken.objects.exists()
