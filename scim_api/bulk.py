"""POST /Bulk (RFC 7644 §3.7): many operations in one request, with bulkId references.

Each operation runs the same handler as its single-resource endpoint inside its own
savepoint, so one failure rolls back only that operation. ``failOnErrors`` stops after that
many errors. An operation whose ``bulkId:`` reference names a resource not yet created is
retried after the others (§3.7.2); one that still cannot be resolved fails with 409.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction

from scim_api import views
from scim_api.errors import ScimError, error_body, from_drf
from scim_api.schema import BULK_REQUEST_SCHEMA, BULK_RESPONSE_SCHEMA

_PATH = re.compile(r"^/(?P<kind>Users|Groups)(?:/(?P<id>[^/]+))?/?$", re.IGNORECASE)
_REF = "bulkid:"


class _Unresolved(Exception):
    pass


def _resolve(value: Any, created: dict[str, str]) -> Any:
    if isinstance(value, str) and value.lower().startswith(_REF):
        key = value[len(_REF) :]
        if key not in created:
            raise _Unresolved(key)
        return created[key]
    if isinstance(value, list):
        return [_resolve(v, created) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, created) for k, v in value.items()}
    return value


def _resolve_path(path: Any, created: dict[str, str]) -> Any:
    """``/Groups/bulkId:g1`` names the resource created by the operation with bulkId g1."""
    if not isinstance(path, str):
        return path
    return "/".join(str(_resolve(part, created)) for part in path.split("/"))


def _location(ctx, path: Any) -> str | None:
    """The resource URL of a bulk operation's path, for results without a body (§3.7.3:
    ``location`` is required in every response except a failed POST)."""
    match = _PATH.match(path) if isinstance(path, str) else None
    if not match or not match["id"]:
        return None
    kind = "Users" if match["kind"].lower() == "users" else "Groups"
    return f"{ctx.base}/{kind}/{match['id']}"


def _run(ctx, method: str, path: str, data: Any) -> tuple[int, Any, dict]:
    match = _PATH.match(path or "")
    if not match:
        raise ScimError(400, f"Unsupported bulk path {str(path)[:100]!r}.", "invalidPath")
    kind, resource_id = match["kind"].lower(), match["id"]
    if method == "POST" and resource_id is None:
        return (views.user_create if kind == "users" else views.group_create)(ctx, data)
    if resource_id is None:
        raise ScimError(400, f"{method} needs a resource id in the path.", "invalidPath")
    handlers = {
        ("users", "PUT"): views.user_replace,
        ("users", "PATCH"): views.user_patch,
        ("users", "DELETE"): views.user_delete,
        ("groups", "PUT"): views.group_replace,
        ("groups", "PATCH"): views.group_patch,
        ("groups", "DELETE"): views.group_delete,
    }
    handler = handlers.get((kind, method))
    if handler is None:
        raise ScimError(400, f"Method {method} is not allowed on {path}.", "invalidSyntax")
    if method == "DELETE":
        return handler(ctx, resource_id)
    return handler(ctx, resource_id, data)


class BulkView(views.ScimView):
    def post(self, request):
        ctx = self.context(request)
        body = self.body(request)
        if not isinstance(body, dict):
            raise ScimError(400, "The bulk request must be a JSON object.", "invalidSyntax")
        lowered = {str(k).lower(): v for k, v in body.items()}
        schemas = lowered.get("schemas")
        if not isinstance(schemas, list) or BULK_REQUEST_SCHEMA.lower() not in {
            str(s).lower() for s in schemas
        }:
            raise ScimError(400, f"schemas must contain {BULK_REQUEST_SCHEMA}.", "invalidSyntax")
        operations = lowered.get("operations")
        if not isinstance(operations, list) or not operations:
            raise ScimError(400, "Operations must be a non-empty list.", "invalidSyntax")
        if len(operations) > views.MAX_BULK_OPERATIONS:
            raise ScimError(
                413, f"At most {views.MAX_BULK_OPERATIONS} operations per bulk request."
            )
        fail_on_errors = lowered.get("failonerrors")
        if fail_on_errors is not None and (
            not isinstance(fail_on_errors, int)
            or isinstance(fail_on_errors, bool)
            or fail_on_errors < 1
        ):
            raise ScimError(400, "failOnErrors must be a positive integer.", "invalidValue")
        return views._reply(200, self._execute(ctx, operations, fail_on_errors))

    def _execute(self, ctx, operations: list, fail_on_errors: int | None) -> dict:
        created: dict[str, str] = {}
        results: dict[int, dict] = {}
        pending = list(range(len(operations)))
        errors = 0
        while pending:
            progress, deferred = False, []
            for index in pending:
                if fail_on_errors is not None and errors >= fail_on_errors:
                    break
                op = operations[index]
                try:
                    outcome = self._one(ctx, op, created)
                except _Unresolved:
                    deferred.append(index)
                    continue
                progress = True
                results[index] = outcome
                if int(outcome["status"]) >= 400:
                    errors += 1
            if fail_on_errors is not None and errors >= fail_on_errors:
                break
            if not progress:
                for index in deferred:
                    op = operations[index] if isinstance(operations[index], dict) else {}
                    results[index] = self._failure(
                        op, ScimError(409, "A bulkId reference cannot be resolved.", "invalidValue")
                    )
                break
            pending = deferred
        return {
            "schemas": [BULK_RESPONSE_SCHEMA],
            "Operations": [results[i] for i in sorted(results)],
        }

    def _one(self, ctx, op: Any, created: dict[str, str]) -> dict:
        if not isinstance(op, dict):
            return self._failure(
                {}, ScimError(400, "Each operation must be an object.", "invalidSyntax")
            )
        lowered = {str(k).lower(): v for k, v in op.items()}
        method = str(lowered.get("method") or "").upper()
        bulk_id = lowered.get("bulkid")
        if method not in {"POST", "PUT", "PATCH", "DELETE"}:
            return self._failure(
                op, ScimError(400, "method must be POST, PUT, PATCH or DELETE.", "invalidSyntax")
            )
        if method == "POST" and not (isinstance(bulk_id, str) and bulk_id):
            return self._failure(
                op, ScimError(400, "POST operations need a bulkId.", "invalidValue")
            )
        path = _resolve_path(lowered.get("path"), created)
        data = _resolve(lowered.get("data"), created)
        try:
            with transaction.atomic():
                status, body, headers = _run(ctx, method, path, data)
        except _Unresolved:
            raise
        except Exception as exc:  # every failure becomes this operation's error response
            return self._failure(op, exc if isinstance(exc, ScimError) else from_drf(exc))
        result: dict[str, Any] = {"method": method, "status": str(status)}
        if bulk_id:
            result["bulkId"] = bulk_id
        location = (
            headers.get("Location")
            or (body or {}).get("meta", {}).get("location")
            or _location(ctx, path)
        )
        if location:
            result["location"] = location
        if headers.get("ETag"):
            result["version"] = headers["ETag"]
        if method == "POST" and body:
            created[bulk_id] = body["id"]
        return result

    @staticmethod
    def _failure(op: dict, error: ScimError) -> dict:
        lowered = {str(k).lower(): v for k, v in op.items()} if isinstance(op, dict) else {}
        result: dict[str, Any] = {
            "method": str(lowered.get("method") or ""),
            "status": str(error.status),
            "response": error_body(error.status, error.detail, error.scim_type),
        }
        if lowered.get("bulkid"):
            result["bulkId"] = lowered["bulkid"]
        return result
