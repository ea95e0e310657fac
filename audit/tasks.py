"""Celery wrapper of the audit log's signed checkpoints (audit.checkpoints)."""

from celery import shared_task

from objections.tasks import RETRY


@shared_task(**RETRY)
def audit_checkpoint_task() -> int | None:
    """Sign and publish a checkpoint when the log has grown; returns its tree size."""
    from audit.checkpoints import audit_checkpoint_create

    checkpoint = audit_checkpoint_create()
    return checkpoint.tree_size if checkpoint is not None else None


# A large log takes longer than the default limits; past the soft limit the run is marked failed.
@shared_task(
    acks_late=True, max_retries=3, soft_time_limit=3 * 3600, time_limit=3 * 3600 + 300, **RETRY
)
def audit_export_task(export_id: int) -> str:
    """Build an auditor's export bundle; returns its status (idempotent: see the service)."""
    from audit.exports import audit_export_run

    return audit_export_run(export_id=export_id).status


@shared_task
def audit_exports_redrive_task() -> int:
    from audit.exports import audit_exports_redrive

    return len(audit_exports_redrive())


# Verifying a large log takes minutes; past the soft limit the check is stored as not finished.
@shared_task(soft_time_limit=3 * 3600, time_limit=3 * 3600 + 300, **RETRY)
def audit_integrity_check_task(check_id: int) -> str:
    """Run a queued integrity check of the whole log; returns its status (idempotent)."""
    from audit.integrity import audit_integrity_check_run

    return audit_integrity_check_run(check_id=check_id).status


@shared_task(**RETRY)
def audit_integrity_check_daily_task() -> int:
    """Beat's daily check: queue one (the run follows after commit); returns its id."""
    from audit.integrity import audit_integrity_check_request

    return audit_integrity_check_request(actor=None).pk
