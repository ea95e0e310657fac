"""Fixtures of the audit export tests (helpers in tests/audit/exporting.py)."""

from __future__ import annotations

from typing import Any

import pytest

from audit.checkpoints import audit_checkpoint_create
from audit.models import AuditCheckpoint, AuditExport
from tests.audit.exporting import CASE, built, bundle_path, case_events
from tests.audit.test_audit import record_events
from tests.factories import UserFactory


@pytest.fixture
def auditor():
    return UserFactory(role="auditor")


@pytest.fixture
def case_bundle(auditor, django_capture_on_commit_callbacks) -> dict[str, Any]:
    """A case export of two runs (3 and 2 events) under a checkpoint with an older one before."""
    first = case_events(3)
    older = audit_checkpoint_create()
    record_events(2)
    second = case_events(2, start=3)
    export = built(auditor, {"case_reference": CASE}, django_capture_on_commit_callbacks)
    assert export.status == AuditExport.Status.DONE, export.error
    return {
        "export": export,
        "path": bundle_path(export),
        "runs": [first, second],
        "older": older,
        "head": AuditCheckpoint.objects.order_by("-tree_size").first(),
    }
