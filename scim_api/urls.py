"""SCIM 2.0 endpoints (RFC 7644 §3.2) under /scim/v2/. Paths are case-insensitive (the
Entra validator sends /users) and a trailing slash is tolerated."""

from django.urls import re_path

from scim_api import bulk, views

app_name = "scim"
ID = r"(?P<resource_id>[^/]+)"

urlpatterns = [
    re_path(r"^(?i:users)/?$", views.UsersView.as_view(), name="users"),
    re_path(r"^(?i:users)/\.search/?$", views.UsersSearchView.as_view(), name="users-search"),
    re_path(rf"^(?i:users)/{ID}/?$", views.UserView.as_view(), name="user"),
    re_path(r"^(?i:groups)/?$", views.GroupsView.as_view(), name="groups"),
    re_path(r"^(?i:groups)/\.search/?$", views.GroupsSearchView.as_view(), name="groups-search"),
    re_path(rf"^(?i:groups)/{ID}/?$", views.GroupView.as_view(), name="group"),
    re_path(r"^\.search/?$", views.RootSearchView.as_view(), name="search"),
    re_path(r"^(?i:bulk)/?$", bulk.BulkView.as_view(), name="bulk"),
    re_path(
        r"^(?i:serviceproviderconfig)/?$",
        views.ServiceProviderConfigView.as_view(),
        name="service-provider-config",
    ),
    re_path(r"^(?i:resourcetypes)/?$", views.ResourceTypesView.as_view(), name="resource-types"),
    re_path(
        r"^(?i:resourcetypes)/(?P<name>[^/]+)/?$",
        views.ResourceTypesView.as_view(),
        name="resource-type",
    ),
    re_path(r"^(?i:schemas)/?$", views.SchemasView.as_view(), name="schemas"),
    re_path(r"^(?i:schemas)/(?P<urn>[^/]+)/?$", views.SchemasView.as_view(), name="schema"),
    re_path(r"^.*$", views.NotFoundView.as_view(), name="not-found"),
]
