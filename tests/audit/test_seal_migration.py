"""Migration 0008 seals the start of the seals itself, without audit.services: the two must give
the same seal, or the start a database was migrated with would no longer verify."""

from __future__ import annotations

import ast
import importlib
import inspect
from types import ModuleType

import pytest
from django.core.exceptions import ImproperlyConfigured

from audit.services import seal_start


def migration() -> ModuleType:
    return importlib.import_module("audit.migrations.0008_audit_seals")


def test_the_migration_imports_only_python_and_django():
    tree = ast.parse(inspect.getsource(migration()))
    imported = {
        name
        for node in ast.walk(tree)
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
    }

    assert {name.split(".")[0] for name in imported} == {"base64", "binascii", "hmac", "django"}


@pytest.mark.parametrize("sequence", [1, 2, 17, 1_000_000, 2**53])
def test_the_migration_seals_the_start_as_the_application_does(sequence):
    assert migration().seal_start(sequence) == seal_start(sequence)


def test_the_two_agree_under_another_key(settings):
    settings.AUDIT_SEAL_KEY = "YW5vdGhlci1zZWFsLWtleS1vZi1hdC1sZWFzdC0zMi1ieXRlcw=="

    assert migration().seal_start(5) == seal_start(5)
    assert migration().seal_start(5) != seal_start(6)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("not base64!", "SCS_AUDIT_SEAL_KEY is not base64"),
        ("c2hvcnQta2V5", "SCS_AUDIT_SEAL_KEY must encode at least 32 bytes"),
    ],
)
def test_the_two_refuse_the_same_keys(settings, key, message):
    settings.AUDIT_SEAL_KEY = key

    with pytest.raises(ImproperlyConfigured, match=message):
        migration().seal_start(1)
    with pytest.raises(ImproperlyConfigured, match=message):
        seal_start(1)
