from django.contrib import admin
from django.urls import include, path

from governance.portal import views as portal_views

admin.site.site_header = "Steward identity governance"
admin.site.site_title = "Steward"
admin.site.index_title = "Governance portal"

urlpatterns = [
    path("", portal_views.home, name="home"),
    path("healthz", portal_views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("scim/v2/", include("scim_api.urls")),
]
