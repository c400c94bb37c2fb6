"""Security admins manage API tokens; auditors read them."""

from django.db import migrations

from governance.portal.roles import sync_role_permissions


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0001_initial"),
        ("portal", "0002_roles"),
        ("nhi", "0003_role_permissions"),
    ]

    operations = [migrations.RunPython(sync_role_permissions, migrations.RunPython.noop)]
