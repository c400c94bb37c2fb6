from django.apps import AppConfig


class IdentitiesConfig(AppConfig):
    name = "governance.identities"
    label = "identities"
    verbose_name = "Directory"
