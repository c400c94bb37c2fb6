"""Audited create/update/delete for reference data edited in the admin.

Domain transitions have services of their own (``identity_deactivate``, ``grant_revoke``...);
plain edits of configuration rows (applications, entitlements, policies, sources) go through
these two functions so that no admin save escapes the audit log.
"""

from __future__ import annotations

from django.db import models, transaction

from governance.audit.services import record
from governance.core.actor import Actor
from governance.core.snapshot import changed, snapshot


def _action(instance: models.Model, verb: str) -> str:
    return f"{instance._meta.model_name}.{verb}"


@transaction.atomic
def model_save(
    *, actor: Actor, instance: models.Model, save_m2m=None, before: dict | None = None
) -> models.Model:
    """Save ``instance`` (new or changed) and record what changed.

    ``before`` is the snapshot taken when the object was loaded (the admin passes it); when
    omitted it is read from the database. ``save_m2m`` is the form's m2m saver, if any.
    """
    is_new = instance._state.adding
    if not is_new and before is None:
        before = snapshot(type(instance)._default_manager.get(pk=instance.pk))
    instance.full_clean(validate_unique=True)
    instance.save()
    if save_m2m is not None:
        save_m2m()
    after = snapshot(instance)
    if is_new:
        record(actor=actor, action=_action(instance, "created"), target=instance, after=after)
    else:
        old, new = changed(before or {}, after)
        if old or new:
            record(
                actor=actor,
                action=_action(instance, "updated"),
                target=instance,
                before=old,
                after=new,
            )
    return instance


@transaction.atomic
def model_delete(*, actor: Actor, instance: models.Model) -> None:
    before = snapshot(instance)
    target_type, target_id, label = instance._meta.label_lower, instance.pk, str(instance)
    instance.delete()
    record(
        actor=actor,
        action=_action(instance, "deleted"),
        target_type=target_type,
        target_id=target_id,
        before={**before, "__str__": label},
    )
