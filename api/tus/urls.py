from django.urls import path

from api.tus import views

app_name = "tus"

urlpatterns = [
    path("", views.collection, name="collection"),
    path("<str:upload_id>", views.upload, name="upload"),
]
