"""One FilterSet per model, used by the API (and by the admin's flag filters through the
same selector predicates)."""

from __future__ import annotations

import django_filters
from django.db.models import Q

from governance.nhi import selectors
from governance.nhi.models import Credential, Environment, Handoff, NonHumanIdentity, RotationTask

FLAG_CHOICES = [(flag, f"{flag}: {label}") for flag, label in selectors.FLAGS.items()]


class NonHumanIdentityFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    application = django_filters.CharFilter(field_name="application__name", lookup_expr="iexact")
    owner = django_filters.CharFilter(field_name="owner__user_name", lookup_expr="iexact")
    owning_team = django_filters.CharFilter(lookup_expr="iexact")
    platform = django_filters.CharFilter(lookup_expr="iexact")
    flag = django_filters.MultipleChoiceFilter(
        choices=FLAG_CHOICES, method="filter_flag", label="Risk flag (any of)"
    )
    updated_since = django_filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = NonHumanIdentity
        fields = ["name", "kind", "environment", "status", "auth_method", "application", "owner"]

    def filter_flag(self, queryset, name, value):
        """Needs a queryset from ``selectors.with_risk_flags``."""
        if not value:
            return queryset
        q = Q(pk__in=[])
        for flag in value:
            q |= selectors.flag_q(flag)
        return queryset.filter(q)


class CredentialFilterSet(django_filters.FilterSet):
    nhi_name = django_filters.CharFilter(field_name="nhi__name", lookup_expr="iexact")
    environment = django_filters.ChoiceFilter(
        choices=Environment.choices, method="filter_environment"
    )
    rotation_state = django_filters.ChoiceFilter(
        choices=[("overdue", "Overdue"), ("expiring", "Expiring soon"), ("ok", "Within policy")],
        field_name="rotation_state",
        help_text="Needs the annotation of selectors.credential_state_annotated.",
    )
    known_by = django_filters.CharFilter(
        field_name="known_by__user_name", lookup_expr="iexact", distinct=True
    )

    class Meta:
        model = Credential
        fields = ["nhi", "type", "status", "in_vault"]

    def filter_environment(self, queryset, name, value):
        return queryset.filter(**{f"used_in_{value}": True}) if value else queryset


class HandoffFilterSet(django_filters.FilterSet):
    class Meta:
        model = Handoff
        fields = ["nhi", "state", "route"]


class RotationTaskFilterSet(django_filters.FilterSet):
    class Meta:
        model = RotationTask
        fields = ["credential", "state", "reason"]
