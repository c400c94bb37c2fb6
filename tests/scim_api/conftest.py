import json

import pytest

from governance.core.actor import Actor
from governance.identities.models import IdentitySource
from scim_api.tokens import token_create

SCIM = "application/scim+json"


class ScimClient:
    """A thin client that speaks SCIM to the test server with a bearer token."""

    def __init__(self, client, token):
        self.client = client
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    def _send(self, method, path, body=None, **extra):
        kwargs = {**self.headers, **extra}
        if body is not None:
            kwargs["data"] = body if isinstance(body, str | bytes) else json.dumps(body)
            kwargs["content_type"] = extra.pop("content_type", SCIM)
        return getattr(self.client, method)(f"/scim/v2{path}", **kwargs)

    def get(self, path, **extra):
        return self._send("get", path, **extra)

    def post(self, path, body=None, **extra):
        return self._send("post", path, body, **extra)

    def put(self, path, body=None, **extra):
        return self._send("put", path, body, **extra)

    def patch(self, path, body=None, **extra):
        return self._send("patch", path, body, **extra)

    def delete(self, path, **extra):
        return self._send("delete", path, **extra)


def make_scim_client(client, name="Entra", kind="entra", authoritative=False):
    source, _ = IdentitySource.objects.get_or_create(
        name=name, defaults={"kind": kind, "authoritative_for_all": authoritative}
    )
    _, token = token_create(actor=Actor.system("tests"), source=source)
    return ScimClient(client, token)


@pytest.fixture
def scim(db, client):
    return make_scim_client(client)


@pytest.fixture
def other_scim(db):
    from django.test import Client

    return make_scim_client(Client(), name="Okta", kind="okta")
