"""NHI API views: thin viewsets (queryset + serializer + filterset) calling the services.

Scoping: security admins and auditors reach every row; an application owner only the NHIs
(and their credentials and rotation tasks) of their applications; anything else is a 404.
"""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from governance.core.actor import Actor
from governance.core.admin_base import sees_everything
from governance.core.errors import DomainError, PermissionDenied
from governance.nhi import selectors, services
from governance.nhi.api.serializers import (
    CredentialSerializer,
    NonHumanIdentitySerializer,
    RotationSerializer,
    RotationTaskSerializer,
)
from governance.nhi.filtersets import (
    CredentialFilterSet,
    NonHumanIdentityFilterSet,
    RotationTaskFilterSet,
)
from governance.nhi.models import Credential, NonHumanIdentity, RotationTask


def _check_application_scope(user, application) -> None:
    if sees_everything(user):
        return
    if application is None or not application.owners.filter(pk=user.pk).exists():
        raise PermissionDenied("You can only register NHIs of applications you own.")


class NonHumanIdentityViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Non-human identities with their OWASP NHI Top 10 risk flags."""

    serializer_class = NonHumanIdentitySerializer
    filterset_class = NonHumanIdentityFilterSet
    queryset = NonHumanIdentity.objects.none()
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        base = NonHumanIdentity.objects.select_related("owner", "backup_owner", "application")
        return selectors.nhis_for_user(self.request.user, selectors.with_risk_flags(base)).order_by(
            "name"
        )

    def _answer(self, nhi, code):
        fresh = self.get_queryset().get(pk=nhi.pk)
        return Response(self.get_serializer(fresh).data, status=code)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data.pop("ownership_reason", None)
        _check_application_scope(request.user, data.get("application"))
        for required in ("name", "kind"):
            if required not in data:
                raise DomainError("This field is required.", field=required)
        nhi = services.nhi_create(
            actor=Actor.for_user(request.user),
            name=data.pop("name"),
            kind=data.pop("kind"),
            owner=data.pop("owner", None),
            backup_owner=data.pop("backup_owner", None),
            **data,
        )
        return self._answer(nhi, status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        nhi = self.get_object()
        serializer = self.get_serializer(nhi, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        reason = data.pop("ownership_reason", "")
        owner = data.pop("owner", nhi.owner)
        if "application" in data:
            _check_application_scope(request.user, data["application"])
        actor = Actor.for_user(request.user)
        with transaction.atomic():
            if owner != nhi.owner:
                if owner is None:
                    raise DomainError("An NHI's owner can be changed, not removed.", field="owner")
                if not (reason or "").strip():
                    raise DomainError(
                        "Say why the owner changes (ownership_reason).", field="ownership_reason"
                    )
                nhi = services.nhi_assign_owner(actor=actor, nhi=nhi, owner=owner, reason=reason)
            if data:
                nhi = services.nhi_update(actor=actor, nhi=nhi, **data)
        return self._answer(nhi, status.HTTP_200_OK)


class CredentialViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Credential metadata (never the secret), its rotation state, and rotations."""

    serializer_class = CredentialSerializer
    filterset_class = CredentialFilterSet
    queryset = Credential.objects.none()
    http_method_names = ["get", "post", "patch", "head", "options"]
    action_permissions = {"rotations": ["nhi.change_credential"]}

    def _nhis(self):
        return selectors.nhis_for_user(self.request.user)

    def get_queryset(self):
        base = Credential.objects.filter(nhi__in=self._nhis().values("pk"))
        return (
            selectors.credential_state_annotated(base)
            .select_related("nhi")
            .prefetch_related("known_by")
            .order_by("nhi__name", "name")
        )

    def get_serializer(self, *args, **kwargs):
        if getattr(self, "swagger_fake_view", False) or not self.request.user.is_authenticated:
            return super().get_serializer(*args, **kwargs)
        return super().get_serializer(*args, nhis=self._nhis(), **kwargs)

    def _answer(self, credential, code):
        fresh = self.get_queryset().get(pk=credential.pk)
        return Response(self.get_serializer(fresh).data, status=code)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data.pop("rotation_state", None)
        for required in ("name", "type"):
            if required not in data:
                raise DomainError("This field is required.", field=required)
        credential = services.credential_create(
            actor=Actor.for_user(request.user),
            nhi=data.pop("nhi"),
            name=data.pop("name"),
            type=data.pop("type"),
            environments=list(data.pop("environments", [])),
            known_by=data.pop("known_by", []),
            **data,
        )
        return self._answer(credential, status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        credential = self.get_object()
        serializer = self.get_serializer(credential, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        nhi = data.pop("nhi", credential.nhi)
        if nhi.pk != credential.nhi_id:
            raise DomainError("A credential cannot move to another NHI.", field="nhi")
        environments = data.pop("environments", None)
        credential = services.credential_update(
            actor=Actor.for_user(request.user),
            credential=credential,
            environments=list(environments) if environments is not None else None,
            known_by=data.pop("known_by", None),
            **data,
        )
        return self._answer(credential, status.HTTP_200_OK)

    @extend_schema(request=RotationSerializer, responses={201: CredentialSerializer})
    @action(detail=True, methods=["post"])
    def rotations(self, request, pk=None):
        """Record a rotation with its evidence; closes the credential's open rotation tasks."""
        credential = self.get_object()
        serializer = RotationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        credential = services.credential_record_rotation(
            actor=Actor.for_user(request.user), credential=credential, **serializer.validated_data
        )
        return self._answer(credential, status.HTTP_201_CREATED)


class RotationTaskViewSet(viewsets.ReadOnlyModelViewSet):
    """Rotation tasks: why a credential must be rotated, and the evidence once it was."""

    serializer_class = RotationTaskSerializer
    filterset_class = RotationTaskFilterSet
    queryset = RotationTask.objects.none()

    def get_queryset(self):
        nhis = selectors.nhis_for_user(self.request.user).values("pk")
        return (
            RotationTask.objects.filter(credential__nhi__in=nhis)
            .select_related("credential")
            .order_by("-raised_at", "-pk")
        )
