"""Production settings: required secrets, and a clean `check --deploy`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION_ENV = {
    "SCS_ENVIRONMENT": "production",
    "SECRET_KEY": "a-long-random-production-secret-key-for-the-deploy-check-0123456789abcdef",
    "SCS_IDENTIFIER_ENCRYPTION_KEY": "cHJvZHVjdGlvbi1lbmNyeXB0aW9uLWtleS0zMmJ5dGU=",
    "SCS_IDENTIFIER_HASH_KEY": "cHJvZHVjdGlvbi1ibGluZC1pbmRleC1rZXktMzJieXQ=",
    "SCS_AUDIT_SEAL_KEY": "cHJvZHVjdGlvbi1hdWRpdC1zZWFsLWtleS0zMmJ5dGVz",
    "SCS_AUDIT_SIGNING_KEY": "cHJvZHVjdGlvbi1hdWRpdC1zaWduaW5nLWtleS0zMmI=",
    "ALLOWED_HOSTS": "credit.example.org",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("SCS_")}
    clean.pop("SECRET_KEY", None)
    # The browser tests set this for their own process; a deployment never has it.
    clean.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env, "SCS_DATA_DIR": "/tmp/scs-settings-test"},  # noqa: S108
        capture_output=True,
        text=True,
        check=False,
    )


def test_check_deploy_is_clean_in_production():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {key: value for key, value in PRODUCTION_ENV.items() if key != "SECRET_KEY"}

    result = manage("check", env=env)

    assert result.returncode == 1
    assert "SECRET_KEY must be set when SCS_ENVIRONMENT=production" in result.stderr


def test_production_refuses_to_start_without_identifier_keys():
    env = {
        key: value
        for key, value in PRODUCTION_ENV.items()
        if key != "SCS_IDENTIFIER_ENCRYPTION_KEY"
    }

    result = manage("check", env=env)

    assert result.returncode == 1
    assert "SCS_IDENTIFIER_ENCRYPTION_KEY must be set" in result.stderr


@pytest.mark.parametrize("name", ["SCS_AUDIT_SEAL_KEY", "SCS_AUDIT_SIGNING_KEY"])
def test_production_refuses_to_start_without_audit_keys(name: str):
    env = {key: value for key, value in PRODUCTION_ENV.items() if key != name}

    result = manage("check", env=env)

    assert result.returncode == 1
    assert f"{name} must be set when SCS_ENVIRONMENT=production" in result.stderr
