from celery import shared_task


@shared_task(acks_late=True)
def record_publication_sweep_task() -> dict[str, int]:
    from records.services import record_publication_sweep

    ended, expired = record_publication_sweep()
    return {"publication_ended": ended, "expired": expired}


@shared_task(acks_late=True)
def import_job_run_task(job_id: int) -> str:
    from records.import_jobs import import_job_run

    return import_job_run(job_id=job_id).status
