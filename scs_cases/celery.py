"""The Celery application. Settings come from Django's, under the CELERY_ namespace."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scs_cases.settings")

app = Celery("scs_cases")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="scs_cases.ping")
def ping() -> str:
    """A no-op: a health check of broker and worker, and the benchmarks' bare round trip."""
    return "pong"
