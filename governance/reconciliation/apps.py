from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    name = "governance.reconciliation"
    label = "reconciliation"
    verbose_name = "Reconciliation and drift"
