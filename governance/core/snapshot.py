"""JSON-safe snapshots of model rows for audit before/after values."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


def to_json_safe(value: Any) -> Any:
    """Round-trip through JSON so that what is stored is exactly what is hashed."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True))


def snapshot(instance: models.Model, fields: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        if fields is not None and field.name not in fields:
            continue
        if getattr(field, "auto_now", False):
            continue  # bookkeeping, not a change anyone made
        if getattr(field, "redact_in_audit", False):
            data[field.attname] = "(set)" if field.value_from_object(instance) else "(not set)"
            continue
        data[field.attname if field.is_relation else field.name] = field.value_from_object(instance)
    for field in instance._meta.many_to_many:
        if fields is not None and field.name not in fields:
            continue
        if instance.pk is not None:
            data[field.name] = sorted(
                str(pk) for pk in getattr(instance, field.name).values_list("pk", flat=True)
            )
    return to_json_safe(data)


def changed(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict, dict]:
    """Only the keys whose values differ, as a (before, after) pair."""
    keys = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    return ({k: before.get(k) for k in keys}, {k: after.get(k) for k in keys})
