"""Give the portal roles their access-review permissions (campaigns, items, delegations)."""

from django.db import migrations

from governance.portal.roles import sync_role_permissions


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0001_initial"),
        ("portal", "0002_roles"),
        ("lifecycle", "0002_role_permissions"),
        ("scim_api", "0002_role_permissions"),
    ]

    operations = [migrations.RunPython(sync_role_permissions, migrations.RunPython.noop)]
