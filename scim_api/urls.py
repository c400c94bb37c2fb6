"""SCIM 2.0 endpoints (RFC 7644 §3.2) under /scim/v2/. Paths are case-insensitive (the
Entra validator sends /users) and a trailing slash is tolerated."""

from django.urls import re_path

from scim_api import bulk, views

app_name = "scim"


def _ci(word: str) -> str:
    """A case-insensitive pattern that Django can still reverse ("[Uu][Ss]...")."""
    return "".join(f"[{c}{c.swapcase()}]" if c.isalpha() else c for c in word)


ID = r"(?P<resource_id>[^/]+)"
USERS, GROUPS, BULK = _ci("Users"), _ci("Groups"), _ci("Bulk")
SPC, RTYPES, SCHEMAS = _ci("ServiceProviderConfig"), _ci("ResourceTypes"), _ci("Schemas")

urlpatterns = [
    re_path(rf"^{USERS}/?$", views.UsersView.as_view(), name="users"),
    re_path(rf"^{USERS}/\.search/?$", views.UsersSearchView.as_view(), name="users-search"),
    re_path(rf"^{USERS}/{ID}/?$", views.UserView.as_view(), name="user"),
    re_path(rf"^{GROUPS}/?$", views.GroupsView.as_view(), name="groups"),
    re_path(rf"^{GROUPS}/\.search/?$", views.GroupsSearchView.as_view(), name="groups-search"),
    re_path(rf"^{GROUPS}/{ID}/?$", views.GroupView.as_view(), name="group"),
    re_path(r"^\.search/?$", views.RootSearchView.as_view(), name="search"),
    re_path(rf"^{BULK}/?$", bulk.BulkView.as_view(), name="bulk"),
    re_path(
        rf"^{SPC}/?$",
        views.ServiceProviderConfigView.as_view(),
        name="service-provider-config",
    ),
    re_path(rf"^{RTYPES}/?$", views.ResourceTypesView.as_view(), name="resource-types"),
    re_path(
        rf"^{RTYPES}/(?P<name>[^/]+)/?$",
        views.ResourceTypesView.as_view(),
        name="resource-type",
    ),
    re_path(rf"^{SCHEMAS}/?$", views.SchemasView.as_view(), name="schemas"),
    re_path(rf"^{SCHEMAS}/(?P<urn>[^/]+)/?$", views.SchemasView.as_view(), name="schema"),
    re_path(r"^.*$", views.NotFoundView.as_view(), name="not-found"),
]
