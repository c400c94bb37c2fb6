"""Outbound SCIM 2.0: carry out one provisioning task in the target application, then prove it.

A task is *verified* only when a read-back of the target resource (RFC 7644 §3.4.1) shows the
change; a 2xx answer alone proves nothing, so "2xx but the read-back does not show it" is a
permanent failure that keeps the evidence (statuses and body excerpts).

Every operation is safe to repeat, because a retried or duplicated task must never apply twice:

- create looks the user up by ``userName`` first (RFC 7644 §3.4.2.2) and adopts a match, and a
  409 ``uniqueness`` (a concurrent create) is resolved the same way;
- disable/enable and attribute updates are PATCH ``replace`` operations (§3.5.2.3), idempotent
  by nature;
- group membership add is a set union (§3.5.2.1), and a remove that finds nothing to remove
  (400 ``noTarget``, §3.12) is checked by the read-back like any other.

Transient errors (connection errors, timeouts, 429, 5xx) are retried by
``task_record_failure`` with backoff; other 4xx are permanent. The bearer token only ever
travels in the ``Authorization`` header: it is never logged, and never stored in an error or
in evidence (body excerpts are scrubbed of it, in case a target echoes it back).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from governance.access.models import Account
from governance.core.actor import Actor
from governance.core.errors import DomainError, InvalidTransition
from governance.lifecycle.crypto import UndecryptableSecret
from governance.lifecycle.models import ProvisioningTask
from governance.lifecycle.selectors import profile_for

log = logging.getLogger(__name__)

Op = ProvisioningTask.Operation

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_MEDIA_TYPE = "application/scim+json"
CONNECT_TIMEOUT_SECONDS = 3.0
TIMEOUT_SECONDS = 5.0
BODY_EXCERPT_CHARS = 500


class ConnectorFailure(Exception):
    """One attempt that did not succeed; ``transient`` says whether retrying may help."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        evidence: dict[str, Any] | None = None,
        waiting: bool = False,
    ):
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.evidence = evidence or {}
        #: Waiting for another task (the account's creation) uses up no attempt.
        self.waiting = waiting


