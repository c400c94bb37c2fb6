"""Reconciliation fixtures: uploaded files go to a temporary media root; the SCIM target
fixtures of the lifecycle tests (a real scim2-server on loopback) are reused."""

from __future__ import annotations

import pytest

from tests.lifecycle.conftest import (  # noqa: F401
    _encryption_key,
    down_url,
    scim_target,
    target_factory,
)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
