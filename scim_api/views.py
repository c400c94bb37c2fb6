"""SCIM 2.0 endpoints (RFC 7644) as plain DRF ``APIView``s.

Views parse the request, apply the identity source's scope, and hand every change to the
governance services (which write the audit event); they never touch the ORM for writes.
The request handlers are plain functions of a :class:`ScimContext` so ``/Bulk`` runs the
very same code for each of its operations.
"""

from __future__ import annotations

import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Prefetch, Q, QuerySet
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.core.actor import Actor
from governance.identities import services
from governance.identities.models import DirectoryGroup, GroupMembership, Identity, IdentitySource
from scim_api import resources
from scim_api.auth import ScimBearerAuthentication
from scim_api.errors import SCIM_CONTENT_TYPE, ScimError, scim_exception_handler
from scim_api.filtering import FilterError, parse_filter
from scim_api.filtering.to_q import group_filter_q, group_sort_key, user_filter_q, user_sort_key
from scim_api.schema import (
    GROUP_RESOURCE_TYPE,
    LIST_RESPONSE_SCHEMA,
    PATCH_OP_SCHEMA,
    RESOURCE_TYPES,
    SCHEMAS,
    USER_RESOURCE_TYPE,
    get_resource_type,
    get_schema,
    resource_type_representation,
    schema_representation,
)

MAX_RESULTS = 200  # filter.maxResults in ServiceProviderConfig
DEFAULT_COUNT = 100
MAX_PAYLOAD = 1_048_576  # bulk.maxPayloadSize and the limit for any request body
MAX_BULK_OPERATIONS = 1000


class ScimRenderer(JSONRenderer):
    media_type = SCIM_CONTENT_TYPE
    format = "scim"
    charset = None


class ScimParser(JSONParser):
    media_type = SCIM_CONTENT_TYPE


class AlwaysScim(BaseContentNegotiation):
    """Answer application/scim+json whatever the Accept header says (RFC 7644 §3.1)."""

    def select_parser(self, request, parsers):
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        for parser in parsers:
            if parser.media_type == content_type:
                return parser
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


@dataclass
class ScimContext:
    source: IdentitySource
    base: str

    @property
    def actor(self) -> Actor:
        return Actor.for_source(self.source)

    def scope(self) -> Q:
        return Q() if self.source.authoritative_for_all else Q(source=self.source)


class ScimView(APIView):
    authentication_classes = [ScimBearerAuthentication]
    permission_classes = [IsAuthenticated]
    renderer_classes = [ScimRenderer]
    parser_classes = [ScimParser, JSONParser]
    content_negotiation_class = AlwaysScim

    def get_exception_handler(self):
        return scim_exception_handler

    def initial(self, request, *args, **kwargs):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_PAYLOAD:
            raise ScimError(413, f"The request body is larger than {MAX_PAYLOAD} bytes.")
        super().initial(request, *args, **kwargs)

    def context(self, request) -> ScimContext:
        base = request.build_absolute_uri("/scim/v2").rstrip("/")
        return ScimContext(source=request.user.source, base=base)

    def body(self, request) -> Any:
        try:
            data = request.data
        except RecursionError:
            raise ScimError(400, "The JSON body is nested too deeply.", "invalidSyntax") from None
        if not request.body:
            raise ScimError(400, "A JSON request body is required.", "invalidSyntax")
        _check_text(data)
        return data


