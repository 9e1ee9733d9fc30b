from django.apps import AppConfig


class FrontendConfig(AppConfig):
    name = "frontend"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # django-axes fills in its defaults when its conf module is first
        # imported. Import it at startup, not inside a test's temporary
        # settings override, where the defaults would vanish with the override.
        import axes.conf  # noqa: F401
