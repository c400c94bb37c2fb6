from django.db.models import Q, QuerySet

from governance.nhi.models import NonHumanIdentity


def unowned_nhis() -> QuerySet[NonHumanIdentity]:
    """NHIs with no owner, or whose owner is no longer an active person (NHI1:2025)."""
    return NonHumanIdentity.objects.exclude(
        status__in=[NonHumanIdentity.Status.RETIRED, NonHumanIdentity.Status.DISABLED]
    ).filter(Q(owner__isnull=True) | Q(owner__active=False) | Q(status="orphaned"))
