"""Give the portal roles their permissions on credentials, policies, ownership history,
hand-offs and rotation tasks."""

from django.db import migrations

from governance.portal.roles import sync_role_permissions


class Migration(migrations.Migration):
    dependencies = [
        ("nhi", "0002_nhi_credentials_succession"),
        ("portal", "0002_roles"),
    ]

    operations = [migrations.RunPython(sync_role_permissions, migrations.RunPython.noop)]
