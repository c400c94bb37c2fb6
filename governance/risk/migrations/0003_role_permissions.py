"""Give the portal roles their permissions on exceptions, controls and control evidence."""

from django.db import migrations

from governance.portal.roles import sync_role_permissions


class Migration(migrations.Migration):
    dependencies = [
        ("risk", "0002_exception_end_comment"),
        ("portal", "0002_roles"),
        ("lifecycle", "0002_role_permissions"),
        ("reviews", "0002_role_permissions"),
    ]

    operations = [migrations.RunPython(sync_role_permissions, migrations.RunPython.noop)]
