"""API tokens in the portal: issue (plaintext shown once), list, revoke. Never edit or delete.

Writes go through :mod:`governance.api.tokens`, so each one has its audit event. A security
admin sees every token; anyone else with view permission (auditors) reads them.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_permission_codename
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html

from governance.api.models import ApiToken
from governance.api.tokens import token_create, token_revoke
from governance.core.actor import Actor
from governance.core.errors import DomainError, InvalidTransition
from governance.portal.models import User

VIEW_FIELDS = (
    "user",
    "label",
    "token_prefix",
    "state",
    "created_at",
    "created_by",
    "last_used_at",
    "revoked_at",
    "revoked_by",
)


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


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    add_form = ApiTokenAddForm
    list_display = ("token_prefix", "label", "user", "created_at", "last_used_at", "state")
    list_filter = (StateFilter, "created_at", "last_used_at")
    search_fields = ("token_prefix", "label", "user__username")
    list_select_related = ("user",)
    actions = ["revoke_selected"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_revoke_permission(self, request):
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    def get_fields(self, request, obj=None):
        return ("user", "label") if obj is None else VIEW_FIELDS

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else VIEW_FIELDS

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, **kwargs)

    @admin.display(description="State", ordering="revoked_at")
    def state(self, obj):
        if obj.revoked_at is None:
            return "Active"
        return f"Revoked {obj.revoked_at:%Y-%m-%d %H:%M}"

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request, obj, form, change):
        if change:
            return
        token, plaintext = token_create(
            actor=Actor.for_user(request.user),
            user=form.cleaned_data["user"],
            label=form.cleaned_data["label"],
        )
        for field in token._meta.concrete_fields:
            setattr(obj, field.attname, getattr(token, field.attname))
        obj._state.adding = False
        obj._state.db = token._state.db
        messages.success(
            request,
            format_html(
                "Copy this token now; it will not be shown again: <code>{}</code>", plaintext
            ),
        )

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        tokens = list(queryset.select_related("user").order_by("pk"))
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Revoke API tokens?",
                "opts": self.opts,
                "tokens": tokens,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            request.current_app = self.admin_site.name
            return TemplateResponse(request, "admin/api/revoke_confirmation.html", context)
        actor = Actor.for_user(request.user)
        revoked = skipped = 0
        for token in tokens:
            try:
                token_revoke(actor=actor, token=token)
            except InvalidTransition:
                skipped += 1
            else:
                revoked += 1
        message = f"Revoked {revoked} token(s)."
        if skipped:
            message += f" {skipped} were already revoked."
        self.message_user(request, message, messages.SUCCESS if revoked else messages.WARNING)
        return None
