"""Give the portal roles their reconciliation permissions (runs, findings, drift snapshots)."""

from django.db import migrations

from governance.portal.roles import sync_role_permissions


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0003_settings_and_working_rows"),
        ("portal", "0002_roles"),
    ]

    operations = [migrations.RunPython(sync_role_permissions, migrations.RunPython.noop)]