@dataclass
class ScimTarget:
    """A small SCIM client over one connection pool; remembers each exchange as evidence."""

    base_url: str = field(repr=False)
    token: str = field(repr=False)  # never in a repr, a log line or evidence
    exchanges: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._bodies: list[str] = []
        self._client = httpx.Client(
            base_url=self.base_url.rstrip("/") + "/",
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": SCIM_MEDIA_TYPE,
                "Content-Type": SCIM_MEDIA_TYPE,
            },
            timeout=httpx.Timeout(TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
            follow_redirects=False,  # a redirect must not carry the token to another host
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ScimTarget:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def excerpt(self, response: httpx.Response) -> str:
        text = response.text[:BODY_EXCERPT_CHARS]
        return text.replace(self.token, "[redacted]") if self.token else text

    def evidence(self, *, bodies: bool = False, **extra: Any) -> dict[str, Any]:
        """The exchanges so far (method, path, status; error bodies), plus ``extra``.
        ``bodies`` adds an excerpt of every answer, for a change the target did not make."""
        requests = [
            {**exchange, "body": body} if bodies and body and "body" not in exchange else exchange
            for exchange, body in zip(self.exchanges, self._bodies, strict=True)
        ]
        return {"requests": requests, **extra}

    def send(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        accept: tuple[int, ...] = (),
    ) -> httpx.Response:
        """One request; 2xx and the statuses in ``accept`` are returned, the rest raise."""
        exchange: dict[str, Any] = {"method": method, "path": path}
        self.exchanges.append(exchange)
        self._bodies.append("")
        try:
            response = self._client.request(method, path, json=body, params=params)
        except httpx.TimeoutException as exc:
            exchange["error"] = type(exc).__name__
            raise ConnectorFailure(
                f"{method} {path}: the target did not answer in time ({type(exc).__name__}).",
                transient=True,
                evidence=self.evidence(),
            ) from None
        except httpx.TransportError as exc:
            exchange["error"] = type(exc).__name__
            raise ConnectorFailure(
                f"{method} {path}: cannot reach the target ({type(exc).__name__}).",
                transient=True,
                evidence=self.evidence(),
            ) from None
        status = response.status_code
        exchange["status"] = status
        self._bodies[-1] = self.excerpt(response)
        if 200 <= status < 300 or status in accept:
            return response
        exchange["body"] = self.excerpt(response)
        transient = status == 429 or status >= 500
        raise ConnectorFailure(
            f"{method} {path}: the target answered {status}"
            + (" (will retry)." if transient else "."),
            transient=transient,
            evidence=self.evidence(),
        )

    def json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ConnectorFailure(
                f"The target answered {response.status_code} with a body that is not a SCIM "
                "resource.",
                transient=False,
                evidence=self.evidence(body=self.excerpt(response)),
            )
        return data

    def patch(self, path: str, operations: list[dict[str, Any]], **kw: Any) -> httpx.Response:
        return self.send(
            "PATCH", path, body={"schemas": [PATCH_SCHEMA], "Operations": operations}, **kw
        )

    def get_resource(self, path: str) -> dict[str, Any] | None:
        """The resource, or None when the target says 404."""
        response = self.send("GET", path, accept=(404,))
        if response.status_code == 404:
            return None
        return self.json(response)

    def find_user(self, user_name: str) -> dict[str, Any] | None:
        """The target's user with this userName (compared case-insensitively, as RFC 7643
        §4.1.1 makes userName caseExact false), or None."""
        response = self.send(
            "GET", "Users", params={"filter": f"userName eq {_filter_literal(user_name)}"}
        )
        resources = self.json(response).get("Resources") or []
        matches = [
            r
            for r in resources
            if isinstance(r, dict) and str(r.get("userName", "")).lower() == user_name.lower()
        ]
        if len(matches) > 1:
            raise ConnectorFailure(
                f"The target holds {len(matches)} users named {user_name!r}.",
                transient=False,
                evidence=self.evidence(),
            )
        return matches[0] if matches else None


def _filter_literal(value: str) -> str:
    """A SCIM filter string literal (RFC 7644 §3.4.2.2 uses JSON string syntax)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _users_path(user_id: str) -> str:
    return f"Users/{quote(user_id, safe='')}"


def _groups_path(group_id: str) -> str:
    return f"Groups/{quote(group_id, safe='')}"


def _unchanged(target: ScimTarget, what: str, **extra: Any) -> ConnectorFailure:
    """The target accepted the request but the read-back does not show the change."""
    return ConnectorFailure(
        f"The target accepted the request but does not show the change: {what}.",
        transient=False,
        evidence=target.evidence(bodies=True, unverified=True, **extra),
    )


def _user_attributes(identity) -> dict[str, Any]:
    """What Steward asserts about a person in a target (RFC 7643 §4.1)."""
    name = {
        k: v
        for k, v in (
            ("givenName", identity.given_name),
            ("familyName", identity.family_name),
            ("formatted", identity.formatted_name),
        )
        if v
    }
    emails = [
        {"value": e.value, **({"type": e.type} if e.type else {}), "primary": e.primary}
        for e in identity.emails.all()
        if e.value
    ]
    attributes: dict[str, Any] = {
        "userName": identity.user_name,
        "externalId": str(identity.pk),
        "displayName": identity.display_name or identity.full_name or identity.user_name,
    }
    if name:
        attributes["name"] = name
    if emails:
        attributes["emails"] = emails
    if identity.title:
        attributes["title"] = identity.title
    return attributes


def _mismatches(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Attributes of ``expected`` that the read-back ``actual`` does not show."""
    wrong = []
    for key, value in expected.items():
        got = actual.get(key)
        if key == "userName":
            same = str(got or "").lower() == str(value).lower()
        elif key == "name":
            got = got if isinstance(got, dict) else {}
            same = all(got.get(k) == v for k, v in value.items())
        elif key == "emails":
            got_values = {str(e.get("value", "")).lower() for e in got or [] if isinstance(e, dict)}
            same = {e["value"].lower() for e in value} <= got_values
        else:
            same = got == value
        if not same:
            wrong.append(key)
    return wrong


def _read_back_summary(user: dict[str, Any]) -> dict[str, Any]:
    meta = user.get("meta") if isinstance(user.get("meta"), dict) else {}
    return {
        "userName": user.get("userName"),
        "active": user.get("active"),
        "lastModified": meta.get("lastModified"),
        "version": meta.get("version"),
    }


def _account(task: ProvisioningTask) -> Account | None:
    if task.account_id:
        return task.account
    if task.identity_id is None:
        return None
    return (
        Account.objects.filter(application_id=task.application_id, identity_id=task.identity_id)
        .exclude(status=Account.Status.DELETED)
        .first()
    )


def _target_user_id(
    target: ScimTarget, task: ProvisioningTask, *, waiting_is_transient: bool
) -> tuple[str, Account]:
    """The target's id of the task's account: its external id, else found by userName."""
    account = _account(task)
    if account is None:
        raise ConnectorFailure(
            "Waiting for the account: the person has no account in this application yet.",
            transient=waiting_is_transient,
            evidence={"waiting_for": "account"},
            waiting=waiting_is_transient,
        )
    if account.external_id:
        return account.external_id, account
    found = target.find_user(account.username)
    if found is None or not found.get("id"):
        raise ConnectorFailure(
            f"Account {account.username!r} is not in the target.",
            transient=waiting_is_transient,
            evidence=target.evidence(waiting_for="account in the target"),
        )
    return str(found["id"]), account


def _create(target: ScimTarget, task: ProvisioningTask) -> dict[str, Any]:
    identity = task.identity
    if identity is None:
        raise ConnectorFailure("A create task needs a person.", transient=False)
    wanted = _user_attributes(identity)
    existing = target.find_user(identity.user_name)
    adopted = existing is not None
    if existing is None:
        response = target.send(
            "POST",
            "Users",
            body={"schemas": [USER_SCHEMA], **wanted, "active": True},
            accept=(409,),
        )
        if response.status_code == 409:  # created concurrently by a duplicate of this task
            existing = target.find_user(identity.user_name)
            adopted = True
            if existing is None:
                raise ConnectorFailure(
                    "The target refused the create as a duplicate but has no such user.",
                    transient=False,
                    evidence=target.evidence(body=target.excerpt(response)),
                )
        else:
            existing = target.json(response)
    user_id = str(existing.get("id") or "")
    if not user_id:
        raise ConnectorFailure(
            "The target's user has no id.", transient=False, evidence=target.evidence()
        )
    if existing.get("active") is False:  # an adopted, disabled account: the joiner needs it on
        target.patch(_users_path(user_id), [{"op": "replace", "path": "active", "value": True}])
    user = target.get_resource(_users_path(user_id))
    if user is None:
        raise _unchanged(target, f"user {user_id} is not there")
    wrong = _mismatches({"userName": identity.user_name, "active": True}, user)
    if wrong:
        raise _unchanged(target, ", ".join(wrong), read_back=_read_back_summary(user))
    return target.evidence(
        external_id=user_id,
        username=str(user.get("userName") or identity.user_name),
        adopted=adopted,
        read_back=_read_back_summary(user),
    )


def _update(target: ScimTarget, task: ProvisioningTask) -> dict[str, Any]:
    user_id, account = _target_user_id(target, task, waiting_is_transient=False)
    identity = task.identity or account.identity
    if identity is None:
        raise ConnectorFailure("An update task needs a person.", transient=False)
    wanted = _user_attributes(identity)
    target.patch(_users_path(user_id), [{"op": "replace", "value": wanted}])
    user = target.get_resource(_users_path(user_id))
    if user is None:
        raise _unchanged(target, f"user {user_id} is not there")
    wrong = _mismatches(wanted, user)
    if wrong:
        raise _unchanged(target, ", ".join(wrong), read_back=_read_back_summary(user))
    return target.evidence(
        external_id=user_id, username=user.get("userName"), read_back=_read_back_summary(user)
    )


def _set_active(target: ScimTarget, task: ProvisioningTask, active: bool) -> dict[str, Any]:
    user_id, account = _target_user_id(target, task, waiting_is_transient=False)
    target.patch(_users_path(user_id), [{"op": "replace", "path": "active", "value": active}])
    user = target.get_resource(_users_path(user_id))
    if user is None:
        raise _unchanged(target, f"user {user_id} is not there")
    if user.get("active") is not active:
        raise _unchanged(
            target, f"active is {user.get('active')!r}", read_back=_read_back_summary(user)
        )
    return target.evidence(
        external_id=user_id,
        username=user.get("userName") or account.username,
        read_back=_read_back_summary(user),
    )


def _member_ids(group: dict[str, Any]) -> set[str]:
    return {
        str(m.get("value"))
        for m in group.get("members") or []
        if isinstance(m, dict) and m.get("value") is not None
    }


def _membership(target: ScimTarget, task: ProvisioningTask, add: bool) -> dict[str, Any]:
    if task.entitlement is None or not task.entitlement.external_value:
        raise ConnectorFailure("The entitlement names no target group.", transient=False)
    group_id = task.entitlement.external_value
    # A grant may run before the create task of the same event has finished: wait for it.
    user_id, account = _target_user_id(target, task, waiting_is_transient=add)
    path = _groups_path(group_id)
    if add:
        target.patch(path, [{"op": "add", "path": "members", "value": [{"value": user_id}]}])
    else:
        response = target.patch(
            path,
            [{"op": "remove", "path": f"members[value eq {_filter_literal(user_id)}]"}],
            accept=(400,),
        )
        if response.status_code == 400:
            # noTarget: nothing to remove (a retry of a remove that worked); anything else
            # is a real refusal.
            try:
                scim_type = (response.json() or {}).get("scimType")
            except ValueError:
                scim_type = None
            if scim_type != "noTarget":
                target.exchanges[-1]["body"] = target.excerpt(response)
                raise ConnectorFailure(
                    f"PATCH {path}: the target answered 400.",
                    transient=False,
                    evidence=target.evidence(),
                )
    group = target.get_resource(path)
    if group is None:
        raise ConnectorFailure(
            f"Group {group_id} is not in the target.", transient=False, evidence=target.evidence()
        )
    present = user_id in _member_ids(group)
    if present is not add:
        raise _unchanged(
            target,
            f"{user_id} is {'not ' if add else 'still '}a member of group {group_id}",
            read_back={"member_present": present},
        )
    return target.evidence(
        external_id=user_id,
        username=account.username,
        group_id=group_id,
        read_back={"member_present": present},
    )


_OPERATIONS = {
    Op.CREATE_ACCOUNT: _create,
    Op.UPDATE_ACCOUNT: _update,
    Op.DISABLE_ACCOUNT: lambda target, task: _set_active(target, task, False),
    Op.ENABLE_ACCOUNT: lambda target, task: _set_active(target, task, True),
    Op.GRANT: lambda target, task: _membership(target, task, True),
    Op.REVOKE: lambda target, task: _membership(target, task, False),
}


def _connect(task: ProvisioningTask) -> ScimTarget:
    try:
        profile = profile_for(task.application)
        base_url, token = profile.scim_base_url, profile.scim_token
    except DomainError as exc:  # the key changed: the stored secrets cannot be read
        raise ConnectorFailure(exc.message, transient=False) from None
    if isinstance(base_url, UndecryptableSecret) or isinstance(token, UndecryptableSecret):
        raise ConnectorFailure(
            "The stored connector secrets cannot be decrypted with the current "
            "STEWARD_ENCRYPTION_KEY; enter them again.",
            transient=False,
        )
    if not (base_url and token):
        raise ConnectorFailure("No SCIM connector is configured.", transient=False)
    return ScimTarget(base_url=base_url, token=token)


def carry_out(task: ProvisioningTask) -> dict[str, Any]:
    """Perform the task's operation in the target and read it back; the evidence, or
    :class:`ConnectorFailure`."""
    operation = _OPERATIONS.get(task.operation)
    if operation is None:
        raise ConnectorFailure(f"Unknown operation {task.operation!r}.", transient=False)
    with _connect(task) as target:
        evidence = operation(target, task)
    return {"operation": task.operation, **evidence}


def run_task(task: ProvisioningTask) -> None:
    """Carry out one claimed (``in_progress``) task and record exactly one outcome."""
    from governance.lifecycle.services import task_record_failure, task_record_verified

    actor = Actor.system("provisioning")
    try:
        evidence = carry_out(task)
    except ConnectorFailure as failure:
        error, transient, details = failure.message, failure.transient, failure.evidence
        waiting = failure.waiting
    except Exception as exc:  # a bug must not leave the task in progress until the sweep
        log.exception("Provisioning task %s: unexpected connector error", task.pk)
        error = f"Unexpected connector error ({type(exc).__name__}); see the worker log."
        transient, details, waiting = False, {}, False
    else:
        try:
            task_record_verified(actor=actor, task=task, evidence=evidence)
        except InvalidTransition:
            log.warning(
                "Provisioning task %s left in_progress while it ran (cancelled?); "
                "its verified outcome was not recorded",
                task.pk,
            )
        return
    log.info("Provisioning task %s failed: %s", task.pk, error)
    # One key for the latest failure: the services merge evidence, and a later success must
    # not carry stale details of an earlier attempt at the top level.
    evidence = {
        "operation": task.operation,
        "last_failure": {"attempt": task.attempts, "error": error, **details},
    }
    try:
        task_record_failure(
            actor=actor,
            task=task,
            error=error,
            transient=transient,
            evidence=evidence,
            count_attempt=not waiting,
        )
    except InvalidTransition:
        log.warning(
            "Provisioning task %s left in_progress while it ran (cancelled?); "
            "its failure was not recorded",
            task.pk,
        )
