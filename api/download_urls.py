"""``/portal/download/<token>``: the signed download link (``api.downloads``).

Mounted under ``portal/`` by ``boot.urls`` so links already handed out keep
working; ``portal.storage.file_download_url`` reverses it by name.
"""

from django.urls import path

from api import downloads

app_name = "downloads"

urlpatterns = [
    path("download/<str:token>", downloads.file_download, name="file-download"),
]
