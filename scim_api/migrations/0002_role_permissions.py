"""Give the portal roles their SCIM token permissions (Security admin: all, Auditor: view)."""

from django.db import migrations

from governance.portal.roles import sync_role_permissions


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0002_roles"),
        ("scim_api", "0001_initial"),
    ]

    operations = [migrations.RunPython(sync_role_permissions, migrations.RunPython.noop)]
