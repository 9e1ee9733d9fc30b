"""Tokens: list, create (the plain value is in this one response only), revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from django.db.models import QuerySet
from ninja import Query, Router, Schema, Status
from pydantic import Field

from accounts.models import ApiToken, User
from accounts.services.tokens import NAME_MAX_LENGTH, token_create, token_revoke
from api.auth import ApiRequest
from api.errors import errors
from api.pagination import PageIn, PageOut, paginate
from api.validation import STORABLE_TEXT, BodyIn
from common.exceptions import NotFoundError

router = Router(tags=["tokens"])


class TokenOut(Schema):
    id: UUID
    name: str
    prefix: str = Field(description="The first characters of the token, for recognition.")
    user_id: UUID
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    is_active: bool


class TokenCreatedOut(TokenOut):
    token: str = Field(description="The plain token. Shown only in this response.")


class TokenCreateIn(BodyIn):
    # Not blank, no NUL (the service strips surrounding whitespace).
    name: Annotated[str, STORABLE_TEXT] = Field(
        min_length=1, max_length=NAME_MAX_LENGTH, pattern=r"^[^\x00]*[^\s\x00][^\x00]*$"
    )


class TokenPage(PageOut):
    items: list[TokenOut]


def tokens_visible_to(user: User) -> QuerySet[ApiToken]:
    qs = ApiToken.objects.all() if user.is_staff else ApiToken.objects.filter(user=user)
    return qs.order_by("-created_at", "-id")


@router.get("/tokens", response={200: TokenPage, **errors()}, summary="List tokens")
def list_tokens(request: ApiRequest, page: Query[PageIn]):
    """Your tokens, newest first (staff: everyone's). Plain values are never listed."""
    return paginate(tokens_visible_to(request.auth), page)


@router.post("/tokens", response={201: TokenCreatedOut, **errors()}, summary="Create a token")
def create_token(request: ApiRequest, body: TokenCreateIn):
    """Create a named token for yourself; copy `token` now, it is not shown again."""
    token, raw = token_create(user=request.auth, name=body.name)
    # The plain value is not on the model (only its hash is stored).
    created = TokenCreatedOut(**TokenOut.from_orm(token).model_dump(), token=raw)
    return Status(201, created)


@router.post(
    "/tokens/{token_id}/revoke",
    response={200: TokenOut, **errors(404)},
    summary="Revoke a token",
)
def revoke_token(request: ApiRequest, token_id: UUID):
    """Revoke one of your tokens (staff: anyone's). Requests using it get 401 from now on."""
    token = tokens_visible_to(request.auth).filter(pk=token_id).first()
    if token is None:
        raise NotFoundError("Token not found.", details={"token_id": str(token_id)})
    return token_revoke(token=token)
