"""The JSON API: one NinjaAPI, its security, its error handlers and routers."""

from __future__ import annotations

from ninja import NinjaAPI

from api.auth import ApiAuth
from api.errors import JsonOnlyParser, install_exception_handlers
from api.rendering import ApiRenderer
from api.routers import batches, events, files, share_links, tokens, upload_requests, webhooks

api = NinjaAPI(
    title="Doorito API",
    version="1",
    description=(
        "JSON API of the Doorito file-ingest portal. Authenticate with "
        "`Authorization: Bearer <token>` (or a logged-in session plus CSRF token). "
        'Errors are `{"error": {"code", "message", "details"}}`.'
    ),
    auth=ApiAuth(),
    urls_namespace="api",
    openapi_url="/openapi.json",
    docs_url="/docs",
    parser=JsonOnlyParser(),
    renderer=ApiRenderer(),
)
install_exception_handlers(api)

api.add_router("/", files.router)
api.add_router("/", batches.router)
api.add_router("/", tokens.router)
api.add_router("/", webhooks.router)
api.add_router("/", events.router)
api.add_router("/", share_links.router)
api.add_router("/", upload_requests.router)
