"""Non-human identities in the admin.

- NHIs: list with OWASP NHI Top 10 risk flags (column and filter), ownership history and
  credentials on the NHI's page; owners are assigned or transferred (one or in bulk) with a
  reason through a confirmation page calling ``nhi_assign_owner``; CSV import with a preview.
- Credentials: metadata only, with their rotation state; rotations are recorded with
  evidence through ``credential_record_rotation``.
- Hand-offs: "My hand-offs" for the proposed person, who accepts or declines; security
  admins see and answer all of them. Rotation tasks: open work with evidence once done.

Application owners see the rows of their applications only; security admins and auditors
see everything. Every change goes through a service.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from governance.core.actor import Actor
from governance.core.admin_base import AuditedModelAdmin, sees_everything
from governance.core.errors import DomainError
from governance.identities.models import Identity
from governance.nhi import imports, selectors, services
from governance.nhi.models import (
    Credential,
    CredentialPolicy,
    Handoff,
    NonHumanIdentity,
    OwnershipChange,
    RotationTask,
)

CONFIRM = "admin/nhi/confirm.html"
IMPORT = "admin/nhi/import.html"


def _when(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d") if value else "—"


def _confirm(modeladmin, request, *, title, intro, headings, rows, submit, **extra):
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.opts,
        "title": title,
        "subtitle": None,
        "intro": intro,
        "headings": headings,
        "rows": rows,
        "submit_label": submit,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        **extra,
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, CONFIRM, context)


# -------------------------------------------------------------------------------- NHIs


class OwnerStateFilter(admin.SimpleListFilter):
    title = "owner"
    parameter_name = "owner_state"

    def lookups(self, request, model_admin):
        return [("departed", "Owner departed"), ("none", "No owner"), ("active", "Owner active")]

    def queryset(self, request, queryset):
        if self.value() == "departed":
            return queryset.filter(owner__active=False)
        if self.value() == "none":
            return queryset.filter(owner__isnull=True)
        if self.value() == "active":
            return queryset.filter(owner__active=True)
        return queryset


class RiskFlagFilter(admin.SimpleListFilter):
    title = "OWASP NHI risk"
    parameter_name = "flag"

    def lookups(self, request, model_admin):
        return [
            ("any", "Any flag"),
            *((f, f"{f}: {label}") for f, label in selectors.FLAGS.items()),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "any":
            return queryset.filter(selectors.any_flag_q())
        if value in selectors.FLAGS:
            return queryset.filter(selectors.flag_q(value))
        return queryset


class ConsumersField(forms.CharField):
    """Consumers typed one per line or separated by semicolons."""

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return "\n".join(value)
        return value

    def to_python(self, value):
        if isinstance(value, list | tuple):
            return list(value)
        try:
            return services.clean_consumers(super().to_python(value) or "")
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None


class NonHumanIdentityForm(forms.ModelForm):
    consumers = ConsumersField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="What uses it: one system or job per line. More than one is flagged NHI9.",
    )

    class Meta:
        model = NonHumanIdentity
        fields = (
            "name",
            "kind",
            "status",
            "description",
            "purpose",
            "owner",
            "backup_owner",
            "owning_team",
            "application",
            "platform",
            "environment",
            "consumers",
            "auth_method",
            "source_created_at",
            "last_used_at",
            "human_use_observed_at",
        )

    def clean(self):
        data = super().clean()
        for name in ("owner", "backup_owner"):
            person = data.get(name)
            if person is not None and not (person.active and person.deleted_at is None):
                self.add_error(name, f"{person} is not an active person.")
        owner, backup = data.get("owner"), data.get("backup_owner")
        if owner is not None and backup is not None and owner.pk == backup.pk:
            self.add_error("backup_owner", "The backup owner must differ from the owner.")
        return data


class OwnershipChangeInline(admin.TabularInline):
    model = OwnershipChange
    extra = 0
    can_delete = False
    fields = ("changed_at", "kind", "from_owner", "to_owner", "reason", "actor_label")
    readonly_fields = fields
    verbose_name_plural = "Ownership history"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return True  # part of the NHI's page, which is already scoped

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("from_owner", "to_owner")


class CredentialInline(admin.TabularInline):
    model = Credential
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("name", "type", "status", "in_vault", "issued_at", "last_rotated_at", "expires_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return True


class HandoffInline(admin.TabularInline):
    model = Handoff
    extra = 0
    can_delete = False
    fields = ("proposed_at", "from_owner", "proposed_to", "route", "state", "decline_reason")
    readonly_fields = fields
    verbose_name_plural = "Hand-offs"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("from_owner", "proposed_to")


class AssignOwnerForm(forms.Form):
    owner = forms.ModelChoiceField(
        queryset=Identity.objects.filter(active=True, deleted_at__isnull=True),
        widget=AutocompleteSelect(NonHumanIdentity._meta.get_field("owner"), admin.site),
        help_text="An active person, accountable from now on.",
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=1000,
        help_text="Why the owner changes; kept in the ownership history.",
    )


class ImportForm(forms.Form):
    file = forms.FileField(
        required=False,
        help_text=(
            f"CSV, UTF-8, at most {imports.MAX_IMPORT_BYTES // 1024} KB and "
            f"{imports.MAX_IMPORT_ROWS} rows. Columns: {', '.join(imports.COLUMNS)}."
        ),
    )


@admin.register(NonHumanIdentity)
class NonHumanIdentityAdmin(AuditedModelAdmin):
    app_owner_lookup = "application__owners"
    form = NonHumanIdentityForm
    change_list_template = "admin/nhi/nonhumanidentity/change_list.html"
    change_form_template = "admin/nhi/nonhumanidentity/change_form.html"
    list_display = (
        "name",
        "kind",
        "environment",
        "owner_col",
        "application",
        "status",
        "risk_flags",
    )
    list_filter = (
        "status",
        RiskFlagFilter,
        "kind",
        "environment",
        OwnerStateFilter,
        "auth_method",
        "owning_team",
        "application",
    )
    search_fields = (
        "name",
        "description",
        "platform",
        "owning_team",
        "owner__user_name",
        "owner__display_name",
    )
    list_select_related = ("owner", "backup_owner", "application")
    autocomplete_fields = ("owner", "backup_owner", "application")
    inlines = [OwnershipChangeInline, HandoffInline, CredentialInline]
    actions = ["assign_owner", "attest"]
    fieldsets = (
        (None, {"fields": ("name", "kind", "status", "description", "purpose")}),
        ("Accountability", {"fields": ("owner", "backup_owner", "owning_team", "attested_at")}),
        (
            "Where it runs",
            {
                "fields": (
                    "application",
                    "platform",
                    "environment",
                    "consumers",
                    "auth_method",
                )
            },
        ),
        (
            "Activity",
            {"fields": ("source_created_at", "last_used_at", "human_use_observed_at")},
        ),
        ("Risk", {"fields": ("risk_flags_detail",)}),
    )

    def get_queryset(self, request):
        return selectors.with_risk_flags(super().get_queryset(request))

    def get_readonly_fields(self, request, obj=None):
        readonly = ["attested_at", "risk_flags_detail"]
        if obj is not None:
            readonly += ["owner", "status"]  # through "Assign or transfer owner" / hand-offs
        return readonly

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "assign-owner/",
                self.admin_site.admin_view(self.assign_owner_view),
                name="{}_{}_assign_owner".format(*info),
            ),
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="{}_{}_import".format(*info),
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_import": self._can_import(request)}
        return super().changelist_view(request, extra_context)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_assign_owner": self.has_change_permission(request),
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _can_import(self, request) -> bool:
        return self.has_add_permission(request) and self.has_change_permission(request)

    # ---- columns

    @admin.display(description="Owner", ordering="owner__user_name")
    def owner_col(self, obj):
        if obj.owner is None:
            return format_html('<span style="color:#ba2121">No owner</span>')
        if not obj.owner.active:
            return format_html('{} <span style="color:#ba2121">(departed)</span>', obj.owner)
        return str(obj.owner)

    @admin.display(description="Risk flags")
    def risk_flags(self, obj):
        flags = selectors.flags_of(obj)
        if not flags:
            return "—"
        return format_html_join(
            " ",
            '<span title="{}" style="background:#ba2121;color:#fff;padding:0 4px;'
            'border-radius:3px;font-size:11px">{}</span>',
            ((selectors.FLAGS[f], f) for f in flags),
        )

    @admin.display(description="OWASP NHI Top 10 (2025)")
    def risk_flags_detail(self, obj):
        if obj is None or obj.pk is None:
            return "Computed once saved."
        flagged = selectors.with_risk_flags(NonHumanIdentity.objects.filter(pk=obj.pk)).first()
        flags = selectors.flags_of(flagged) if flagged else []
        if not flags:
            return "No risk flags."
        return format_html_join(
            mark_safe("<br>"),
            "{}: {}",
            ((f, selectors.FLAGS[f]) for f in flags),
        )

    # ---- saves through the services

    def save_related(self, request, form, formsets, change):
        actor = Actor.for_user(request.user)
        data = form.cleaned_data
        fields = {name: data[name] for name in services.NHI_FIELDS if name in data}
        if change:
            fields.pop("status", None)
            fields.update({k: data[k] for k in ("name", "kind", "backup_owner") if k in data})
            services.nhi_update(actor=actor, nhi=form.instance, **fields)
            self._save_inlines(request, form, formsets, change)
            return
        nhi = services.nhi_create(
            actor=actor,
            name=data["name"],
            kind=data["kind"],
            owner=data.get("owner"),
            backup_owner=data.get("backup_owner"),
            **fields,
        )
        form.instance.pk = nhi.pk
        form.instance._state.adding = False
        self._save_inlines(request, form, formsets, change)

    def _save_inlines(self, request, form, formsets, change):
        # The inlines are read-only; saving them records nothing but lets the admin log it.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def save_model(self, request, obj, form, change):
        return None  # written in save_related, by the services

    def _changeform_guard(self, request, func, *args, **kwargs):
        try:
            with transaction.atomic():
                return func(*args, **kwargs)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def add_view(self, request, form_url="", extra_context=None):
        return self._changeform_guard(request, super().add_view, request, form_url, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return self._changeform_guard(
            request, super().change_view, request, object_id, form_url, extra_context
        )

    # ---- assign / transfer owner

    @admin.action(description="Assign or transfer owner", permissions=["change"])
    def assign_owner(self, request, queryset):
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
        return HttpResponseRedirect(
            reverse("admin:nhi_nonhumanidentity_assign_owner") + f"?ids={ids}"
        )

    def assign_owner_view(self, request):
        if not self.has_change_permission(request):
            raise PermissionDenied
        raw = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME) or (
            request.GET.get("ids", "").split(",")
        )
        ids = [int(pk) for pk in raw if str(pk).strip().isdigit()][:1000]
        nhis = list(
            self.get_queryset(request).filter(pk__in=ids).select_related("owner", "application")
        )
        eligible = [n for n in nhis if n.status not in services.INACTIVE_NHI]
        skipped = [f"{n} ({n.get_status_display().lower()})" for n in nhis if n not in eligible]
        form = AssignOwnerForm(request.POST if request.POST.get("post") == "yes" else None)
        if request.method == "POST" and request.POST.get("post") == "yes" and eligible:
            if form.is_valid():
                try:
                    services.nhi_bulk_assign_owner(
                        actor=Actor.for_user(request.user),
                        nhis=eligible,
                        owner=form.cleaned_data["owner"],
                        reason=form.cleaned_data["reason"],
                    )
                except DomainError as exc:
                    form.add_error(
                        exc.field if exc.field in form.fields else None,
                        exc.message if len(eligible) == 1 else f"Nothing changed: {exc.message}",
                    )
                else:
                    self.message_user(
                        request,
                        f"{form.cleaned_data['owner']} now owns {len(eligible)} NHI(s).",
                        messages.SUCCESS,
                    )
                    if len(eligible) == 1:
                        return HttpResponseRedirect(
                            reverse("admin:nhi_nonhumanidentity_change", args=[eligible[0].pk])
                        )
                    return HttpResponseRedirect(reverse("admin:nhi_nonhumanidentity_changelist"))
        return _confirm(
            self,
            request,
            title="Assign or transfer owner",
            intro=(
                "The person chosen becomes accountable for these NHIs. Orphaned NHIs become "
                "active again and open hand-offs are closed. To assign a whole team's or "
                "application's NHIs, filter the list by team or application, select them and "
                "use this action."
                if eligible
                else "None of the selected NHIs can get an owner (retired or disabled)."
            ),
            headings=("NHI", "Application", "Current owner", "Status"),
            rows=[(n.name, n.application, n.owner, n.get_status_display()) for n in eligible],
            skipped=skipped,
            submit="Assign owner",
            form=form if eligible else None,
            selected=[n.pk for n in eligible],
        )

    # ---- attest

    def has_attest_permission(self, request):
        """Security admins, and people who own at least one NHI."""
        user = request.user
        if not user.is_authenticated:
            return False
        if user.is_security_admin:
            return True
        return bool(user.identity_id) and (
            NonHumanIdentity.objects.filter(owner_id=user.identity_id).exists()
        )

    @admin.action(description="Attest still needed (owner)", permissions=["attest"])
    def attest(self, request, queryset):
        nhis = list(queryset.select_related("owner", "application"))
        identity_id = request.user.identity_id
        mine = [
            n
            for n in nhis
            if n.status == NonHumanIdentity.Status.ACTIVE
            and (request.user.is_security_admin or n.owner_id == identity_id)
        ]
        if request.POST.get("post") == "yes" and mine:
            actor = Actor.for_user(request.user)
            done = 0
            for nhi in mine:
                try:
                    services.nhi_attest(actor=actor, nhi=nhi)
                except DomainError as exc:
                    self.message_user(request, f"{nhi}: {exc.message}", messages.ERROR)
                else:
                    done += 1
            self.message_user(request, f"Attested {done} NHI(s) as still needed.", messages.SUCCESS)
            return None
        return _confirm(
            self,
            request,
            title="Attest NHIs are still needed",
            intro=(
                "You confirm, as their owner, that these NHIs are still needed and their access "
                "is still right."
                if mine
                else "You can attest only active NHIs you own."
            ),
            headings=("NHI", "Application", "Last attested"),
            rows=[(n.name, n.application, _when(n.attested_at)) for n in mine],
            skipped=[str(n) for n in nhis if n not in mine],
            submit="Yes, attest",
            selected=[n.pk for n in mine],
            action_name="attest",
        )

    # ---- CSV import

    def import_view(self, request):
        if not self._can_import(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import non-human identities from CSV",
            "columns": imports.COLUMNS,
            "required": imports.REQUIRED_COLUMNS,
            "max_kb": imports.MAX_IMPORT_BYTES // 1024,
            "max_rows": imports.MAX_IMPORT_ROWS,
        }
        request.current_app = self.admin_site.name
        form = ImportForm()
        if request.method == "POST":
            stage = request.POST.get("stage")
            if stage == "apply":
                data = request.POST.get("csv_text", "").encode("utf-8")
            else:
                form = ImportForm(request.POST, request.FILES)
                upload = request.FILES.get("file")
                if upload is None:
                    form.add_error("file", "Choose a CSV file.")
                    return TemplateResponse(request, IMPORT, {**context, "form": form})
                if upload.size > imports.MAX_IMPORT_BYTES:
                    data = b"\x00" * (imports.MAX_IMPORT_BYTES + 1)
                else:
                    data = upload.read()
            try:
                rows = imports.parse(data)
            except imports.ImportFileError as exc:
                form.add_error(None, exc.message) if stage != "apply" else None
                context["file_error"] = exc.message
                return TemplateResponse(request, IMPORT, {**context, "form": form})
            if stage == "apply":
                results = imports.apply(actor=Actor.for_user(request.user), rows=rows)
                done = sum(1 for r in results if r.action in ("created", "updated"))
                failed = sum(1 for r in results if r.action == "error")
                self.message_user(
                    request,
                    f"Imported {done} row(s); {failed} row(s) with errors were skipped.",
                    messages.SUCCESS if not failed else messages.WARNING,
                )
                return TemplateResponse(
                    request, IMPORT, {**context, "form": None, "results": results, "applied": True}
                )
            results = imports.preview(rows)
            return TemplateResponse(
                request,
                IMPORT,
                {
                    **context,
                    "form": None,
                    "results": results,
                    "csv_text": data.decode("utf-8-sig"),
                    "good": sum(1 for r in results if r.ok),
                },
            )
        return TemplateResponse(request, IMPORT, {**context, "form": form})


# -------------------------------------------------------------------------------- credentials


class RotationStateFilter(admin.SimpleListFilter):
    title = "rotation"
    parameter_name = "rotation"

    def lookups(self, request, model_admin):
        return [("overdue", "Overdue"), ("expiring", "Expiring soon"), ("ok", "Within policy")]

    def queryset(self, request, queryset):
        if self.value() in ("overdue", "expiring", "ok"):
            return queryset.filter(rotation_state=self.value())
        return queryset


class CredentialEnvironmentFilter(admin.SimpleListFilter):
    title = "used in"
    parameter_name = "used_in"

    def lookups(self, request, model_admin):
        return [*NonHumanIdentity.Environment.choices, ("mixed", "Production and non-production")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "mixed":
            return queryset.filter(used_in_production=True).filter(
                Q(used_in_staging=True) | Q(used_in_development=True)
            )
        if value in NonHumanIdentity.Environment.values:
            return queryset.filter(**{f"used_in_{value}": True})
        return queryset


class RotationForm(forms.Form):
    rotated_at = forms.SplitDateTimeField(
        required=False,
        widget=admin.widgets.AdminSplitDateTime,
        help_text="When the new secret went live; empty: now.",
    )
    evidence_reference = forms.CharField(
        required=False, max_length=200, help_text="Change or ticket reference."
    )
    evidence_note = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 60})
    )
    expires_at = forms.SplitDateTimeField(
        required=False,
        widget=admin.widgets.AdminSplitDateTime,
        help_text="Expiry of the new secret, if it has one.",
    )

    def clean(self):
        data = super().clean()
        if not data.get("evidence_reference") and not (data.get("evidence_note") or "").strip():
            raise forms.ValidationError(
                "Give evidence of the rotation: a change or ticket reference, or a note."
            )
        return data


def _record_rotations(modeladmin, request, credentials, *, action_name, selected):
    """Shared by credentials and rotation tasks: the form, then one service call each."""
    credentials = [c for c in credentials if c.status == Credential.Status.ACTIVE]
    form = RotationForm(request.POST if request.POST.get("post") == "yes" else None)
    if request.POST.get("post") == "yes" and credentials and form.is_valid():
        actor = Actor.for_user(request.user)
        done = 0
        for credential in credentials:
            try:
                services.credential_record_rotation(
                    actor=actor,
                    credential=credential,
                    rotated_at=form.cleaned_data.get("rotated_at"),
                    evidence_note=form.cleaned_data.get("evidence_note", ""),
                    evidence_reference=form.cleaned_data.get("evidence_reference", ""),
                    expires_at=form.cleaned_data.get("expires_at"),
                )
            except DomainError as exc:
                modeladmin.message_user(request, f"{credential}: {exc.message}", messages.ERROR)
            else:
                done += 1
        if done:
            modeladmin.message_user(
                request, f"Recorded the rotation of {done} credential(s).", messages.SUCCESS
            )
        return None
    return _confirm(
        modeladmin,
        request,
        title="Record rotation",
        intro=(
            "Record that these secrets were replaced. Their open rotation tasks close with "
            "the evidence you give; people who left are taken off the list of who knows them."
            if credentials
            else "None of the selected credentials is active; nothing to rotate."
        ),
        headings=("Credential", "Type", "Last rotated", "Expires"),
        rows=[
            (c, c.get_type_display(), _when(c.last_rotated_at), _when(c.expires_at))
            for c in credentials
        ],
        submit="Record rotation",
        form=form if credentials else None,
        selected=selected,
        action_name=action_name,
    )


class CredentialForm(forms.ModelForm):
    class Meta:
        model = Credential
        fields = (
            "nhi",
            "name",
            "type",
            "status",
            "in_vault",
            "location",
            "issued_at",
            "last_rotated_at",
            "expires_at",
            "used_in_production",
            "used_in_staging",
            "used_in_development",
            "known_by",
        )

    def clean(self):
        data = super().clean()
        now = timezone.now()
        issued, rotated = data.get("issued_at"), data.get("last_rotated_at")
        if issued and issued > now + services.CLOCK_SKEW:
            self.add_error("issued_at", "The creation date is in the future.")
        if rotated and issued and rotated < issued:
            self.add_error("last_rotated_at", "The last rotation is before the creation date.")
        if rotated and rotated > now + services.CLOCK_SKEW:
            self.add_error("last_rotated_at", "The last rotation is in the future.")
        return data


@admin.register(Credential)
class CredentialAdmin(AuditedModelAdmin):
    app_owner_lookup = "nhi__application__owners"
    form = CredentialForm
    list_display = (
        "name",
        "nhi",
        "type",
        "used_in",
        "rotation_col",
        "last_rotated_at",
        "expires_at",
        "in_vault",
        "known_by_count",
    )
    list_filter = (
        RotationStateFilter,
        "type",
        "status",
        CredentialEnvironmentFilter,
        "in_vault",
    )
    search_fields = ("name", "nhi__name", "location")
    list_select_related = ("nhi",)
    autocomplete_fields = ("nhi", "known_by")
    actions = ["record_rotation"]
    fieldsets = (
        (None, {"fields": ("nhi", "name", "type", "status")}),
        ("Storage", {"fields": ("in_vault", "location")}),
        ("Lifetime", {"fields": ("issued_at", "last_rotated_at", "expires_at", "rotation_col")}),
        (
            "Use",
            {
                "fields": (
                    "used_in_production",
                    "used_in_staging",
                    "used_in_development",
                    "known_by",
                )
            },
        ),
    )

    def get_queryset(self, request):
        qs = selectors.credential_state_annotated(super().get_queryset(request))
        return qs.annotate(_known=Count("known_by", distinct=True))

    def get_readonly_fields(self, request, obj=None):
        readonly = ["rotation_col"]
        if obj is not None:
            readonly += ["nhi", "last_rotated_at"]  # rotations are recorded with evidence
        return readonly

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "nhi":
            kwargs["queryset"] = selectors.nhis_for_user(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="Used in")
    def used_in(self, obj):
        return ", ".join(obj.environments) or "—"

    @admin.display(description="Rotation", ordering="rotation_state")
    def rotation_col(self, obj):
        state = getattr(obj, "rotation_state", None)
        if state is None:
            return "—"
        colour = {"overdue": "#ba2121", "expiring": "#b26b00"}.get(state, "inherit")
        label = {
            "overdue": "Overdue",
            "expiring": "Expiring soon",
            "ok": "Within policy",
            "revoked": "Revoked",
        }[state]
        return format_html('<span style="color:{}">{}</span>', colour, label)

    @admin.display(description="Known by", ordering="_known")
    def known_by_count(self, obj):
        count = getattr(obj, "_known", 0)
        return f"{count} people" if count != 1 else "1 person"

    @admin.action(description="Record rotation (with evidence)", permissions=["change"])
    def record_rotation(self, request, queryset):
        credentials = list(queryset.select_related("nhi"))
        return _record_rotations(
            self,
            request,
            credentials,
            action_name="record_rotation",
            selected=[c.pk for c in credentials],
        )


@admin.register(CredentialPolicy)
class CredentialPolicyAdmin(AuditedModelAdmin):
    list_display = ("__str__", "nhi_kind", "environment", "max_age_days", "warn_days")
    list_filter = ("nhi_kind", "environment")
    search_fields = ("description",)

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "subtitle": (
                f"Without a matching row, credentials are rotated every "
                f"{selectors.DEFAULT_MAX_AGE_DAYS} days and flagged "
                f"{selectors.DEFAULT_WARN_DAYS} days ahead."
            ),
        }
        return super().changelist_view(request, extra_context)


# -------------------------------------------------------------------------------- history


@admin.register(OwnershipChange)
class OwnershipChangeAdmin(AuditedModelAdmin):
    app_owner_lookup = "nhi__application__owners"
    list_display = ("changed_at", "nhi", "kind", "from_owner", "to_owner", "reason", "actor_label")
    list_filter = ("kind",)
    search_fields = ("nhi__name", "reason", "to_owner__user_name", "from_owner__user_name")
    list_select_related = ("nhi", "from_owner", "to_owner")
    date_hierarchy = "changed_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# -------------------------------------------------------------------------------- hand-offs


def _identity_id(user):
    """The person a signed-in portal user is; None for anonymous visitors (the login page)."""
    return getattr(user, "identity_id", None) if user.is_authenticated else None


def _proposed_to_me(user) -> Q:
    if not _identity_id(user):
        return Q(pk__in=[])
    return Q(proposed_to_id=user.identity_id)


class HandoffMineFilter(admin.SimpleListFilter):
    title = "whose"
    parameter_name = "mine"

    def lookups(self, request, model_admin):
        return [("yes", "My hand-offs"), ("security", "For security admins")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(_proposed_to_me(request.user))
        if self.value() == "security":
            return queryset.filter(route=Handoff.Route.SECURITY)
        return queryset


class EscalatedFilter(admin.SimpleListFilter):
    title = "escalated"
    parameter_name = "escalated"

    def lookups(self, request, model_admin):
        return [("yes", "Escalated"), ("no", "Not escalated")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(escalated_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(escalated_at__isnull=True)
        return queryset


class DeclineForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=1000,
        help_text="Why you cannot own it; the next candidate (finally security) is asked.",
    )


@admin.register(Handoff)
class HandoffAdmin(AuditedModelAdmin):
    """ "My hand-offs": the proposed person sees what is proposed to them (even without an
    NHI role), application owners their applications' hand-offs, security and auditors all."""

    list_display = (
        "nhi",
        "from_owner",
        "proposed_to_col",
        "route",
        "state",
        "proposed_at",
        "escalated_at",
    )
    list_filter = (HandoffMineFilter, "state", "route", EscalatedFilter)
    search_fields = ("nhi__name", "from_owner__user_name", "proposed_to__user_name")
    list_select_related = ("nhi", "from_owner", "proposed_to")
    actions = ["accept", "decline"]
    readonly_fields = (
        "nhi",
        "from_owner",
        "proposed_to",
        "route",
        "state",
        "event",
        "proposed_at",
        "escalated_at",
        "reminded_at",
        "decided_at",
        "decided_by",
        "decline_reason",
    )

    def _proposed_any(self, request) -> bool:
        identity_id = _identity_id(request.user)
        return bool(identity_id) and Handoff.objects.filter(proposed_to_id=identity_id).exists()

    def get_queryset(self, request):
        qs = admin.ModelAdmin.get_queryset(self, request)
        if sees_everything(request.user):
            return qs
        return qs.filter(
            _proposed_to_me(request.user) | Q(nhi__application__owners=request.user)
        ).distinct()

    def has_module_permission(self, request):
        return super().has_module_permission(request) or self._proposed_any(request)

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or self._proposed_any(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # answered through accept / decline only

    def has_delete_permission(self, request, obj=None):
        return False

    def has_decide_permission(self, request):
        return request.user.is_security_admin or self._proposed_any(request)

    @admin.display(description="Proposed to", ordering="proposed_to__user_name")
    def proposed_to_col(self, obj):
        return obj.proposed_to or "Security admins"

    def _decidable(self, request, queryset):
        handoffs = list(queryset.select_related("nhi", "from_owner", "proposed_to"))
        is_security = request.user.is_security_admin
        ok = [
            h
            for h in handoffs
            if h.state == Handoff.State.PROPOSED
            and h.proposed_to_id is not None
            and (is_security or h.proposed_to_id == request.user.identity_id)
        ]
        skipped = [f"{h} ({h.get_state_display().lower()})" for h in handoffs if h not in ok]
        return ok, skipped

    @admin.action(description="Accept: I take ownership", permissions=["decide"])
    def accept(self, request, queryset):
        ok, skipped = self._decidable(request, queryset)
        if request.POST.get("post") == "yes" and ok:
            actor = Actor.for_user(request.user)
            done = 0
            for handoff in ok:
                try:
                    services.handoff_accept(actor=actor, handoff=handoff)
                except DomainError as exc:
                    self.message_user(request, f"{handoff}: {exc.message}", messages.ERROR)
                else:
                    done += 1
            if done:
                self.message_user(request, f"Accepted {done} hand-off(s).", messages.SUCCESS)
            return None
        return _confirm(
            self,
            request,
            title="Accept hand-offs",
            intro=(
                "The proposed person becomes the accountable owner of these NHIs, which become "
                "active again. Their credentials still need rotating (see rotation tasks)."
                if ok
                else "None of the selected hand-offs waits for your answer."
            ),
            headings=("NHI", "Left by", "New owner"),
            rows=[(h.nhi, h.from_owner, h.proposed_to) for h in ok],
            skipped=skipped,
            submit="Yes, accept",
            selected=[h.pk for h in ok],
            action_name="accept",
        )

    @admin.action(description="Decline (with a reason)", permissions=["decide"])
    def decline(self, request, queryset):
        ok, skipped = self._decidable(request, queryset)
        form = DeclineForm(request.POST if request.POST.get("post") == "yes" else None)
        if request.POST.get("post") == "yes" and ok and form.is_valid():
            actor = Actor.for_user(request.user)
            done = 0
            for handoff in ok:
                try:
                    services.handoff_decline(
                        actor=actor, handoff=handoff, reason=form.cleaned_data["reason"]
                    )
                except DomainError as exc:
                    self.message_user(request, f"{handoff}: {exc.message}", messages.ERROR)
                else:
                    done += 1
            if done:
                self.message_user(
                    request,
                    f"Declined {done} hand-off(s); the next candidates were asked.",
                    messages.SUCCESS,
                )
            return None
        return _confirm(
            self,
            request,
            title="Decline hand-offs",
            intro=(
                "Each NHI is proposed to the next candidate: backup owner, the leaver's "
                "manager, an application owner, finally security admins."
                if ok
                else "None of the selected hand-offs waits for your answer."
            ),
            headings=("NHI", "Left by", "Proposed to"),
            rows=[(h.nhi, h.from_owner, h.proposed_to) for h in ok],
            skipped=skipped,
            submit="Decline",
            form=form if ok else None,
            selected=[h.pk for h in ok],
            action_name="decline",
        )


# -------------------------------------------------------------------------------- rotation


@admin.register(RotationTask)
class RotationTaskAdmin(AuditedModelAdmin):
    app_owner_lookup = "credential__nhi__application__owners"
    list_display = (
        "credential",
        "reason",
        "state",
        "leaver",
        "raised_at",
        "due_at",
        "closed_at",
        "evidence_reference",
    )
    list_filter = ("state", "reason")
    search_fields = ("credential__name", "credential__nhi__name", "evidence_reference")
    list_select_related = ("credential__nhi", "leaver")
    actions = ["record_rotation"]
    readonly_fields = (
        "credential",
        "reason",
        "state",
        "leaver",
        "event",
        "detail",
        "raised_at",
        "due_at",
        "notified_at",
        "closed_at",
        "closed_by",
        "evidence_note",
        "evidence_reference",
    )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # closed by recording the rotation of its credential

    def has_record_permission(self, request):
        return request.user.has_perm("nhi.change_credential")

    def get_fields(self, request, obj=None):
        return self.readonly_fields

    @admin.action(description="Record rotation of their credentials", permissions=["record"])
    def record_rotation(self, request, queryset):
        tasks = list(queryset.filter(state=RotationTask.State.OPEN).select_related("credential"))
        credentials = list({t.credential_id: t.credential for t in tasks}.values())
        return _record_rotations(
            self,
            request,
            credentials,
            action_name="record_rotation",
            selected=[t.pk for t in tasks],
        )
