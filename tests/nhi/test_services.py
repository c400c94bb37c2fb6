import pytest

from governance.core.actor import Actor
from governance.core.errors import DomainError
from governance.nhi import services
from governance.nhi.models import NonHumanIdentity
from governance.nhi.selectors import unowned_nhis
from tests.factories import IdentityFactory, NonHumanIdentityFactory

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")


def test_active_nhi_needs_active_owner():
    with pytest.raises(DomainError, match="accountable owner"):
        services.nhi_create(actor=ACTOR, name="bot", kind="bot", owner=None)
    with pytest.raises(DomainError, match="not an active person"):
        services.nhi_create(
            actor=ACTOR, name="bot", kind="bot", owner=IdentityFactory(active=False)
        )
    assert not NonHumanIdentity.objects.exists()


def test_assign_owner_revives_orphan_and_requires_reason():
    nhi = NonHumanIdentityFactory(owner=IdentityFactory(active=False), status="orphaned")
    assert list(unowned_nhis()) == [nhi]
    new_owner = IdentityFactory()
    with pytest.raises(DomainError):
        services.nhi_assign_owner(actor=ACTOR, nhi=nhi, owner=new_owner, reason=" ")
    services.nhi_assign_owner(actor=ACTOR, nhi=nhi, owner=new_owner, reason="handover")
    nhi.refresh_from_db()
    assert nhi.owner == new_owner and nhi.status == "active"
    assert not unowned_nhis().exists()


def test_backup_owner_must_differ():
    person = IdentityFactory()
    with pytest.raises(DomainError):
        services.nhi_create(actor=ACTOR, name="bot", kind="bot", owner=person, backup_owner=person)
