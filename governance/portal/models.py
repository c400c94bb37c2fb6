"""Portal users: people who sign in to govern access, each optionally bound to an Identity."""

from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    """Portal roles; each is a Django group created by a data migration with its permissions."""

    SECURITY_ADMIN = "Security admin"
    REVIEWER = "Reviewer"
    APP_OWNER = "App owner"
    AUDITOR = "Auditor"


class User(AbstractUser):
    identity = models.OneToOneField(
        "identities.Identity",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="portal_user",
        help_text="The directory person this portal account belongs to.",
    )

    class Meta:
        verbose_name = "portal user"

    def has_role(self, role: str) -> bool:
        return self.groups.filter(name=role).exists()

    @property
    def is_security_admin(self) -> bool:
        return self.is_superuser or self.has_role(Role.SECURITY_ADMIN)

    @property
    def is_auditor(self) -> bool:
        return self.has_role(Role.AUDITOR)
