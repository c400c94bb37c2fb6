import pytest

from governance.core.actor import Actor
from governance.identities.models import Identity
from governance.nhi import services
from tests.scim_api.conftest import scim  # noqa: F401 - the identity provider's client

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ACTOR = Actor.system("tests")


class Directory:
    """People created and deactivated through Steward's SCIM API, as Entra does."""

    def __init__(self, client):
        self.scim = client

    def hire(self, user_name: str, *, manager: Identity | None = None) -> Identity:
        given, family = user_name.split(".")
        body = {
            "schemas": [USER, ENTERPRISE],
            "userName": f"{user_name}@northwind.example",
            "active": True,
            "name": {"givenName": given.title(), "familyName": family.title()},
            "displayName": f"{given.title()} {family.title()}",
            ENTERPRISE: {"department": "Engineering"},
        }
        if manager is not None:
            body[ENTERPRISE]["manager"] = {"value": str(manager.pk)}
        response = self.scim.post("/Users", body)
        assert response.status_code == 201, response.content
        return Identity.objects.get(pk=response.json()["id"])

    def deactivate(self, person: Identity):
        """PATCH active=false, the way Entra ID offboards a user."""
        response = self.scim.patch(
            f"/Users/{person.pk}",
            {
                "schemas": [PATCH],
                "Operations": [{"op": "replace", "path": "active", "value": False}],
            },
        )
        assert response.status_code == 200, response.content
        person.refresh_from_db()
        assert person.active is False
        return response


@pytest.fixture
def directory(scim):  # noqa: F811
    return Directory(scim)


def make_nhi(owner, **fields):
    fields.setdefault("kind", "service_account")
    name = fields.pop("name", None) or f"svc-{owner.user_name.split('@')[0]}-{fields['kind']}"
    return services.nhi_create(actor=ACTOR, name=name, owner=owner, **fields)
