"""What each portal role may do, as Django model permissions.

Used by data migrations (``sync_role_permissions``) so every database gets the same groups;
apps added later extend ``ROLE_PERMISSIONS`` and run the sync again in a migration of theirs.
Row-level narrowing (an app owner sees only their apps) happens in the admin querysets and
the services on top of these permissions.
"""

from __future__ import annotations

VIEW, ADD, CHANGE, DELETE = "view", "add", "change", "delete"
ALL = (VIEW, ADD, CHANGE, DELETE)

ROLE_PERMISSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "Security admin": {
        "identities.identitysource": ALL,
        "identities.identity": (VIEW,),
        "identities.identityemail": (VIEW,),
        "identities.directorygroup": (VIEW,),
        "identities.groupmembership": (VIEW,),
        "access.application": ALL,
        "access.entitlement": ALL,
        "access.account": ALL,
        "access.grant": ALL,
        "access.accesspolicy": ALL,
        "nhi.nonhumanidentity": ALL,
        "audit.auditevent": (VIEW,),
        "portal.user": (VIEW,),
        "scim_api.scimtoken": ALL,
        "lifecycle.lifecycleevent": (VIEW,),
        "lifecycle.provisioningtask": (VIEW, CHANGE),
        "lifecycle.provisioningprofile": ALL,
        # Campaigns are configured, launched and closed by security admins; they read every
        # review item, reassign items and decide the ones assigned to them.
        "reviews.campaign": ALL,
        "reviews.reviewitem": (VIEW, CHANGE),
        "reviews.delegation": ALL,
        "nhi.credential": ALL,
        "nhi.credentialpolicy": ALL,
        "nhi.ownershipchange": (VIEW,),
        "nhi.handoff": (VIEW, CHANGE),
        "nhi.rotationtask": (VIEW, CHANGE),
        "risk.accessexception": ALL,
        "risk.compensatingcontrol": ALL,
        "risk.controlevidence": (VIEW, ADD),
        "reconciliation.reconciliationrun": (VIEW, ADD, CHANGE),
        "reconciliation.finding": (VIEW, CHANGE),
        "reconciliation.driftsnapshot": (VIEW,),
        "api.apitoken": ALL,
    },
    "Reviewer": {
        "identities.identity": (VIEW,),
        "access.application": (VIEW,),
        "access.entitlement": (VIEW,),
        "access.account": (VIEW,),
        "access.grant": (VIEW,),
        # "My reviews": scoped to the items assigned (or delegated) to them by the admin
        # queryset and the services; no access to campaigns themselves.
        "reviews.reviewitem": (VIEW, CHANGE),
        "reviews.delegation": (VIEW, ADD),
    },
    "App owner": {
        "identities.identity": (VIEW,),
        "access.application": (VIEW, CHANGE),
        "access.entitlement": (VIEW, ADD, CHANGE),
        "access.account": (VIEW, ADD, CHANGE),
        "access.grant": (VIEW, ADD, CHANGE),
        "nhi.nonhumanidentity": (VIEW,),
        # Scoped to their applications by the admin querysets. ADD on the profile lets an
        # owner record the capability profile of an application that has none yet.
        "lifecycle.lifecycleevent": (VIEW,),
        "lifecycle.provisioningtask": (VIEW, CHANGE),
        "lifecycle.provisioningprofile": (VIEW, ADD, CHANGE),
        "reviews.reviewitem": (VIEW, CHANGE),
        "reviews.delegation": (VIEW, ADD),
        "nhi.credential": (VIEW, ADD, CHANGE),
        "nhi.ownershipchange": (VIEW,),
        "nhi.handoff": (VIEW, CHANGE),
        "nhi.rotationtask": (VIEW, CHANGE),
        # Exceptions and controls of their own applications; approval is security's.
        "risk.accessexception": (VIEW, ADD, CHANGE),
        "risk.compensatingcontrol": (VIEW, ADD, CHANGE),
        "risk.controlevidence": (VIEW, ADD),
        "reconciliation.reconciliationrun": (VIEW, ADD),
        "reconciliation.finding": (VIEW, CHANGE),
        "reconciliation.driftsnapshot": (VIEW,),
    },
    "Auditor": {
        "identities.identitysource": (VIEW,),
        "identities.identity": (VIEW,),
        "identities.identityemail": (VIEW,),
        "identities.directorygroup": (VIEW,),
        "identities.groupmembership": (VIEW,),
        "access.application": (VIEW,),
        "access.entitlement": (VIEW,),
        "access.account": (VIEW,),
        "access.grant": (VIEW,),
        "access.accesspolicy": (VIEW,),
        "nhi.nonhumanidentity": (VIEW,),
        "audit.auditevent": (VIEW,),
        "portal.user": (VIEW,),
        "scim_api.scimtoken": (VIEW,),
        "lifecycle.lifecycleevent": (VIEW,),
        "lifecycle.provisioningtask": (VIEW,),
        "lifecycle.provisioningprofile": (VIEW,),
        "reviews.campaign": (VIEW,),
        "reviews.reviewitem": (VIEW,),
        "reviews.delegation": (VIEW,),
        "nhi.credential": (VIEW,),
        "nhi.credentialpolicy": (VIEW,),
        "nhi.ownershipchange": (VIEW,),
        "nhi.handoff": (VIEW,),
        "nhi.rotationtask": (VIEW,),
        "risk.accessexception": (VIEW,),
        "risk.compensatingcontrol": (VIEW,),
        "risk.controlevidence": (VIEW,),
        "reconciliation.reconciliationrun": (VIEW,),
        "reconciliation.finding": (VIEW,),
        "reconciliation.driftsnapshot": (VIEW,),
        "api.apitoken": (VIEW,),
    },
}


def sync_role_permissions(apps, schema_editor) -> None:
    """Create the role groups and give each exactly its permissions (idempotent)."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, grants in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for label, actions in grants.items():
            app_label, model = label.split(".")
            for action in actions:
                perm = Permission.objects.filter(
                    content_type__app_label=app_label, codename=f"{action}_{model}"
                ).first()
                if perm is not None:
                    wanted.append(perm)
        group.permissions.set(wanted)
