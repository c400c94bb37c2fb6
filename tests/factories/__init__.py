"""factory_boy factories for the domain models.

Factories build rows directly for test set-up; behaviour under test goes through services.
"""

import factory
from django.utils import timezone

from governance.access.models import AccessPolicy, Account, Application, Entitlement, Grant
from governance.identities.models import DirectoryGroup, Identity, IdentitySource
from governance.nhi.models import NonHumanIdentity
from governance.portal.models import User


class IdentitySourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IdentitySource
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"source-{n}")
    kind = IdentitySource.Kind.ENTRA


class IdentityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Identity

    user_name = factory.Sequence(lambda n: f"person{n}@northwind.example")
    given_name = factory.Faker("first_name")
    family_name = factory.Faker("last_name")
    display_name = factory.LazyAttribute(lambda o: f"{o.given_name} {o.family_name}")
    department = "Engineering"
    source = factory.SubFactory(IdentitySourceFactory)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = True
    password = factory.django.Password("pw")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        if create and extracted:
            from django.contrib.auth.models import Group

            self.groups.set(Group.objects.filter(name__in=extracted))


class DirectoryGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DirectoryGroup

    display_name = factory.Sequence(lambda n: f"Group {n}")
    source = factory.SubFactory(IdentitySourceFactory)


class ApplicationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Application

    name = factory.Sequence(lambda n: f"App {n}")
    provisioning_mode = Application.ProvisioningMode.SCIM


class EntitlementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Entitlement

    application = factory.SubFactory(ApplicationFactory)
    name = factory.Sequence(lambda n: f"Role {n}")
    external_value = factory.Sequence(lambda n: f"role-{n}")


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    application = factory.SubFactory(ApplicationFactory)
    username = factory.Sequence(lambda n: f"account{n}")
    identity = factory.SubFactory(IdentityFactory)


class GrantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Grant

    account = factory.SubFactory(AccountFactory)
    entitlement = factory.SubFactory(
        EntitlementFactory, application=factory.SelfAttribute("..account.application")
    )
    granted_at = factory.LazyFunction(timezone.now)


class AccessPolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AccessPolicy

    name = factory.Sequence(lambda n: f"Policy {n}")
    directory_group = factory.SubFactory(DirectoryGroupFactory)


class NonHumanIdentityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NonHumanIdentity

    name = factory.Sequence(lambda n: f"svc-{n}")
    kind = NonHumanIdentity.Kind.SERVICE_ACCOUNT
    owner = factory.SubFactory(IdentityFactory)


# --------------------------------------------------------------------------- risk

from datetime import timedelta  # noqa: E402  (appended section)


class CompensatingControlFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "risk.CompensatingControl"

    name = factory.Sequence(lambda n: f"Control {n}")
    kind = "periodic_review"
    application = factory.SubFactory(ApplicationFactory)
    owner = factory.SubFactory(UserFactory)
    frequency = "monthly"
    next_due_on = factory.LazyFunction(lambda: timezone.localdate() + timedelta(days=10))


class AccessExceptionFactory(factory.django.DjangoModelFactory):
    """A draft by default; decided states need ``approver`` (four-eyes constraint)."""

    class Meta:
        model = "risk.AccessException"

    title = factory.Sequence(lambda n: f"Exception {n}")
    exception_type = "other"
    application = factory.SubFactory(ApplicationFactory)
    justification = "Accepted for the test."
    risk_rating = "medium"
    requested_by = factory.SubFactory(UserFactory)
    expires_on = factory.LazyFunction(lambda: timezone.localdate() + timedelta(days=90))


class ControlEvidenceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "risk.ControlEvidence"

    control = factory.SubFactory(CompensatingControlFactory)
    performed_by = factory.SelfAttribute("control.owner")
    performed_at = factory.LazyFunction(timezone.now)
    result = "pass"
    note = "Reviewed."


class CredentialFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "nhi.Credential"
        skip_postgeneration_save = True

    nhi = factory.SubFactory(NonHumanIdentityFactory)
    name = factory.Sequence(lambda n: f"secret-{n}")
    type = "api_key"
    used_in_production = True

    @factory.post_generation
    def known_by(self, create, extracted, **kwargs):
        if create and extracted:
            self.known_by.set(extracted)


class CredentialPolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "nhi.CredentialPolicy"

    max_age_days = 90
    warn_days = 14


class ApiTokenFactory(factory.django.DjangoModelFactory):
    """A token row for listing tests; tokens that authenticate come from token_create."""

    class Meta:
        model = "api.ApiToken"

    user = factory.SubFactory(UserFactory)
    token_prefix = factory.Sequence(lambda n: f"stw_api_{n:08d}")
    token_hash = factory.Sequence(lambda n: f"{n:064x}")


class ReconciliationRunFactory(factory.django.DjangoModelFactory):
    """A run row for listing and triage tests; runs that observe come from the services."""

    class Meta:
        model = "reconciliation.ReconciliationRun"

    application = factory.SubFactory(ApplicationFactory)
    source = "csv"
    status = "completed"


class FindingFactory(factory.django.DjangoModelFactory):
    """An open finding for triage tests; findings that runs raise come from the engine."""

    class Meta:
        model = "reconciliation.Finding"

    application = factory.SubFactory(ApplicationFactory)
    kind = "orphan"
    severity = "medium"
    status = "open"
    fingerprint = factory.Sequence(lambda n: f"test:{n}")
    subject = factory.Sequence(lambda n: f"account{n} @ test")
    opened_at = factory.LazyFunction(timezone.now)
