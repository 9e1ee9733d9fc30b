from django.urls import path

from frontend.views import (
    accounts,
    batches,
    dashboard,
    events,
    files,
    share_links,
    tokens,
    upload_requests,
    uploads,
    webhooks,
)

app_name = "frontend"

urlpatterns = [
    # Accounts (django.contrib.auth's views, the portal's templates)
    path("login/", accounts.LoginView.as_view(), name="login"),
    path("logout/", accounts.LogoutView.as_view(), name="logout"),
    path("register/", accounts.register, name="register"),
    path("password/change/", accounts.PasswordChangeView.as_view(), name="password_change"),
    path("password/reset/", accounts.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password/reset/sent/",
        accounts.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "password/reset/<uidb64>/<token>/",
        accounts.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    # Everyone's own data
    path("", dashboard.dashboard, name="dashboard"),
    path("upload/", uploads.upload, name="upload"),
    path("upload/simple/", uploads.upload_simple, name="upload_simple"),
    path("upload/done/<uuid:upload_id>/", uploads.upload_result, name="upload_result"),
    path("upload/status/<uuid:upload_id>/", uploads.upload_status, name="upload_status"),
    path("files/", files.file_list, name="file_list"),
    path("files/bulk/", files.file_bulk, name="file_bulk"),
    path("files/<uuid:file_id>/", files.file_detail, name="file_detail"),
    path("files/<uuid:file_id>/download/", files.file_download, name="file_download"),
    path("files/<uuid:file_id>/delete/", files.file_delete, name="file_delete"),
    path("files/<uuid:file_id>/share/", share_links.file_share, name="file_share"),
    path("batches/<uuid:batch_id>/share/", share_links.batch_share, name="batch_share"),
    path(
        "share-links/<uuid:link_id>/revoke/",
        share_links.share_link_revoke_view,
        name="share_link_revoke",
    ),
    path("batches/", batches.batch_list, name="batch_list"),
    path("batches/new/", batches.batch_create, name="batch_create"),
    path("batches/<uuid:batch_id>/", batches.batch_detail, name="batch_detail"),
    path("batches/<uuid:batch_id>/progress/", batches.batch_progress, name="batch_progress"),
    path("batches/<uuid:batch_id>/close/", batches.batch_close, name="batch_close"),
    path("requests/", upload_requests.request_list, name="upload_request_list"),
    path(
        "requests/<uuid:request_id>/",
        upload_requests.request_detail,
        name="upload_request_detail",
    ),
    path(
        "requests/<uuid:request_id>/revoke/",
        upload_requests.request_revoke,
        name="upload_request_revoke",
    ),
    # An upload request's public page: no account, the token is the key.
    path("r/<str:token>/", upload_requests.public_page, name="upload_request_page"),
    path(
        "r/<str:token>/status/<uuid:upload_id>/",
        upload_requests.public_status,
        name="upload_request_status",
    ),
    path("r/<str:token>/finish/", upload_requests.public_finish, name="upload_request_finish"),
    path("r/<str:token>/again/", upload_requests.public_again, name="upload_request_again"),
    path("tokens/", tokens.token_list, name="token_list"),
    path("tokens/new/", tokens.token_create, name="token_create"),
    path("tokens/<uuid:token_id>/revoke/", tokens.token_revoke, name="token_revoke"),
    # Staff: webhooks and events
    path("webhooks/", webhooks.endpoint_list, name="endpoint_list"),
    path("webhooks/new/", webhooks.endpoint_create, name="endpoint_create"),
    path("webhooks/<uuid:endpoint_id>/", webhooks.endpoint_detail, name="endpoint_detail"),
    path("webhooks/<uuid:endpoint_id>/edit/", webhooks.endpoint_edit, name="endpoint_edit"),
    path("webhooks/<uuid:endpoint_id>/toggle/", webhooks.endpoint_toggle, name="endpoint_toggle"),
    path("webhooks/<uuid:endpoint_id>/rotate/", webhooks.endpoint_rotate, name="endpoint_rotate"),
    path("webhooks/<uuid:endpoint_id>/test/", webhooks.endpoint_test, name="endpoint_test"),
    path("webhooks/<uuid:endpoint_id>/delete/", webhooks.endpoint_delete, name="endpoint_delete"),
    path(
        "webhooks/<uuid:endpoint_id>/resend-failed/",
        webhooks.endpoint_resend_failed,
        name="endpoint_resend_failed",
    ),
    path("deliveries/<uuid:delivery_id>/", webhooks.delivery_detail, name="delivery_detail"),
    path("deliveries/<uuid:delivery_id>/resend/", webhooks.delivery_resend, name="delivery_resend"),
    path("events/", events.event_list, name="event_list"),
    path("events/<uuid:event_id>/", events.event_detail, name="event_detail"),
]
