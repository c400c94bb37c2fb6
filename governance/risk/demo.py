"""Northwind demo rows for this app, called by ``seed_demo`` (idempotent)."""

from __future__ import annotations

from typing import Any


def seed(*, people: dict[str, Any], apps: dict[str, Any], leavers: list[Any], result: Any) -> None:
    """Create this app's demo rows unless they exist."""
