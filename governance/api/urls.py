"""The governance REST API, version 1: each app's ``api/urls.py`` is mounted here."""

from django.urls import include, path

app_name = "api"

urlpatterns = [
    path("", include("governance.nhi.api.urls")),
]
