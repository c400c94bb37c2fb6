"""The admin site with Steward's home page: governance signals above the app list."""

from django.contrib import admin

from governance.portal.selectors import governance_overview


class StewardAdminSite(admin.AdminSite):
    site_header = "Steward identity governance"
    site_title = "Steward"
    index_title = "Governance portal"

    def index(self, request, extra_context=None):
        extra = {"overview": governance_overview(request.user), **(extra_context or {})}
        return super().index(request, extra_context=extra)
