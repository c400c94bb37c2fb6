"""SCIM 2.0 endpoints (RFC 7644) under /scim/v2/."""

app_name = "scim"
urlpatterns: list = []
