"""Celery wrapper of the audit log's signed checkpoints (audit.checkpoints)."""

from celery import shared_task

from objections.tasks import RETRY


@shared_task(**RETRY)
def audit_checkpoint_task() -> int | None:
    """Sign and publish a checkpoint when the log has grown; returns its tree size."""
    from audit.checkpoints import audit_checkpoint_create

    checkpoint = audit_checkpoint_create()
    return checkpoint.tree_size if checkpoint is not None else None
