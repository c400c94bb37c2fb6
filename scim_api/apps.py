from django.apps import AppConfig


class ScimApiConfig(AppConfig):
    name = "scim_api"
    label = "scim_api"
    verbose_name = "SCIM 2.0 service provider"
