from django.contrib import admin
from django.urls import include, path

from monitoring import views as health
from monitoring.metrics.views import metrics

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("portal/", include("api.download_urls")),
    # Share links' public pages (no account).
    path("s/", include("frontend.share_urls")),
    # tus resumable uploads; before api/ so the JSON API never shadows it.
    path("api/tus/", include("api.tus.urls")),
    # JSON API (api/tus/ is routed on its own line; api.urls leaves tus/ alone).
    path("api/", include("api.urls")),
    path("", include("frontend.urls")),
]

handler403 = "frontend.views.errors.permission_denied"
handler404 = "frontend.views.errors.page_not_found"
handler500 = "frontend.views.errors.server_error"
