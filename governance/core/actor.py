"""Who or what makes a change: a portal user, an identity source (SCIM) or a system task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from governance.identities.models import IdentitySource
    from governance.portal.models import User


@dataclass(frozen=True)
class Actor:
    kind: str  # "user" | "scim" | "system"
    user: User | None = None
    source: IdentitySource | None = None
    name: str = ""

    @classmethod
    def for_user(cls, user: Any) -> Actor:
        return cls(kind="user", user=user)

    @classmethod
    def for_source(cls, source: IdentitySource) -> Actor:
        return cls(kind="scim", source=source)

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(kind="system", name=name)

    @property
    def label(self) -> str:
        if self.kind == "user" and self.user is not None:
            return f"user:{self.user.get_username()}"
        if self.kind == "scim" and self.source is not None:
            return f"scim:{self.source.name}"
        return f"system:{self.name or 'steward'}"
