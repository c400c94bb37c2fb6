from django.contrib.admin.apps import AdminConfig


class StewardAdminConfig(AdminConfig):
    """The Django admin, with Steward's site (home page with governance signals)."""

    default_site = "governance.portal.admin_site.StewardAdminSite"
