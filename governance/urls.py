from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from governance.portal import views as portal_views

urlpatterns = [
    path("", portal_views.home, name="home"),
    path("healthz", portal_views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("scim/v2/", include("scim_api.urls")),
    path("api/v1/", include("governance.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
]
