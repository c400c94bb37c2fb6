from django.contrib.admin.apps import AdminConfig


class StewardAdminConfig(AdminConfig):
    """The Django admin, with Steward's site (home page with governance signals)."""

    default_site = "governance.portal.admin_site.StewardAdminSite"

    def ready(self):
        super().ready()
        from django.contrib import admin
        from django_celery_beat.models import ClockedSchedule, SolarSchedule

        # Steward schedules by interval and crontab only; hide the beat models it never uses.
        for model in (ClockedSchedule, SolarSchedule):
            if admin.site.is_registered(model):
                admin.site.unregister(model)
