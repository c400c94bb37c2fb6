"""Serializers of the NHI API: they translate and validate shapes; the services decide."""

from __future__ import annotations

import uuid

from django.db.models import Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from governance.access.models import Application
from governance.identities.models import Identity
from governance.nhi import selectors
from governance.nhi.models import Credential, Environment, NonHumanIdentity, RotationTask

#: Keys that would carry a secret: refused outright, Steward keeps metadata only.
SECRET_KEYS = {"secret", "value", "password", "token", "key", "private_key", "client_secret"}


@extend_schema_field(OpenApiTypes.STR)
class IdentityField(serializers.RelatedField):
    """A person by userName (case-insensitive) or id; shown as userName."""

    default_error_messages = {
        "unknown": "No person with userName or id {value!r}.",
        "invalid": "Give a userName (e.g. jane.doe@example.com) or an identity id.",
    }

    def get_queryset(self):
        return Identity.objects.filter(deleted_at__isnull=True)

    def to_internal_value(self, data):
        if not isinstance(data, str) or not data.strip() or len(data) > 255:
            self.fail("invalid")
        value = data.strip()
        q = Q(user_name__iexact=value)
        try:
            q |= Q(pk=uuid.UUID(value))
        except ValueError:
            pass
        person = self.get_queryset().filter(q).first()
        if person is None:
            self.fail("unknown", value=value)
        return person

    def to_representation(self, value):
        return value.user_name


class NonHumanIdentitySerializer(serializers.ModelSerializer):
    owner = IdentityField(required=False, allow_null=True)
    backup_owner = IdentityField(required=False, allow_null=True)
    application = serializers.SlugRelatedField(
        slug_field="name", queryset=Application.objects.all(), required=False, allow_null=True
    )
    consumers = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=100
    )
    risk_flags = serializers.SerializerMethodField()
    ownership_reason = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=500,
        help_text="Why the owner changes; required when an update changes the owner.",
    )

    class Meta:
        model = NonHumanIdentity
        fields = [
            "id",
            "name",
            "kind",
            "description",
            "purpose",
            "owner",
            "backup_owner",
            "owning_team",
            "application",
            "platform",
            "consumers",
            "environment",
            "auth_method",
            "status",
            "source_created_at",
            "last_used_at",
            "attested_at",
            "human_use_observed_at",
            "risk_flags",
            "ownership_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "attested_at", "created_at", "updated_at"]
        extra_kwargs = {"name": {"validators": []}}

    def get_risk_flags(self, obj) -> list[str]:
        return selectors.flags_of(obj)


class PeopleField(serializers.ListField):
    """People by userName; read from a many-to-many manager."""

    child = IdentityField()

    def to_representation(self, data):
        people = data.all() if hasattr(data, "all") else data
        return [person.user_name for person in people]


class EnvironmentsField(serializers.MultipleChoiceField):
    def to_representation(self, value):
        return [env for env in Environment.values if env in set(value)]


class CredentialSerializer(serializers.ModelSerializer):
    nhi = serializers.PrimaryKeyRelatedField(queryset=NonHumanIdentity.objects.none())
    environments = EnvironmentsField(
        choices=Environment.choices, required=False, help_text="Where the credential is used."
    )
    known_by = PeopleField(
        required=False,
        max_length=200,
        help_text="userNames of the people who know the secret (shared secrets).",
    )
    rotation_state = serializers.CharField(read_only=True)

    class Meta:
        model = Credential
        fields = [
            "id",
            "nhi",
            "name",
            "type",
            "status",
            "in_vault",
            "location",
            "issued_at",
            "last_rotated_at",
            "expires_at",
            "environments",
            "known_by",
            "rotation_state",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "last_rotated_at", "created_at", "updated_at"]
        validators = []

    def __init__(self, *args, nhis=None, **kwargs):
        super().__init__(*args, **kwargs)
        if nhis is not None:
            self.fields["nhi"].queryset = nhis

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            leaked = SECRET_KEYS & {str(k).lower() for k in data.keys()}
            if leaked:
                raise serializers.ValidationError(
                    {
                        key: ["Steward stores credential metadata only; never send the secret."]
                        for key in sorted(leaked)
                    }
                )
        return super().to_internal_value(data)


class RotationSerializer(serializers.Serializer):
    rotated_at = serializers.DateTimeField(required=False, help_text="Default: now.")
    evidence_reference = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="Change or ticket id."
    )
    evidence_note = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Expiry of the new secret, if any."
    )


class RotationTaskSerializer(serializers.ModelSerializer):
    credential_name = serializers.CharField(source="credential.name", read_only=True)
    nhi = serializers.IntegerField(source="credential.nhi_id", read_only=True)

    class Meta:
        model = RotationTask
        fields = [
            "id",
            "credential",
            "credential_name",
            "nhi",
            "reason",
            "state",
            "detail",
            "raised_at",
            "due_at",
            "closed_at",
            "evidence_reference",
            "evidence_note",
        ]
        read_only_fields = fields
