"""Provisioning fixtures: a real SCIM 2.0 server (the ``scim2-server`` package, in memory) on
loopback as the target application, its misbehaving variants, and a client for Steward's own
inbound SCIM API."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest
from scim2_models import ScimProvider
from scim2_server.memory import InMemoryStorage
from scim2_server.responses import ScimResponse
from scim2_server.service import ScimService
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
from scim2_server.testserver.cli import ThreadingWSGIServer
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)

from governance.access.models import Application
from governance.core.actor import Actor
from governance.identities.models import IdentitySource
from governance.lifecycle.models import ProvisioningProfile
from governance.lifecycle.selectors import MODE_PRESETS
from scim_api.tokens import token_create

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM = "application/scim+json"
TARGET_TOKEN = "target-bearer-7f3c9d2e41b8a6f0"  # what the target accepts; must never leak
ENCRYPTION_KEY = "lifecycle-tests-encryption-key"


# ------------------------------------------------------------------------- the SCIM target


def _provider() -> ScimProvider:
    config = load_default_service_provider_config()
    config.authentication_schemes = [*(config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
    return ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values(), config=config
    )


def _error(status_code: int) -> ScimResponse:
    status = HTTPStatus(status_code)
    return ScimResponse(
        status,
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": str(status.value),
            "detail": status.phrase,
        },
    )


class TargetApplication(BearerTokenApplication):
    """scim2-server's bearer-token application, with switches for the failure modes.

    ``ignore_writes``: PATCH and PUT answer 200 with the unchanged resource (a target that
    says yes and does nothing). ``fail_status``: every request answers that status.
    ``lose_write_answers``: writes are applied, then answered 502 (the answer was lost).
    Every request is logged as (method, path) so tests can count what was applied.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.ignore_writes = False
        self.fail_status: int | None = None
        self.lose_write_answers = False
        self.requests: list[tuple[str, str]] = []
        self.auth_headers: list[str] = []

    def dispatch_request(self, request):
        self.requests.append((request.method.upper(), request.path))
        self.auth_headers.append(request.header("Authorization") or "")
        if self.fail_status is not None:
            return _error(self.fail_status)
        write = request.method.upper() in ("POST", "PATCH", "PUT", "DELETE")
        if self.ignore_writes and request.method.upper() in ("PATCH", "PUT"):
            request.method = "GET"
            request.body = b""
        response = super().dispatch_request(request)
        return _error(502) if write and self.lose_write_answers else response


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@dataclass
class ScimTargetServer:
    """A running SCIM server on 127.0.0.1 with helpers that read it over HTTP."""

    app: TargetApplication
    server: ThreadingWSGIServer
    thread: threading.Thread
    token: str = TARGET_TOKEN
    base_url: str = field(init=False)

    def __post_init__(self) -> None:
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/v2"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def _client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url + "/",
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": SCIM},
            timeout=5,
        )

    def _call(self, method: str, path: str, body: Any = None, **params: str) -> httpx.Response:
        """A request that the request log does not count (the tests' own reads)."""
        before = len(self.app.requests)
        with self._client() as client:
            response = client.request(method, path, json=body, params=params or None)
        del self.app.requests[before:]
        del self.app.auth_headers[before:]
        return response

    def create_group(self, name: str) -> str:
        response = self._call("POST", "Groups", {"schemas": [GROUP], "displayName": name})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def create_user(self, user_name: str, **extra: Any) -> dict:
        body = {"schemas": [USER], "userName": user_name, **extra}
        response = self._call("POST", "Users", body)
        assert response.status_code == 201, response.text
        return response.json()

    def users(self) -> list[dict]:
        response = self._call("GET", "Users")
        assert response.status_code == 200, response.text
        return response.json().get("Resources", [])

    def user(self, user_id: str) -> dict | None:
        response = self._call("GET", f"Users/{user_id}")
        return response.json() if response.status_code == 200 else None

    def user_named(self, user_name: str) -> dict | None:
        matches = [u for u in self.users() if u["userName"].lower() == user_name.lower()]
        assert len(matches) <= 1
        return matches[0] if matches else None

    def members(self, group_id: str) -> set[str]:
        response = self._call("GET", f"Groups/{group_id}")
        assert response.status_code == 200, response.text
        return {m["value"] for m in response.json().get("members") or []}

    def writes(self, method: str | None = None) -> list[tuple[str, str]]:
        return [
            r
            for r in self.app.requests
            if r[0] != "GET" and (method is None or r[0] == method.upper())
        ]


def start_scim_target() -> ScimTargetServer:
    provider = _provider()
    app = TargetApplication(
        InMemoryStorage(),
        provider,
        service=ScimService(provider, secret="lifecycle-tests-cursor-secret-0123456789"),
        bearer_tokens=[TARGET_TOKEN],
    )
    server = make_server(
        "127.0.0.1", 0, app, server_class=ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="scim-target", daemon=True
    )
    thread.start()
    return ScimTargetServer(app=app, server=server, thread=thread)


@pytest.fixture
def target_factory() -> Iterator:
    started: list[ScimTargetServer] = []

    def start() -> ScimTargetServer:
        started.append(start_scim_target())
        return started[-1]

    yield start
    for target in started:
        target.stop()


@pytest.fixture
def scim_target(target_factory) -> ScimTargetServer:
    return target_factory()


@pytest.fixture
def down_url() -> str:
    """The URL of a target that is down: a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v2"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A target that accepts connections and never answers (a hung application)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v2"
    sock.close()


# ------------------------------------------------------------------------- Steward set-up


@pytest.fixture(autouse=True)
def _encryption_key(settings):
    settings.STEWARD_ENCRYPTION_KEY = ENCRYPTION_KEY


def connect_application(
    name: str, mode: str, *, url: str = "", token: str = TARGET_TOKEN, **fields: Any
) -> Application:
    """An application in ``mode`` whose provisioning profile points at ``url``."""
    from governance.access.services import application_create

    app = application_create(
        actor=Actor.system("tests"), name=name, provisioning_mode=mode, **fields
    )
    if mode != Application.ProvisioningMode.MANUAL:
        ProvisioningProfile.objects.create(
            application=app, **MODE_PRESETS[mode], scim_base_url=url, scim_token=token
        )
    return app


class StewardScim:
    """Speaks SCIM to Steward's own inbound API (the identity provider's side)."""

    def __init__(self, client, token: str):
        self.client = client
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    def _send(self, method: str, path: str, body: Any = None):
        kwargs: dict[str, Any] = dict(self.headers)
        if body is not None:
            kwargs.update(data=json.dumps(body), content_type=SCIM)
        return getattr(self.client, method)(f"/scim/v2{path}", **kwargs)

    def post(self, path: str, body: Any):
        return self._send("post", path, body)

    def patch(self, path: str, *operations: dict):
        return self._send("patch", path, {"schemas": [PATCH], "Operations": list(operations)})

    def get(self, path: str):
        return self._send("get", path)


@pytest.fixture
def entra(db, client) -> StewardScim:
    source, _ = IdentitySource.objects.get_or_create(
        name="Entra", defaults={"kind": IdentitySource.Kind.ENTRA}
    )
    _, token = token_create(actor=Actor.system("tests"), source=source)
    return StewardScim(client, token)