def _check_text(data: Any) -> None:
    """Refuse text no database can store: NUL characters (PostgreSQL rejects them) and
    unpaired UTF-16 surrogates (``"\\ud800"`` is valid JSON but not encodable as UTF-8).
    Iterative, so a deeply nested body cannot exhaust the stack."""
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                ok = False
            else:
                ok = "\x00" not in item
            if not ok:
                raise ScimError(
                    400,
                    "Text values cannot contain NUL characters or unpaired surrogates.",
                    "invalidValue",
                )
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _reply(status: int, body: Any = None, headers: dict | None = None) -> Response:
    response = Response(body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


# ------------------------------------------------------------------------ shared helpers


def _int_param(value: Any, name: str, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ScimError(400, f"{name} must be an integer.", "invalidValue") from None


def _check_preconditions(request, version: str) -> None:
    """If-Match (RFC 7644 §3.14): a stale version is 412, nothing changes."""
    if request is None:
        return
    if_match = request.headers.get("If-Match")
    if if_match:
        tags = [t.strip() for t in if_match.split(",")]
        if "*" not in tags and version not in tags and version.removeprefix("W/") not in tags:
            raise ScimError(412, "The resource changed since you read it (If-Match failed).")


def _not_modified(request, version: str) -> bool:
    if request is None:
        return False
    tags = [t.strip() for t in (request.headers.get("If-None-Match") or "").split(",") if t]
    return "*" in tags or version in tags


@dataclass
class ListQuery:
    filter: str | None = None
    start_index: int = 1
    count: int = DEFAULT_COUNT
    sort_by: str | None = None
    sort_order: str = "ascending"
    attributes: Any = None
    excluded: Any = None

    @classmethod
    def from_params(cls, params) -> ListQuery:
        return cls.build(
            params.get("filter"),
            params.get("startIndex"),
            params.get("count"),
            params.get("sortBy"),
            params.get("sortOrder"),
            params.get("attributes"),
            params.get("excludedAttributes"),
        )

    @classmethod
    def from_search(cls, body: Any) -> ListQuery:
        """POST /.search body (RFC 7644 §3.4.3)."""
        if not isinstance(body, dict):
            raise ScimError(400, "The search request must be a JSON object.", "invalidSyntax")
        lowered = {str(k).lower(): v for k, v in body.items()}
        return cls.build(
            lowered.get("filter"),
            lowered.get("startindex"),
            lowered.get("count"),
            lowered.get("sortby"),
            lowered.get("sortorder"),
            lowered.get("attributes"),
            lowered.get("excludedattributes"),
        )

    @classmethod
    def build(cls, flt, start, count, sort_by, sort_order, attributes, excluded) -> ListQuery:
        if flt is not None and not isinstance(flt, str):
            raise ScimError(400, "filter must be a string.", "invalidFilter")
        start_index = max(1, _int_param(start, "startIndex", 1))
        count_value = min(max(0, _int_param(count, "count", DEFAULT_COUNT)), MAX_RESULTS)
        order = (sort_order or "ascending") if isinstance(sort_order, str | type(None)) else ""
        if order.lower() not in ("ascending", "descending"):
            raise ScimError(400, "sortOrder must be ascending or descending.", "invalidValue")
        if sort_by is not None and not isinstance(sort_by, str):
            raise ScimError(400, "sortBy must be an attribute name.", "invalidValue")
        return cls(flt, start_index, count_value, sort_by, order.lower(), attributes, excluded)


def _parse_filter(text: str | None):
    if text is None or not text.strip():
        return None
    try:
        return parse_filter(text)
    except FilterError as exc:
        raise ScimError(400, f"Invalid filter: {exc}", "invalidFilter") from None


def _list_response(resources_: list[dict], total: int, start_index: int) -> dict:
    return {
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": len(resources_),
        "Resources": resources_,
    }


def _apply_list(qs: QuerySet, query: ListQuery, to_q, sort_key) -> tuple[QuerySet, int]:
    expr = _parse_filter(query.filter)
    if expr is not None:
        try:
            qs = qs.filter(to_q(expr))
        except FilterError as exc:
            raise ScimError(400, f"Invalid filter: {exc}", "invalidFilter") from None
    order = ["created_at", "pk"]
    if query.sort_by:
        try:
            key = sort_key(query.sort_by)
        except FilterError as exc:
            raise ScimError(400, f"Invalid sortBy: {exc}", "invalidValue") from None
        if isinstance(key, str):
            key = f"-{key}" if query.sort_order == "descending" else key
            order = [key, "pk"]
        else:
            key = key.desc() if query.sort_order == "descending" else key.asc()
            order = [key, "pk"]
    total = qs.count()
    offset = query.start_index - 1
    page = qs.order_by(*order)[offset : offset + query.count] if query.count else qs.none()
    return page, total


# ------------------------------------------------------------------------ Users


def users_queryset(ctx: ScimContext, *, with_groups: bool = True) -> QuerySet[Identity]:
    qs = (
        Identity.objects.filter(deleted_at__isnull=True)
        .filter(ctx.scope())
        .select_related("manager")
        .prefetch_related("emails")
    )
    if with_groups:
        qs = qs.prefetch_related(
            Prefetch(
                "memberships",
                queryset=GroupMembership.objects.select_related("group").filter(
                    group__deleted_at__isnull=True
                ),
            )
        )
    return qs


def _uuid_or_404(resource_id: str, kind: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(resource_id))
    except ValueError:
        raise ScimError(404, f"{kind} {str(resource_id)[:100]} not found.") from None


def _get_user(ctx: ScimContext, user_id: str) -> Identity:
    pk = _uuid_or_404(user_id, "User")
    try:
        return users_queryset(ctx).get(pk=pk)
    except Identity.DoesNotExist:
        raise ScimError(404, f"User {pk} not found.") from None


def _user_out(ctx, identity, query: ListQuery | None = None) -> dict:
    attributes = resources.parse_attribute_list(
        query.attributes if query else None, USER_RESOURCE_TYPE
    )
    excluded = resources.parse_attribute_list(query.excluded if query else None, USER_RESOURCE_TYPE)
    data = resources.user_resource(identity, ctx.base)
    return resources.project(data, attributes, excluded)


def users_list(ctx: ScimContext, query: ListQuery) -> dict:
    attributes = resources.parse_attribute_list(query.attributes, USER_RESOURCE_TYPE)
    excluded = resources.parse_attribute_list(query.excluded, USER_RESOURCE_TYPE)
    with_groups = resources.wants("groups", attributes, excluded)
    page, total = _apply_list(
        users_queryset(ctx, with_groups=with_groups), query, user_filter_q, user_sort_key
    )
    items = [
        resources.project(
            resources.user_resource(i, ctx.base, with_groups=with_groups), attributes, excluded
        )
        for i in page
    ]
    return _list_response(items, total, query.start_index)


def _changed_user_fields(identity: Identity, resource: dict) -> tuple[dict, list | None]:
    fields, emails = resources.user_fields(resource)
    stored = resources.identity_fields(identity)
    changes = {k: v for k, v in fields.items() if stored.get(k) != v}
    new_emails = [
        {
            k: v
            for k, v in (
                ("value", e.get("value")),
                ("type", e.get("type")),
                ("primary", bool(e.get("primary"))),
                ("display", e.get("display")),
            )
            if v
        }
        for e in emails
    ]
    return changes, (new_emails if new_emails != resources.identity_emails(identity) else None)


def user_create(ctx: ScimContext, payload: Any) -> tuple[int, dict, dict]:
    resource = resources.normalise_user(payload)
    fields, emails = resources.user_fields(resource)
    identity = services.identity_create(actor=ctx.actor, source=ctx.source, emails=emails, **fields)
    identity = users_queryset(ctx).get(pk=identity.pk)
    body = resources.user_resource(identity, ctx.base)
    return 201, body, {"Location": body["meta"]["location"], "ETag": body["meta"]["version"]}


@transaction.atomic
def user_replace(ctx: ScimContext, user_id: str, payload: Any, request=None):
    identity = _get_user(ctx, user_id)
    _check_preconditions(request, resources._etag(identity.version))
    resource = resources.normalise_user(payload)
    changes, emails = _changed_user_fields(identity, resource)
    if changes or emails is not None:
        services.identity_update(actor=ctx.actor, identity=identity, emails=emails, **changes)
    identity = _get_user(ctx, user_id)
    body = resources.user_resource(identity, ctx.base)
    return 200, body, {"ETag": body["meta"]["version"], "Location": body["meta"]["location"]}


@transaction.atomic
def user_patch(ctx: ScimContext, user_id: str, payload: Any, request=None):
    identity = _get_user(ctx, user_id)
    _check_preconditions(request, resources._etag(identity.version))
    operations = _patch_operations(payload)
    current = resources.user_resource(identity, ctx.base)
    resource = resources.patch_user(current, operations)
    if resource.get("active") is None:
        # Steward has no "unassigned" activation state. Removing ``active`` (RFC 7644
        # §3.5.2.2) keeps the stored value: falling back to the default (true) would
        # silently reactivate a leaver.
        resource["active"] = identity.active
    changes, emails = _changed_user_fields(identity, resource)
    if changes or emails is not None:
        services.identity_update(actor=ctx.actor, identity=identity, emails=emails, **changes)
    identity = _get_user(ctx, user_id)
    body = resources.user_resource(identity, ctx.base)
    return 200, body, {"ETag": body["meta"]["version"], "Location": body["meta"]["location"]}


def user_delete(ctx: ScimContext, user_id: str, request=None):
    identity = _get_user(ctx, user_id)
    _check_preconditions(request, resources._etag(identity.version))
    services.identity_delete(actor=ctx.actor, identity=identity)
    return 204, None, {}


def _patch_operations(payload: Any) -> list:
    if not isinstance(payload, dict):
        raise ScimError(400, "The PATCH body must be a JSON object.", "invalidSyntax")
    lowered = {str(k).lower(): v for k, v in payload.items()}
    schemas = lowered.get("schemas")
    if schemas is not None and (
        not isinstance(schemas, list)
        or PATCH_OP_SCHEMA.lower() not in {str(s).lower() for s in schemas}
    ):
        raise ScimError(400, f"schemas must contain {PATCH_OP_SCHEMA}.", "invalidSyntax")
    operations = lowered.get("operations")
    if not isinstance(operations, list) or not operations:
        raise ScimError(400, "Operations must be a non-empty list.", "invalidSyntax")
    return operations


# ------------------------------------------------------------------------ Groups


def groups_queryset(ctx: ScimContext) -> QuerySet[DirectoryGroup]:
    return DirectoryGroup.objects.filter(deleted_at__isnull=True).filter(ctx.scope())


def _members_prefetch() -> Prefetch:
    return Prefetch(
        "memberships",
        queryset=GroupMembership.objects.select_related("identity").order_by("added_at", "pk"),
    )


def _get_group(ctx: ScimContext, group_id: str, *, members: bool = False) -> DirectoryGroup:
    pk = _uuid_or_404(group_id, "Group")
    qs = groups_queryset(ctx)
    if members:
        qs = qs.prefetch_related(_members_prefetch())
    try:
        return qs.get(pk=pk)
    except DirectoryGroup.DoesNotExist:
        raise ScimError(404, f"Group {pk} not found.") from None


def _wants_members(query: ListQuery | None) -> bool:
    """Whether the response will carry ``members``; if not, they are never read."""
    if query is None:
        return True
    return resources.wants(
        "members",
        resources.parse_attribute_list(query.attributes, GROUP_RESOURCE_TYPE),
        resources.parse_attribute_list(query.excluded, GROUP_RESOURCE_TYPE),
    )


def _check_member_scope(ctx: ScimContext, member_ids: list | None) -> None:
    """New members must be users this source can see (RFC 7644 §3.5.2: the whole request
    fails). Users outside the scope are answered exactly like unknown ids, so a source
    learns nothing about other sources' people; existence is checked by the service."""
    if ctx.source.authoritative_for_all or not member_ids:
        return
    wanted = set()
    for raw in member_ids:
        try:
            wanted.add(uuid.UUID(str(raw)))
        except ValueError:
            continue
    visible = set(
        Identity.objects.filter(deleted_at__isnull=True, pk__in=wanted)
        .filter(ctx.scope())
        .values_list("pk", flat=True)
    )
    hidden = wanted - visible
    if hidden:
        raise ScimError(
            400,
            "Unknown member ids: " + ", ".join(sorted(str(m) for m in hidden)[:10]),
            "invalidValue",
        )


def _group_out(ctx, group, query: ListQuery | None = None) -> dict:
    attributes = resources.parse_attribute_list(
        query.attributes if query else None, GROUP_RESOURCE_TYPE
    )
    excluded = resources.parse_attribute_list(
        query.excluded if query else None, GROUP_RESOURCE_TYPE
    )
    members = group.memberships.all() if resources.wants("members", attributes, excluded) else None
    return resources.project(
        resources.group_resource(group, ctx.base, members=members), attributes, excluded
    )


def groups_list(ctx: ScimContext, query: ListQuery) -> dict:
    attributes = resources.parse_attribute_list(query.attributes, GROUP_RESOURCE_TYPE)
    excluded = resources.parse_attribute_list(query.excluded, GROUP_RESOURCE_TYPE)
    with_members = resources.wants("members", attributes, excluded)
    qs = groups_queryset(ctx)
    if with_members:
        qs = qs.prefetch_related(_members_prefetch())
    page, total = _apply_list(qs, query, group_filter_q, group_sort_key)
    items = [
        resources.project(
            resources.group_resource(
                g, ctx.base, members=g.memberships.all() if with_members else None
            ),
            attributes,
            excluded,
        )
        for g in page
    ]
    return _list_response(items, total, query.start_index)


def group_create(ctx: ScimContext, payload: Any):
    display_name, external_id, member_ids, displays = resources.normalise_group(payload)
    if not isinstance(display_name, str) or not display_name.strip():
        raise ScimError(400, "displayName is required.", "invalidValue")
    _check_member_scope(ctx, member_ids)
    group = services.group_create(
        actor=ctx.actor,
        source=ctx.source,
        display_name=display_name,
        external_id=external_id or "",
        member_ids=member_ids or [],
        displays=displays,
    )
    group = _get_group(ctx, str(group.pk), members=True)
    body = _group_out(ctx, group)
    return 201, body, {"Location": body["meta"]["location"], "ETag": body["meta"]["version"]}


@transaction.atomic
def group_replace(ctx: ScimContext, group_id: str, payload: Any, request=None):
    group = _get_group(ctx, group_id)
    _check_preconditions(request, resources._etag(group.version))
    display_name, external_id, member_ids, displays = resources.normalise_group(payload)
    if not isinstance(display_name, str) or not display_name.strip():
        raise ScimError(400, "displayName is required.", "invalidValue")
    _check_member_scope(ctx, member_ids)
    services.group_update(
        actor=ctx.actor, group=group, display_name=display_name, external_id=external_id or ""
    )
    services.group_members_replace(
        actor=ctx.actor, group=group, identity_ids=member_ids or [], displays=displays
    )
    group = _get_group(ctx, group_id, members=True)
    body = _group_out(ctx, group)
    return 200, body, {"ETag": body["meta"]["version"], "Location": body["meta"]["location"]}


@transaction.atomic
def group_patch(ctx: ScimContext, group_id: str, payload: Any, request=None, query=None):
    group = _get_group(ctx, group_id)
    _check_preconditions(request, resources._etag(group.version))
    operations = _patch_operations(payload)
    current = resources.group_resource(group, ctx.base, members=None)
    plan = resources.patch_group(current, operations)
    changes = {}
    if plan.resource.get("displayName") != current.get("displayName"):
        changes["display_name"] = plan.resource.get("displayName") or ""
    if plan.resource.get("externalId") != current.get("externalId"):
        changes["external_id"] = plan.resource.get("externalId") or ""
    for op in plan.member_ops:
        if op.action in ("add", "replace"):
            _check_member_scope(ctx, op.values)
    if changes:
        services.group_update(actor=ctx.actor, group=group, **changes)
    for op in plan.member_ops:
        if op.action == "add":
            services.group_members_add(
                actor=ctx.actor, group=group, identity_ids=op.values, displays=op.displays
            )
        elif op.action == "remove":
            services.group_members_remove(actor=ctx.actor, group=group, identity_ids=op.values)
        elif op.action == "replace":
            services.group_members_replace(
                actor=ctx.actor, group=group, identity_ids=op.values, displays=op.displays
            )
        elif op.action == "remove_all":
            services.group_members_replace(actor=ctx.actor, group=group, identity_ids=[])
    group = _get_group(ctx, group_id)
    version = resources._etag(group.version)
    if query is not None and (query.attributes or query.excluded):
        group = _get_group(ctx, group_id, members=_wants_members(query))
        return 200, _group_out(ctx, group, query), {"ETag": version}
    return 204, None, {"ETag": version}


def group_delete(ctx: ScimContext, group_id: str, request=None):
    group = _get_group(ctx, group_id)
    _check_preconditions(request, resources._etag(group.version))
    services.group_delete(actor=ctx.actor, group=group)
    return 204, None, {}


# ------------------------------------------------------------------------ views


class UsersView(ScimView):
    def get(self, request):
        return _reply(
            200, users_list(self.context(request), ListQuery.from_params(request.query_params))
        )

    def post(self, request):
        status, body, headers = user_create(self.context(request), self.body(request))
        return _reply(status, body, headers)


class UserView(ScimView):
    def get(self, request, resource_id):
        ctx = self.context(request)
        identity = _get_user(ctx, resource_id)
        version = resources._etag(identity.version)
        if _not_modified(request, version):
            return _reply(304, None, {"ETag": version})
        body = _user_out(ctx, identity, ListQuery.from_params(request.query_params))
        return _reply(200, body, {"ETag": version})

    def put(self, request, resource_id):
        return _reply(
            *user_replace(self.context(request), resource_id, self.body(request), request)
        )

    def patch(self, request, resource_id):
        status, body, headers = user_patch(
            self.context(request), resource_id, self.body(request), request
        )
        query = ListQuery.from_params(request.query_params)
        if body is not None and (query.attributes or query.excluded):
            body = resources.project(
                body,
                resources.parse_attribute_list(query.attributes, USER_RESOURCE_TYPE),
                resources.parse_attribute_list(query.excluded, USER_RESOURCE_TYPE),
            )
        return _reply(status, body, headers)

    def delete(self, request, resource_id):
        return _reply(*user_delete(self.context(request), resource_id, request))


class GroupsView(ScimView):
    def get(self, request):
        return _reply(
            200, groups_list(self.context(request), ListQuery.from_params(request.query_params))
        )

    def post(self, request):
        return _reply(*group_create(self.context(request), self.body(request)))


class GroupView(ScimView):
    def get(self, request, resource_id):
        ctx = self.context(request)
        query = ListQuery.from_params(request.query_params)
        group = _get_group(ctx, resource_id, members=_wants_members(query))
        version = resources._etag(group.version)
        if _not_modified(request, version):
            return _reply(304, None, {"ETag": version})
        return _reply(200, _group_out(ctx, group, query), {"ETag": version})

    def put(self, request, resource_id):
        return _reply(
            *group_replace(self.context(request), resource_id, self.body(request), request)
        )

    def patch(self, request, resource_id):
        query = ListQuery.from_params(request.query_params)
        return _reply(
            *group_patch(self.context(request), resource_id, self.body(request), request, query)
        )

    def delete(self, request, resource_id):
        return _reply(*group_delete(self.context(request), resource_id, request))


class UsersSearchView(ScimView):
    def post(self, request):
        query = ListQuery.from_search(self.body(request))
        return _reply(200, users_list(self.context(request), query))


class GroupsSearchView(ScimView):
    def post(self, request):
        query = ListQuery.from_search(self.body(request))
        return _reply(200, groups_list(self.context(request), query))


class RootSearchView(ScimView):
    """POST /.search across Users and Groups (RFC 7644 §3.4.3): users first, then groups.

    The page is cut from the concatenation in the database, users then groups, so any
    ``startIndex`` reaches every resource, however many users there are.
    """

    def post(self, request):
        ctx = self.context(request)
        query = ListQuery.from_search(self.body(request))
        attributes = _names_per_type(query.attributes, fallback=["id"])
        excluded = _names_per_type(query.excluded, fallback=None)
        fits_users = _filter_fits(query.filter, user_filter_q)
        fits_groups = _filter_fits(query.filter, group_filter_q)
        if not fits_users and not fits_groups:
            raise ScimError(400, "The filter fits neither Users nor Groups.", "invalidFilter")
        offset = query.start_index - 1
        page: list[dict] = []
        total = 0
        users_total = 0
        if fits_users:
            name = USER_RESOURCE_TYPE.name
            users = users_list(
                ctx,
                ListQuery(
                    query.filter,
                    offset + 1,
                    query.count,
                    None,
                    "ascending",
                    attributes[name],
                    excluded[name],
                ),
            )
            page += users["Resources"]
            users_total = total = users["totalResults"]
        if fits_groups:
            name = GROUP_RESOURCE_TYPE.name
            groups = groups_list(
                ctx,
                ListQuery(
                    query.filter,
                    max(0, offset - users_total) + 1,
                    query.count - len(page),
                    None,
                    "ascending",
                    attributes[name],
                    excluded[name],
                ),
            )
            page += groups["Resources"]
            total += groups["totalResults"]
        return _reply(200, _list_response(page, total, query.start_index))


def _names_per_type(raw: Any, *, fallback: list[str] | None) -> dict[str, Any]:
    """Split a /.search ``attributes`` or ``excludedAttributes`` list by resource type.

    A search across resource types (RFC 7644 §3.4.3) may name attributes only one type
    has (``members``, ``name``); each type gets the names it knows. A name no type knows
    is still 400 invalidValue. A type left with none of the requested names gets
    ``fallback``: ``["id"]`` for ``attributes`` (only what is always returned, never the
    whole representation), ``None`` for ``excludedAttributes``.
    """
    types = (USER_RESOURCE_TYPE, GROUP_RESOURCE_TYPE)
    if raw is None:
        return {rt.name: None for rt in types}
    items = raw if isinstance(raw, list) else str(raw).split(",")
    kept: dict[str, list] = {rt.name: [] for rt in types}
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        known = False
        for rt in types:
            try:
                resources.parse_attribute_list([item], rt)
            except ScimError:
                continue
            kept[rt.name].append(item)
            known = True
        if not known:
            resources.parse_attribute_list([item], types[0])  # raises the 400
    if not any(kept.values()):
        return {rt.name: None for rt in types}
    return {name: names or fallback for name, names in kept.items()}


def _filter_fits(text, to_q) -> bool:
    expr = _parse_filter(text)
    if expr is None:
        return True
    try:
        to_q(expr)
    except FilterError:
        return False
    return True


# ------------------------------------------------------------------------ discovery


def _service_provider_config(base: str) -> dict:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://steward.invalid/docs/scim",
        "patch": {"supported": True},
        "bulk": {
            "supported": True,
            "maxOperations": MAX_BULK_OPERATIONS,
            "maxPayloadSize": MAX_PAYLOAD,
        },
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "A per-identity-source token created with manage.py scim_token.",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base}/ServiceProviderConfig",
        },
    }


