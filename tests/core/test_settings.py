"""The settings module fails loudly on bad configuration."""

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from governance import env


def _start(**overrides):
    environment = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    environment.update(overrides)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**environment, "DJANGO_SETTINGS_MODULE": "governance.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_refuses_to_start_without_secret_key_when_debug_off():
    result = _start(DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_starts_with_secret_key():
    assert _start(DEBUG="false", SECRET_KEY="x" * 50).returncode == 0


def test_bad_boolean_is_loud():
    result = _start(DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


@pytest.mark.parametrize(
    ("helper", "name", "value"),
    [(env.env_bool, "X_BOOL", "perhaps"), (env.env_int, "X_INT", "ten")],
)
def test_typed_helpers_raise(monkeypatch, helper, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=name):
        helper(name, 1)


def test_env_int_minimum(monkeypatch):
    monkeypatch.setenv("X_INT", "0")
    with pytest.raises(ImproperlyConfigured, match=">= 1"):
        env.env_int("X_INT", 5, minimum=1)


def test_secret_from_file(monkeypatch, tmp_path):
    secret = tmp_path / "key"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("X_SECRET_FILE", str(secret))
    assert env.env_secret("X_SECRET") == "s3cret"
    monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured):
        env.env_secret("X_SECRET")


def test_bad_database_url_is_loud():
    result = _start(DEBUG="true", DATABASE_URL="nosuchdb://x")
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr
