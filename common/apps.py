from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "common"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from common.services import scheduling
        from common.services.connections import (
            check_pooled_connections_quickly,
            retry_pool_connections_steadily,
        )

        scheduling.connect_worker_signals()
        if settings.DATABASES["default"].get("OPTIONS", {}).get("pool"):
            retry_pool_connections_steadily()
            check_pooled_connections_quickly()
