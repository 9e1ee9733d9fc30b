"""Bring stored addresses to their one spelling; report twins, change none of them.

Sign-in, registration, the admin and the commands now normalise every address
(``accounts.emails.normalize_email``). An account stored under another
spelling (``user@bücher.example`` rather than ``user@xn--bcher-kva.example``,
a fullwidth letter) could no longer sign in, so it is rewritten to the
canonical spelling — unless that spelling belongs to more than one account
(twins: one mailbox, several accounts) or cannot be made (an invisible
character). Those are left exactly as they are and logged as warnings, for an
operator to merge or remove by hand: which twin holds the files that matter
is not something a migration can know.

Reversing does nothing: the old spellings named the same mailboxes.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from django.db import migrations

from accounts.emails import normalize_email
from common.exceptions import ApplicationError

logger = logging.getLogger("accounts.migrations")


def normalize_and_report(apps, schema_editor) -> None:
    User = apps.get_model("accounts", "User")
    by_spelling: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for pk, email in User.objects.order_by("date_joined", "pk").values_list("pk", "email"):
        try:
            canonical = normalize_email(email)
        except ApplicationError as exc:
            logger.warning(
                "account %s: email %r cannot be normalised (%s); left as it is, "
                "it cannot sign in until an operator changes it",
                pk,
                email,
                exc.message,
            )
            continue
        by_spelling[canonical].append((str(pk), email))
    for canonical, accounts in by_spelling.items():
        if len(accounts) > 1:
            listed = ", ".join(f"{pk} ({email!r})" for pk, email in accounts)
            logger.warning(
                "twin accounts for %s (oldest first): %s; left as they are, merge or "
                "remove them by hand",
                canonical,
                listed,
            )
            continue
        pk, email = accounts[0]
        if email != canonical:
            User.objects.filter(pk=pk).update(email=canonical)
            logger.warning("account %s: email %r stored as %r", pk, email, canonical)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_apitoken"),
    ]

    operations = [
        migrations.RunPython(normalize_and_report, migrations.RunPython.noop, elidable=True),
    ]
