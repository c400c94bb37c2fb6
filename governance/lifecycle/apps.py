from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    name = "governance.lifecycle"
    label = "lifecycle"
    verbose_name = "Lifecycle and provisioning"
