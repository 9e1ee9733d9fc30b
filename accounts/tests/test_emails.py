"""One spelling per mailbox (accounts/emails.py), in the services, commands and manager."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from accounts.emails import normalize_email
from accounts.models import User
from accounts.services.tokens import token_authenticate
from accounts.services.users import user_create
from common.exceptions import ConflictError, ValidationError

ZWSP = "\u200b"
FULLWIDTH_A = "\uff41"


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("Alice@Example.COM", "alice@example.com"),
        ("  alice@example.com\t", "alice@example.com"),
        ("user@bücher.example", "user@xn--bcher-kva.example"),
        ("user@xn--bcher-kva.example", "user@xn--bcher-kva.example"),
        ("USER@BÜCHER.Example", "user@xn--bcher-kva.example"),
        ("user@XN--BCHER-KVA.example", "user@xn--bcher-kva.example"),
        (f"{FULLWIDTH_A}lice@example.com", "alice@example.com"),
        (
            "\uff41\uff4c\uff49\uff43\uff45\uff20\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",
            "alice@example.com",
        ),
        ("alice@example.com.", "alice@example.com"),
        # IDNA 2008: the sharp s is a letter of its own in a domain...
        ("info@straße.de", "info@xn--strae-oqa.de"),
        # ...while the local part is case folded in full.
        ("STRASSE@example.com", "strasse@example.com"),
        ("x@[192.0.2.1]", "x@[192.0.2.1]"),
    ],
)
def test_normalize_email(raw, canonical):
    assert normalize_email(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "character"),
    [
        (f"alice@example.com{ZWSP}", "U+200B"),
        (f"ali{ZWSP}ce@example.com", "U+200B"),
        ("alice@exam\u200dple.com", "U+200D"),
        ("\u00adalice@example.com", "U+00AD"),
        ("\ufeffalice@example.com", "U+FEFF"),
        ("alice@example.com\u202e", "U+202E"),
    ],
)
def test_invisible_characters_are_refused_by_name(raw, character):
    with pytest.raises(ValidationError) as caught:
        normalize_email(raw)
    assert caught.value.details == {"email": "invisible_character", "character": character}
    assert f"invisible character ({character}" in caught.value.message


@pytest.mark.parametrize(
    "raw", ["", "alice", "@example.com", "alice@", "a@xn--zz.example", "a b@example.com", "a@b..c"]
)
def test_malformed_addresses_are_refused(raw):
    with pytest.raises(ValidationError, match="valid email"):
        normalize_email(raw)


@pytest.mark.django_db
def test_every_spelling_of_a_mailbox_is_one_account():
    user = user_create(email="user@bücher.example", password=None)
    assert user.email == "user@xn--bcher-kva.example"
    for twin in ("user@xn--bcher-kva.example", "USER@Bücher.example."):
        with pytest.raises(ConflictError):
            user_create(email=twin, password=None)
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_the_manager_stores_the_one_spelling_too():
    """Django's createsuperuser and tests create users through the manager."""
    user = User.objects.create_superuser("Root@Bücher.Example", "pw-long-enough-1")
    assert user.email == "root@xn--bcher-kva.example"
    with pytest.raises(ValidationError, match="invisible"):
        User.objects.create_user(f"x@example.com{ZWSP}", None)


@pytest.mark.django_db
def test_create_user_command_normalises_and_refuses_twins_and_invisible_characters():
    call_command(
        "create_user", f"{FULLWIDTH_A}lice@example.com", "--no-password", stdout=io.StringIO()
    )
    assert list(User.objects.values_list("email", flat=True)) == ["alice@example.com"]
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_user", "ALICE@example.com.", "--no-password", stdout=io.StringIO())
    with pytest.raises(CommandError, match="invisible character"):
        call_command("create_user", f"bob@example.com{ZWSP}", "--no-password", stdout=io.StringIO())
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_create_token_finds_the_account_by_any_spelling():
    user = User.objects.create_user("user@xn--bcher-kva.example", None)
    out = io.StringIO()
    call_command("create_token", "User@Bücher.example", "ci", stdout=out, stderr=io.StringIO())
    assert token_authenticate(raw=out.getvalue().strip()) == user
    with pytest.raises(CommandError, match="invisible character"):
        call_command("create_token", f"user@bücher.example{ZWSP}", "ci", stdout=io.StringIO())


@pytest.mark.django_db
def test_the_webhooks_command_finds_the_owner_by_any_spelling():
    owner = User.objects.create_user("hooks@xn--bcher-kva.example", None, is_staff=True)
    out = io.StringIO()
    call_command(
        "webhooks",
        "add",
        "http://127.0.0.1:9/hook",
        "--owner",
        "Hooks@Bücher.example",
        stdout=out,
    )
    from common.models import WebhookEndpoint

    assert WebhookEndpoint.objects.get().owner == owner
