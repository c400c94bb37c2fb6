"""API tokens in the portal: issue (plaintext shown once), list, revoke. Never edit or delete.

Writes go through :mod:`governance.api.tokens`, so each one has its audit event. A security
admin sees every token; anyone else with view permission (auditors) reads them.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin

from governance.api.models import ApiToken
from governance.api.tokens import token_create, token_revoke
from governance.core.token_admin import HashedTokenAdmin, TokenStateFilter
from governance.portal.models import User


class ApiTokenAddForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("user", "label")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = User.objects.filter(is_active=True).order_by("username")
        self.fields[
            "user"
        ].help_text = "The token acts as this portal user, with their role's permissions and scope."


@admin.register(ApiToken)
class ApiTokenAdmin(HashedTokenAdmin):
    add_form = ApiTokenAddForm
    holder_field = "user"
    revoke_title = "Revoke API tokens?"
    list_display = ("token_prefix", "label", "user", "created_at", "last_used_at", "state")
    list_filter = (TokenStateFilter, "created_at", "last_used_at")
    search_fields = ("token_prefix", "label", "user__username")
    list_select_related = ("user",)

    def issue(self, *, actor, cleaned_data):
        return token_create(actor=actor, user=cleaned_data["user"], label=cleaned_data["label"])

    def revoke(self, *, actor, token):
        token_revoke(actor=actor, token=token)

    def revoke_template(self):
        return "admin/api/revoke_confirmation.html"
