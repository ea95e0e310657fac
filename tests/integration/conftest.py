"""Helpers for tests that run a real Celery worker on Redis against the PostgreSQL test database.

The worker is a subprocess started in its own session (so a SIGKILL can take its whole process
group, prefork children included), pointed at the pytest-django test database and at the Redis
of REDIS_URL, with its data directory in tmp_path. Every wait is bounded by a deadline.

`world` rebuilds the case world of tests/objections/conftest.py for transactional tests (that one
depends on the non-transactional `db`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.db.models import Max

from accounts.models import User
from audit.models import AuditEvent
from objections.models import Case
from objections.services import case_file, workflow_definitions_sync
from records import demo
from records.models import Agency, CreditRecord, Subject
from records.services import subject_access_grant
from scs_cases.celery import app as celery_app
from tests import clock
from tests.factories import SubjectFactory, UserFactory, registry_record

ROOT = Path(__file__).resolve().parents[2]
# Celery's default queue: the Redis list the producer pushes to and the worker pops from.
QUEUE = "celery"
# kombu's bookkeeping of delivered, unacknowledged messages (its default key names).
UNACKED_KEYS = ("unacked", "unacked_index", "unacked_mutex")
T = TypeVar("T")


def wait_for(
    probe: Callable[[], T],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    log: Callable[[], str] | None = None,
) -> T:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds.

    `log` (a worker's, say) is read when the wait fails and shown with the failure.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            details = log() if log is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{details}")
        time.sleep(interval)


def worker_database_url() -> str:
    values = connection.settings_dict
    password = f":{values['PASSWORD']}" if values.get("PASSWORD") else ""
    return (
        f"postgres://{values['USER']}{password}@{values['HOST'] or '127.0.0.1'}"
        f":{values['PORT'] or 5432}/{values['NAME']}"
    )


def broker() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def queued_messages() -> int:
    return int(broker().llen(QUEUE))


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def succeeded(self, task: str, task_id: str = "") -> int:
        """How many runs of `task` (of one message id, if given) the worker logged as done."""
        marker = f"{task}[{task_id}" if task_id else f"{task}["
        return sum(
            1 for line in self.log().splitlines() if marker in line and "] succeeded in" in line
        )

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise AssertionError(f"the worker exited with {code}\n{self.log()}")
            return " ready." in self.log()

        wait_for(ready, timeout=timeout, what="the worker to be ready", interval=0.2)

    def kill(self) -> None:
        """SIGKILL the worker and its pool children: no warm shutdown, nothing acknowledged."""
        if self.process.poll() is None:
            # The worker leads its own session, so its process group id is its pid.
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=20)

    def stop(self) -> None:
        """Warm shutdown: the tasks being run finish, then the worker exits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        # A prefork child left behind by a dying parent must not outlive the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)


WorkerStarter = Callable[..., Worker]


@pytest.fixture
def celery_workers(transactional_db: None, tmp_path: Path) -> Iterator[WorkerStarter]:
    """Start real workers with `celery_workers(pool=..., concurrency=...)`; all stop at teardown.

    Teardown stops them before pytest-django flushes the tables they use.
    """
    started: list[Worker] = []
    env = {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "SCS_DATA_DIR": str(tmp_path),
        "CONN_MAX_AGE": "0",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }

    def start(
        *, pool: str = "solo", concurrency: int = 1, extra_env: dict[str, str] | None = None
    ) -> Worker:
        env.update(clock.subprocess_env())  # the worker lives at the test's moment
        env.update(extra_env or {})
        log_path = tmp_path / f"worker-{len(started) + 1}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 (arguments built here, not input)
                [
                    sys.executable,
                    "-m",
                    "tests.clock",
                    "celery",
                    "-A",
                    "scs_cases",
                    "worker",
                    f"--pool={pool}",
                    f"--concurrency={concurrency}",
                    f"--hostname=routing-test-{os.getpid()}-{len(started) + 1}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--loglevel=INFO",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(process=process, log_path=log_path)
        started.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.stop()


def broker_empty() -> None:
    celery_app.control.purge()
    # What a killed worker had taken but not acknowledged waits in kombu's `unacked` hash and
    # comes back after the visibility timeout (an hour), into whatever test runs then.
    broker().delete(*UNACKED_KEYS)


@pytest.fixture
def empty_queue() -> Iterator[None]:
    """No message of an earlier test is waiting, and none of this test's is left behind."""
    broker_empty()
    yield
    broker_empty()


@dataclass
class World:
    citizen: User
    subject: Subject
    caseworker: User  # Shanghai credit centre
    second_caseworker: User  # Shanghai credit centre
    sh_records: list[CreditRecord]  # Shanghai market regulator, about `subject`
    audit_sequence: int  # the last audit event before the test: the audit log is never flushed
    _numbers: Iterator[int] = field(default_factory=lambda: iter(range(1, 1000)))

    def events(self, action: str, case: Case) -> list[AuditEvent]:
        """This test's audit events of `action` about `case` (references repeat across tests)."""
        return list(
            AuditEvent.objects.filter(
                action=action,
                case_reference=case.reference,
                sequence__gt=self.audit_sequence,
            ).order_by("sequence")
        )

    def file(self, record: CreditRecord) -> Case:
        number = next(self._numbers)
        return case_file(
            actor=self.citizen,
            record=record,
            kind=Case.Kind.OBJECTION,
            grounds=Case.Grounds.INACCURATE,
            statement=f"处罚决定书记载的事实有误（{number}）。",
            requested_remedy=Case.Remedy.CORRECT,
            fields_objected=["title"],
            correction={"title": f"更正后的标题{number}"},
        )


def shanghai_record(subject: Subject, number: str) -> CreditRecord:
    return registry_record("shanghai-market", subject, number)


@pytest.fixture
def world(transactional_db: None, empty_queue: None) -> World:
    audit_sequence = AuditEvent.objects.aggregate(last=Max("sequence"))["last"] or 0
    demo.registry_load()
    workflow_definitions_sync()
    subject = SubjectFactory(name="王伟")
    citizen = UserFactory(username="wangwei", role="citizen", email="wangwei@example.org")
    subject_access_grant(subject=subject, user=citizen, actor=None)
    centre = Agency.objects.get(code="shanghai-credit-centre")

    def caseworker(username: str) -> User:
        return cast(
            User,
            UserFactory(
                username=username, role="caseworker", agency=centre, email=f"{username}@example.org"
            ),
        )

    return World(
        citizen=citizen,
        subject=subject,
        caseworker=caseworker("sh-cw"),
        second_caseworker=caseworker("sh-cw2"),
        sh_records=[shanghai_record(subject, f"SH-{n}") for n in range(1, 21)],
        audit_sequence=audit_sequence,
    )
