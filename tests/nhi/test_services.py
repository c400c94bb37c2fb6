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


def test_a_name_taken_between_check_and_save_is_a_conflict_not_a_server_error():
    """Two registrations of one name racing past the existence check: the loser's save hits
    the unique constraint, which becomes a Conflict and leaves the transaction usable."""
    from governance.core.errors import Conflict
    from governance.nhi.models import NonHumanIdentity
    from governance.nhi.services import _save_unique
    from tests.factories import NonHumanIdentityFactory

    first = NonHumanIdentityFactory(name="svc-race")
    loser = NonHumanIdentity(name="svc-race", kind=first.kind, owner=first.owner)
    with pytest.raises(Conflict) as caught:
        _save_unique(loser, conflict="An NHI named 'svc-race' already exists.")
    assert caught.value.field == "name"
    assert NonHumanIdentity.objects.filter(name="svc-race").count() == 1
