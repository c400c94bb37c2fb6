"""Create the portal role groups (Security admin, Reviewer, App owner, Auditor)."""

from django.db import migrations

from governance.portal.roles import sync_role_permissions


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0001_initial"),
        ("identities", "0001_initial"),
        ("access", "0003_initial"),
        ("nhi", "0001_initial"),
        ("audit", "0002_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(sync_role_permissions, migrations.RunPython.noop)]
