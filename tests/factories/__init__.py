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
