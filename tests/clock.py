"""The suite's frozen clock: every test runs at SCS_TEST_DATE, never at the wall clock's date.

`SCS_TEST_DATE` (YYYY-MM-DD, default `DEFAULT_DATE`) is the day the suite believes it is, at
10:00 in Asia/Shanghai; time then moves on from there (`tick`), so timeouts and durations behave.
`.ci/run` runs the suite once more at a shifted date; run it at any date with, e.g.,
`SCS_TEST_DATE=2030-02-03 make test`.

Run as `python -m tests.clock MODULE ARGS...`, it starts MODULE (say `celery`) with the clock of
`SCS_TEST_NOW` (an ISO datetime), so that a subprocess such as a real Celery worker lives at the
same moment as the test that started it.
"""

from __future__ import annotations

import os
import runpy
import sys
from datetime import date, datetime
from zoneinfo import ZoneInfo

import time_machine

DEFAULT_DATE = "2026-06-15"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_date() -> date:
    raw = os.environ.get("SCS_TEST_DATE") or DEFAULT_DATE
    try:
        return date.fromisoformat(raw)
    except ValueError as error:
        raise SystemExit(f"SCS_TEST_DATE must be YYYY-MM-DD, not {raw!r}") from error


def test_start() -> datetime:
    """The moment the suite starts at: 10:00 Shanghai time on the test date."""
    return datetime.combine(test_date(), datetime.min.time(), tzinfo=SHANGHAI).replace(hour=10)


def travel(destination: datetime | None = None) -> time_machine.travel:
    return time_machine.travel(destination or test_start(), tick=True)


def subprocess_env() -> dict[str, str]:
    """What a subprocess needs to share the test's clock (see the module docstring)."""
    return {"SCS_TEST_NOW": datetime.now(tz=SHANGHAI).isoformat()}


if __name__ == "__main__":
    now = os.environ.get("SCS_TEST_NOW")
    if now:
        travel(datetime.fromisoformat(now)).start()
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
