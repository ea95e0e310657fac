"""Imports pushed through the API: stored on upload, run by a worker, followed by polling.

`import_job_create` stores the file privately and queues the run after commit; `import_job_run`
imports it (idempotently: a job that has finished is left alone) and keeps the rows read so far
in the shared cache, which the status endpoint reads while the import's transaction is open.
"""

from __future__ import annotations

import uuid
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from audit.services import audit_record, audited
from records.imports import ImportFileInvalid, detect_format, import_batch_run
from records.models import ImportBatch, ImportJob

if TYPE_CHECKING:
    from accounts.models import User

PROGRESS_SECONDS = 24 * 3600


def _progress_key(job_id: int) -> str:
    return f"import-job-progress:{job_id}"


def _folder() -> Path:
    folder = Path(settings.MEDIA_ROOT) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@audited()
def import_job_create(
    *, actor: User, stream: IO[bytes], file_name: str, file_format: str = ""
) -> ImportJob:
    """Store an uploaded file for the actor's agency and queue its import."""
    if actor.agency_id is None:
        raise ImportFileInvalid("Only a user of an agency may import.")
    detected = detect_format(file_name, file_format)  # refuse a file type now, not in the worker
    stored = _folder() / f"{uuid.uuid4().hex}.upload"
    size = 0
    lines = 0
    with stored.open("wb") as target:
        for block in iter(partial(stream.read, 1 << 20), b""):
            target.write(block)
            size += len(block)
            lines += block.count(b"\n")
    job = ImportJob.objects.create(
        agency_id=actor.agency_id,
        created_by=actor,
        file_name=file_name[:255],
        file_format=file_format,
        stored_path=str(stored.relative_to(settings.MEDIA_ROOT)),
        size=size,
        rows_estimated=lines if detected == "ndjson" else max(lines - 1, 0),  # CSV: a header
    )
    audit_record(
        actor=actor,
        action="records.import_queued",
        target=job,
        data={"file_name": job.file_name, "size": size},
    )
    from records.tasks import import_job_run_task

    transaction.on_commit(partial(import_job_run_task.delay, job_id=job.pk))
    return job


def import_job_run(*, job_id: int) -> ImportJob:
    """Run a queued job's import. A job already running elsewhere or finished is returned as is."""
    with transaction.atomic():
        job = (
            ImportJob.objects.select_for_update(skip_locked=True)
            .filter(pk=job_id, status=ImportJob.Status.QUEUED)
            .select_related("agency", "created_by")
            .first()
        )
        if job is None:
            return ImportJob.objects.get(pk=job_id)
        job.status = ImportJob.Status.RUNNING
        job.save(update_fields=["status", "updated_at"])
    path = Path(settings.MEDIA_ROOT) / job.stored_path
    read = 0

    def progress(rows: int) -> None:
        nonlocal read
        read += rows
        cache.set(_progress_key(job.pk), read, timeout=PROGRESS_SECONDS)

    try:
        with path.open("rb") as stream:
            report = import_batch_run(
                agency=job.agency,
                stream=stream,
                file_name=job.file_name,
                file_format=job.file_format,
                actor=job.created_by,
                source=ImportBatch.Source.API,
                progress=progress,
            )
    except ImportFileInvalid as error:
        job.status = ImportJob.Status.FAILED
        job.error_code = error.code
        job.error = error.message
    except Exception as error:
        # Nothing of the file was applied (one transaction); say so instead of "running" forever.
        job.status = ImportJob.Status.FAILED
        job.error_code = "import_failed"
        job.error = f"The import stopped ({type(error).__name__}); nothing was applied."
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error_code", "error", "finished_at", "updated_at"])
        raise
    else:
        job.status = ImportJob.Status.DONE
        job.batch_id = report.batch_id
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "batch", "error_code", "error", "finished_at", "updated_at"])
    path.unlink(missing_ok=True)
    return job


def import_job_rows_read(job: ImportJob) -> int:
    if job.status == ImportJob.Status.DONE and job.batch is not None:
        return job.batch.rows_total
    return int(cache.get(_progress_key(job.pk)) or 0)


def import_job_get_for_user(*, user: User, job_id: int) -> ImportJob:
    """A job of the user's agency; any other is a 404."""
    job = (
        ImportJob.objects.select_related("batch")
        .filter(pk=job_id, agency_id=user.agency_id)
        .first()
        if user.agency_id is not None
        else None
    )
    if job is None:
        raise Http404("No such import.")
    return job
