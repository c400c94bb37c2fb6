"""Reads for exceptions and compensating controls: who may see or manage what, days left,
overdue controls, and the exceptions in force for a page of review items."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date

from django.db.models import Q, QuerySet
from django.utils import timezone

from governance.access.models import Application
from governance.core.admin_base import sees_everything
from governance.risk.coverage import active_exceptions
from governance.risk.models import AccessException, CompensatingControl

#: Provisioning modes without full SCIM: exceptions for them need an active control.
NEEDS_CONTROL_MODES = (
    Application.ProvisioningMode.MANUAL,
    Application.ProvisioningMode.SCIM_PARTIAL,
)
#: Days before expiry at which owners are told (each notice once).
EXPIRY_NOTICE_DAYS = (30, 7, 1)


def is_security_admin(user) -> bool:
    return bool(user is not None and user.is_active and user.is_security_admin)


def manages_application(user, application: Application | None) -> bool:
    """Security admins manage every application's exceptions and controls; an application
    owner only those of the applications they own."""
    if is_security_admin(user):
        return True
    if user is None or application is None or not user.is_active:
        return False
    return application.owners.filter(pk=user.pk).exists()


def owned_application_ids(user) -> set[int]:
    return set(Application.objects.filter(owners=user).values_list("pk", flat=True))


def visible_exceptions(user) -> QuerySet[AccessException]:
    """Security admins and auditors see every exception; owners those of their applications."""
    qs = AccessException.objects.all()
    if sees_everything(user):
        return qs
    return qs.filter(application__in=Application.objects.filter(owners=user))


def visible_controls(user) -> QuerySet[CompensatingControl]:
    """Everything for security admins and auditors; otherwise the controls of the
    applications someone owns and the controls they perform themselves."""
    qs = CompensatingControl.objects.all()
    if sees_everything(user):
        return qs
    return qs.filter(
        Q(application__in=Application.objects.filter(owners=user)) | Q(owner=user)
    ).distinct()


def linkable_controls(user, application: Application | None = None):
    """Controls someone may link to an exception: not retired, of the application (or
    organisation-wide), among those they can see."""
    qs = visible_controls(user).exclude(status=CompensatingControl.Status.RETIRED)
    if application is not None:
        qs = qs.filter(Q(application=application) | Q(application__isnull=True))
    return qs


def days_left(exception: AccessException, today: date | None = None) -> int:
    return (exception.expires_on - (today or timezone.localdate())).days


def is_overdue(control: CompensatingControl, today: date | None = None) -> bool:
    return control.status == CompensatingControl.Status.ACTIVE and control.next_due_on < (
        today or timezone.localdate()
    )


def overdue_controls(today: date | None = None) -> QuerySet[CompensatingControl]:
    return CompensatingControl.objects.filter(
        status=CompensatingControl.Status.ACTIVE,
        next_due_on__lt=today or timezone.localdate(),
    )


def exception_queue() -> QuerySet[AccessException]:
    """Submitted exceptions waiting for a security decision, oldest first."""
    return (
        AccessException.objects.filter(status=AccessException.Status.SUBMITTED)
        .select_related("application", "requested_by", "renewal_of")
        .order_by("submitted_at", "pk")
    )


def _item_matches(exception: AccessException, item, account_of: dict[int, int]) -> bool:
    if exception.application_id != item.application_id:
        return False
    if exception.entitlement_id is not None and exception.entitlement_id != item.entitlement_id:
        return False
    if exception.account_id is not None and account_of.get(item.grant_id) != exception.account_id:
        return False
    return exception.nhi_id is None or exception.nhi_id == item.subject_nhi_id


def exceptions_in_force_for_items(items: Iterable) -> dict[int, list[AccessException]]:
    """For review items (a page of them), the approved, unexpired exceptions covering each
    item's application, narrowed (if at all) to the item's entitlement, account or NHI.
    At most two queries per page, whatever its length."""
    from governance.access.models import Grant

    items = list(items)
    app_ids = {item.application_id for item in items}
    found: dict[int, list[AccessException]] = defaultdict(list)
    if not app_ids:
        return found
    exceptions = list(
        active_exceptions().filter(application_id__in=app_ids).order_by("expires_on", "pk")
    )
    if not exceptions:
        return found
    account_of: dict[int, int] = {}
    if any(e.account_id is not None for e in exceptions):
        grant_ids = {item.grant_id for item in items if item.grant_id}
        account_of = dict(Grant.objects.filter(pk__in=grant_ids).values_list("pk", "account_id"))
    for item in items:
        found[item.pk] = [e for e in exceptions if _item_matches(e, item, account_of)]
    return found
