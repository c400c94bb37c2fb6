from django.apps import AppConfig


class NhiConfig(AppConfig):
    name = "governance.nhi"
    label = "nhi"
    verbose_name = "Non-human identities"
