"""The one spelling of an email address that names an account.

One mailbox can be typed many ways: ``Alice@Example.com``, with a fullwidth
letter (U+FF41 for the "a" of ``alice@example.com``, as some input methods
type it), ``user@bücher.example`` and its DNS form
``user@xn--bcher-kva.example``, ``example.com.`` with the root's trailing dot.
Stored as typed, each became its own account, and a twin could sign in to the
other once sign-in normalised differently from registration. Every place that
takes an address from a person — registration, sign-in, password reset, the
admin, the ``create_user``/``create_token`` commands, the user manager itself
— passes it through ``normalize_email``, so each mailbox has exactly one
spelling and the database's unique constraint on ``User.email`` stops twins.

Invisible format characters (Unicode category Cf: U+200B ZERO WIDTH SPACE,
U+200D, U+00AD SOFT HYPHEN, U+FEFF, bidi controls) are refused rather than
dropped: an address carrying one was pasted from somewhere odd, and silently
removing it would hide that the person is not typing what they see.

This module sits beside ``models.py`` rather than in ``services/`` because the
user manager (``models.py``) calls it and ``services/`` imports the models:
the import contracts allow no circle between the two.
"""

from __future__ import annotations

import unicodedata

import idna
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email

from common.exceptions import ValidationError

# The column's length (``models.EmailField``'s default, RFC 5321's path limit).
MAX_LENGTH = 254
INVALID_MESSAGE = "Enter a valid email address."


def normalize_email(raw: str) -> str:
    """The canonical form of ``raw``, or a ``ValidationError`` saying what is wrong.

    Canonical means: surrounding whitespace removed and Unicode NFKC applied
    (fullwidth letters and the fullwidth at sign become ASCII); the local part case folded (then
    NFKC again, as Unicode's NFKC_Casefold does, so folding cannot leave an
    unnormalised sequence); the domain in its ASCII form (IDNA 2008 / UTS #46,
    "punycode"), lower case, without a trailing dot. The result passes
    Django's ``validate_email`` and fits the column.
    """
    if not isinstance(raw, str):
        raise ValidationError(INVALID_MESSAGE, details={"email": "invalid"})
    text = raw.strip()
    _refuse_invisible(text)
    text = unicodedata.normalize("NFKC", text)
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise ValidationError(INVALID_MESSAGE, details={"email": "invalid"})
    local = unicodedata.normalize("NFKC", local.casefold())
    address = f"{local}@{_ascii_domain(domain)}"
    _refuse_invisible(address)
    try:
        validate_email(address)
    except DjangoValidationError as exc:
        raise ValidationError(INVALID_MESSAGE, details={"email": "invalid"}) from exc
    if len(address) > MAX_LENGTH:
        raise ValidationError(
            f"An email address is at most {MAX_LENGTH} characters.",
            details={"email": "too_long"},
        )
    return address


def _refuse_invisible(text: str) -> None:
    for char in text:
        if unicodedata.category(char) == "Cf":
            name = unicodedata.name(char, "a format character")
            raise ValidationError(
                f"The email address contains an invisible character "
                f"(U+{ord(char):04X} {name}); type the address again without it.",
                details={"email": "invisible_character", "character": f"U+{ord(char):04X}"},
            )


def _ascii_domain(domain: str) -> str:
    # "example.com." names the same host as "example.com" (the root label).
    domain = domain.removesuffix(".")
    if domain.startswith("[") or (
        domain.isascii() and not any(label.startswith("xn--") for label in domain.split("."))
    ):
        # Plain ASCII host names and address literals.
        return domain.lower()
    try:
        # UTS #46 mapping (case included), non-transitional (IDNA 2008, as
        # browsers resolve names): "straße" stays itself (xn--strae-oqa), not
        # "strasse", which is why the domain is not case folded like the
        # local part. A-labels ("xn--…") are checked, so a broken one is refused.
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValidationError(INVALID_MESSAGE, details={"email": "invalid_domain"}) from exc
