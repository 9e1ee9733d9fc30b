"""Admin for batches, files and resumable uploads.

Records here are made by uploads (the API, the portal, tus), never by hand: a
file record added here would have no bytes and show as ``uploading`` forever.
So nothing can be added, and deleting a file goes through its service.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models

from common.services.json_input import MAX_JSON_DEPTH, StorableJSONDecoder
from portal.models import (
    UploadBatch,
    UploadFile,
    UploadPart,
    UploadRequest,
    UploadRequestSubmission,
    UploadSession,
    UserQuota,
)

# The metadata fields are saved straight to the model, past the services'
# checks: the decoder refuses what jsonb cannot store (a form error, not a 500).
JSON_FIELDS: dict[type[models.Field[Any, Any]], dict[str, Any]] = {
    models.JSONField: {
        "decoder": StorableJSONDecoder,
        "error_messages": {
            "invalid": "Enter valid JSON: no NaN or Infinity, no NUL characters or "
            f"unpaired surrogates, nested at most {MAX_JSON_DEPTH} levels."
        },
    }
}


class UploadFileInline(admin.TabularInline):
    model = UploadFile
    fields = ("filename", "status", "size", "content_type", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(UploadBatch)
class UploadBatchAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "owner",
        "status",
        "expected_files",
        "files_stored",
        "files_failed",
        "created_at",
    )
    list_filter = ("status",)
    search_fields = ("id", "owner__email", "idempotency_key")
    list_select_related = ("owner",)
    readonly_fields = (
        "id",
        "status",
        "files_stored",
        "files_failed",
        "files_deleted",
        "closed_at",
        "completed_at",
        "created_at",
        "updated_at",
    )
    raw_id_fields = ("owner",)
    inlines = [UploadFileInline]
    formfield_overrides = JSON_FIELDS

    def has_add_permission(self, request):
        return False  # batches are made through the API/portal (batch_create)


@admin.register(UploadFile)
class UploadFileAdmin(admin.ModelAdmin):
    list_display = ("filename", "owner", "status", "size", "content_type", "created_at")
    list_filter = ("status",)
    search_fields = ("id", "filename", "owner__email", "sha256")
    list_select_related = ("owner",)
    # The record mirrors storage: bytes-related fields are not editable here.
    # Moving a file to another owner or batch would bypass the batch counters.
    readonly_fields = (
        "id",
        "owner",
        "batch",
        "storage_key",
        "size",
        "sha256",
        "status",
        "error_message",
        "stored_at",
        "expires_at",
        "upload_request",
        "sender_name",
        "sender_email",
        "created_at",
        "updated_at",
    )
    formfield_overrides = JSON_FIELDS

    def has_add_permission(self, request):
        return False

    def delete_model(self, request, obj):
        # Through the service, so the stored object goes too and file.deleted is emitted.
        from portal.services.file_records import upload_file_delete

        upload_file_delete(file=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        from portal.services.file_records import upload_file_delete

        for file in queryset.select_related("owner"):
            upload_file_delete(file=file, actor=request.user)


class UploadPartInline(admin.TabularInline):
    model = UploadPart
    fields = ("number", "offset", "size", "checksum", "storage_key", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(UploadSession)
class UploadSessionAdmin(admin.ModelAdmin):
    """Resumable (tus) uploads: read-only; clients and the expiry sweep change them."""

    list_display = ("id", "owner", "status", "concat", "offset", "length", "expires_at")
    list_filter = ("status", "concat")
    search_fields = ("id", "filename", "owner__email")
    list_select_related = ("owner",)
    raw_id_fields = ("owner", "batch", "file")
    inlines = [UploadPartInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(UserQuota)
class UserQuotaAdmin(admin.ModelAdmin):
    """Staff set a user's quotas here; users without a row have the settings' defaults."""

    list_display = ("owner", "max_bytes", "max_files", "updated_at")
    search_fields = ("owner__email",)
    list_select_related = ("owner",)
    autocomplete_fields = ("owner",)
    readonly_fields = ("created_at", "updated_at")


class UploadRequestSubmissionInline(admin.TabularInline):
    model = UploadRequestSubmission
    fields = ("sender_name", "sender_email", "batch", "created_at", "submitted_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(UploadRequest)
class UploadRequestAdmin(admin.ModelAdmin):
    """Made by their owners (portal, API): here only looked at, or revoked (``revoked_at``)."""

    list_display = ("title", "owner", "expires_at", "revoked_at", "max_files", "created_at")
    search_fields = ("id", "title", "owner__email")
    list_select_related = ("owner",)
    readonly_fields = (
        "id",
        "owner",
        "token_hash",
        "password_hash",
        "allowed_types",
        "created_at",
        "updated_at",
    )
    inlines = [UploadRequestSubmissionInline]

    def has_add_permission(self, request):
        return False
