"""The admin of hashed bearer tokens (SCIM tokens of a source, API tokens of a user): issue
with the plaintext shown once, list, revoke with a confirmation. Never edit or delete: a
revoked token stays listed so the audit log keeps pointing at something.

Subclasses name the holder field and call their own token services in :meth:`issue` and
:meth:`revoke`, so every write has its audit event.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_permission_codename
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html

from governance.core.actor import Actor
from governance.core.errors import DomainError, InvalidTransition


class TokenStateFilter(admin.SimpleListFilter):
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


class HashedTokenAdmin(admin.ModelAdmin):
    add_form: Any
    #: The token's holder: ``source`` for SCIM tokens, ``user`` for API tokens.
    holder_field: str
    revoke_title: str
    actions = ["revoke_selected"]

    def issue(self, *, actor: Actor, cleaned_data: dict) -> tuple[Any, str]:
        """Create the token through its service; returns the row and the plaintext."""
        raise NotImplementedError

    def revoke(self, *, actor: Actor, token: Any) -> None:
        raise NotImplementedError

    def revoke_template(self) -> Any:
        """The confirmation page of the revoke action (a template name or a template)."""
        raise NotImplementedError

    # token_hash is deliberately absent: it is not a secret, but nobody needs to see it.
    def view_fields(self) -> tuple[str, ...]:
        return (
            self.holder_field,
            "label",
            "token_prefix",
            "state",
            "created_at",
            "created_by",
            "last_used_at",
            "revoked_at",
            "revoked_by",
        )

    # Existing tokens are never edited (only revoked) nor deleted (revocation keeps history).
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_revoke_permission(self, request):
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    def get_fields(self, request, obj=None):
        return (self.holder_field, "label") if obj is None else self.view_fields()

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.view_fields()

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
        # The service refuses what the form could not foresee (a holder disabled meanwhile);
        # the admin's transaction has rolled back by the time this answers.
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request, obj, form, change):
        if change:  # unreachable: existing tokens are read-only
            return
        token, plaintext = self.issue(
            actor=Actor.for_user(request.user), cleaned_data=form.cleaned_data
        )
        # The admin goes on with ``obj`` (change log, redirect): make it the saved row.
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
        tokens = list(queryset.select_related(self.holder_field).order_by("pk"))
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": self.revoke_title,
                "opts": self.opts,
                "tokens": tokens,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            request.current_app = self.admin_site.name
            return TemplateResponse(request, self.revoke_template(), context)
        actor = Actor.for_user(request.user)
        revoked = skipped = 0
        for token in tokens:
            try:
                self.revoke(actor=actor, token=token)
            except InvalidTransition:
                skipped += 1
            else:
                revoked += 1
        message = f"Revoked {revoked} token(s)."
        if skipped:
            message += f" {skipped} were already revoked."
        self.message_user(request, message, messages.SUCCESS if revoked else messages.WARNING)
        return None  # back to the changelist, filters kept
