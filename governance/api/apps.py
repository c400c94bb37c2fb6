from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "governance.api"
    label = "api"
    verbose_name = "Governance API"

    def ready(self):
        from governance.api import schema  # noqa: F401 - registers the OpenAPI auth scheme