class ServiceProviderConfigView(ScimView):
    def get(self, request):
        return _reply(200, _service_provider_config(self.context(request).base))


class ResourceTypesView(ScimView):
    def get(self, request, name=None):
        base = self.context(request).base
        if name is not None:
            rt = get_resource_type(name)
            if rt is None:
                raise ScimError(404, f"Resource type {name} not found.")
            return _reply(200, resource_type_representation(rt, base))
        items = [resource_type_representation(rt, base) for rt in RESOURCE_TYPES.values()]
        return _reply(200, _list_response(items, len(items), 1))


class SchemasView(ScimView):
    def get(self, request, urn=None):
        base = self.context(request).base
        if urn is not None:
            schema = get_schema(urllib.parse.unquote(urn))
            if schema is None:
                raise ScimError(404, f"Schema {urn} not found.")
            return _reply(200, schema_representation(schema, base))
        items = [schema_representation(s, base) for s in SCHEMAS.values()]
        return _reply(200, _list_response(items, len(items), 1))


class NotFoundView(ScimView):
    """Any other URL under /scim/v2/: a SCIM 404, after authentication."""

    def _missing(self, request, *args, **kwargs):
        raise ScimError(404, f"No SCIM endpoint at {request.path}.")

    get = post = put = patch = delete = _missing
