from django.urls import path

from portal import views

app_name = "portal"

urlpatterns = [
    path("download/<str:token>", views.file_download, name="file-download"),
]
