"""``/s/<token>``: the public pages of share links (no account needed)."""

from django.urls import path

from frontend.views import share

app_name = "share"

urlpatterns = [
    path("<str:token>", share.share_page, name="page"),
    path("<str:token>/download", share.share_download, name="download"),
]
