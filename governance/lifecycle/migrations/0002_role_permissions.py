"""Give the portal roles their lifecycle permissions (events, provisioning tasks, profiles)."""

from django.db import migrations

from governance.portal.roles import sync_role_permissions


class Migration(migrations.Migration):
    dependencies = [
        ("lifecycle", "0001_initial"),
        ("portal", "0002_roles"),
        ("scim_api", "0002_role_permissions"),
    ]

    operations = [migrations.RunPython(sync_role_permissions, migrations.RunPython.noop)]
