"""Tasks retry transient failures a bounded number of times, and never a domain error."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from objections import tasks
from objections.models import Case


class Flaky:
    """Fails with a transient error `failures` times, then succeeds (a database that restarts)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, **kwargs: object) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise OperationalError("server closed the connection unexpectedly")


def test_routing_retries_a_dropped_connection_and_then_succeeds(monkeypatch):
    flaky = Flaky(failures=2)
    monkeypatch.setattr("objections.services.routing.case_route", flaky)

    result = tasks.case_route_task.apply(kwargs={"case_id": 1})

    assert (result.successful(), flaky.calls) == (True, 3)


def test_routing_gives_up_after_its_bounded_retries(monkeypatch):
    flaky = Flaky(failures=100)
    monkeypatch.setattr("objections.services.routing.case_route", flaky)

    result = tasks.case_route_task.apply(kwargs={"case_id": 1})

    assert result.failed()
    assert isinstance(result.result, OperationalError)
    assert flaky.calls == 1 + tasks.case_route_task.max_retries


@pytest.mark.django_db
def test_a_domain_error_is_not_retried(monkeypatch):
    calls = []

    def missing(**kwargs: object) -> None:
        calls.append(kwargs)
        raise Case.DoesNotExist

    monkeypatch.setattr("objections.services.routing.case_route", missing)

    result = tasks.case_route_task.apply(kwargs={"case_id": 999})

    assert result.failed()
    assert len(calls) == 1
