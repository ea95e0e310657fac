"""Tests for objections.calendar: plain functions, no database."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objections.calendar import (
    DayOverride,
    Deadline,
    WorkingCalendar,
    add,
)

# One shared instance, so its cache is exercised the way a long-lived process would.
CALENDAR = WorkingCalendar()

NOTICE = "国办发明电〔2026〕12号"

# Start dates whose deadlines (up to 40 working days, or 20 calendar days) stay inside 2026, the
# last year the installed package has data for.
STARTS = st.dates(min_value=date(2019, 1, 1), max_value=date(2026, 10, 31))
AMOUNTS = st.integers(min_value=1, max_value=20)
PROPERTY_SETTINGS = settings(database=None, max_examples=200, deadline=None)

COUNTED_LINE = re.compile(r"^(\d+): (\d{4}-\d{2}-\d{2}) \(")


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def _schedule(
    year: int, days_off: list[tuple[date, date]], make_up_workdays: list[date]
) -> dict[date, bool]:
    """Every day of `year` by Monday-to-Friday rules, corrected by the State Council notice."""
    working = {day: day.weekday() < 5 for day in _days(date(year, 1, 1), date(year, 12, 31))}
    for first, last in days_off:
        for day in _days(first, last):
            working[day] = False
    for day in make_up_workdays:
        working[day] = True
    return working


# The 2025 and 2026 schedules as listed in reference/regulations.md §8, written out independently.
SCHEDULE_2025 = _schedule(
    2025,
    days_off=[
        (date(2025, 1, 1), date(2025, 1, 1)),
        (date(2025, 1, 28), date(2025, 2, 4)),
        (date(2025, 4, 4), date(2025, 4, 6)),
        (date(2025, 5, 1), date(2025, 5, 5)),
        (date(2025, 5, 31), date(2025, 6, 2)),
        (date(2025, 10, 1), date(2025, 10, 8)),
    ],
    make_up_workdays=[
        date(2025, 1, 26),
        date(2025, 2, 8),
        date(2025, 4, 27),
        date(2025, 9, 28),
        date(2025, 10, 11),
    ],
)
SCHEDULE_2026 = _schedule(
    2026,
    days_off=[
        (date(2026, 1, 1), date(2026, 1, 3)),
        (date(2026, 2, 15), date(2026, 2, 23)),
        (date(2026, 4, 4), date(2026, 4, 6)),
        (date(2026, 5, 1), date(2026, 5, 5)),
        (date(2026, 6, 19), date(2026, 6, 21)),
        (date(2026, 9, 25), date(2026, 9, 27)),
        (date(2026, 10, 1), date(2026, 10, 7)),
    ],
    make_up_workdays=[
        date(2026, 1, 4),
        date(2026, 2, 14),
        date(2026, 2, 28),
        date(2026, 5, 9),
        date(2026, 9, 20),
        date(2026, 10, 10),
    ],
)


def _counted_lines(deadline: Deadline) -> list[tuple[int, date]]:
    counted = []
    for line in deadline.trace:
        match = COUNTED_LINE.match(line)
        if match:
            counted.append((int(match.group(1)), date.fromisoformat(match.group(2))))
    return counted


def _calendar_2027() -> WorkingCalendar:
    # An invented 2027 schedule, as an administrator would enter it before the package knows 2027.
    return WorkingCalendar(
        overrides=[
            DayOverride(day=date(2027, 1, 1), working=False, source=NOTICE),  # Fri
            DayOverride(day=date(2027, 1, 4), working=False, source=NOTICE),  # Mon
            DayOverride(day=date(2027, 1, 9), working=True, source=NOTICE),  # Sat
        ],
        complete_years=[2027],
    )


# --- Known dates -----------------------------------------------------------------------------


def test_five_working_days_after_monday_29_september_2025_is_monday_13_october() -> None:
    # given the day of receipt, Monday 29 September 2025, just before the National Day holiday
    start = date(2025, 9, 29)

    # when five working days are added
    deadline = CALENDAR.add_working_days(start, 5)

    # then the deadline is Monday 13 October 2025 (30 Sep, 9 Oct, 10 Oct, Sat 11 Oct, 13 Oct)
    assert deadline.due == date(2025, 10, 13)
    assert deadline.unit == "working"
    assert deadline.amount == 5
    assert deadline.start == start


def test_trace_of_the_national_day_2025_example_lists_every_step() -> None:
    # given / when
    deadline = CALENDAR.add_working_days(date(2025, 9, 29), 5)

    # then
    assert deadline.trace == (
        "start: 2025-09-29 (Mon), not counted (Civil Code Art 201)",
        "1: 2025-09-30 (Tue)",
        "skipped 2025-10-01..2025-10-08: National Day and Mid-autumn Festival holiday",
        "2: 2025-10-09 (Thu)",
        "3: 2025-10-10 (Fri)",
        "4: 2025-10-11 (Sat), make-up workday for National Day",
        "skipped 2025-10-12 (Sun): weekend",
        "5: 2025-10-13 (Mon)",
        "due: 2025-10-13",
    )
    assert deadline.trace_text() == "\n".join(deadline.trace)


@pytest.mark.parametrize(
    "day",
    [
        date(2025, 9, 28),  # Sun, make-up workday
        date(2025, 10, 11),  # Sat, make-up workday
        date(2026, 1, 4),  # Sun
        date(2026, 2, 14),  # Sat
        date(2026, 2, 28),  # Sat
        date(2026, 5, 9),  # Sat
        date(2026, 9, 20),  # Sun
        date(2026, 10, 10),  # Sat
        date(2025, 9, 29),  # an ordinary Monday
    ],
)
def test_make_up_workdays_and_ordinary_weekdays_are_working_days(day: date) -> None:
    assert CALENDAR.is_working_day(day) is True


@pytest.mark.parametrize(
    "day",
    [
        date(2025, 10, 8),  # Wed, last day of the 2025 National Day holiday
        *_days(date(2026, 10, 1), date(2026, 10, 7)),
        *_days(date(2026, 2, 15), date(2026, 2, 23)),
        date(2025, 10, 12),  # an ordinary Sunday
    ],
)
def test_statutory_holidays_and_ordinary_weekends_are_not_working_days(day: date) -> None:
    assert CALENDAR.is_working_day(day) is False


@pytest.mark.parametrize("schedule", [SCHEDULE_2025, SCHEDULE_2026], ids=["2025", "2026"])
def test_every_day_of_the_year_matches_the_state_council_notice(
    schedule: dict[date, bool],
) -> None:
    # given the year as the notice lists it / when each day is asked / then every answer matches
    answers = {day: CALENDAR.is_working_day(day) for day in schedule}

    assert answers == schedule


def test_spring_festival_2026_trace_names_the_make_up_saturday_and_the_holiday() -> None:
    # given / when
    deadline = CALENDAR.add_working_days(date(2026, 2, 12), 3)

    # then
    assert deadline.trace == (
        "start: 2026-02-12 (Thu), not counted (Civil Code Art 201)",
        "1: 2026-02-13 (Fri)",
        "2: 2026-02-14 (Sat), make-up workday for Spring Festival",
        "skipped 2026-02-15..2026-02-23: Spring Festival holiday",
        "3: 2026-02-24 (Tue)",
        "due: 2026-02-24",
    )


# --- Calendar days ----------------------------------------------------------------------------


def test_calendar_days_ending_in_the_national_day_holiday_move_to_the_next_working_day() -> None:
    # given a start whose 20th calendar day is Sunday 5 October 2025, inside the holiday
    start = date(2025, 9, 15)

    # when
    deadline = CALENDAR.add_calendar_days(start, 20)

    # then the deadline moves to Thursday 9 October, and the trace says so
    assert deadline == Deadline(
        due=date(2025, 10, 9),
        unit="calendar",
        amount=20,
        start=start,
        trace=(
            "start: 2025-09-15 (Mon), not counted (Civil Code Art 201)",
            "day 20: 2025-10-05 (Sun), not a working day",
            "skipped 2025-10-05..2025-10-08: National Day and Mid-autumn Festival holiday",
            "moved to the next working day (Civil Code Art 203): 2025-10-09 (Thu)",
            "due: 2025-10-09",
        ),
    )


def test_calendar_days_ending_on_a_working_day_do_not_move() -> None:
    # given a start whose 20th calendar day is an ordinary Monday
    start = date(2025, 3, 4)

    # when
    deadline = CALENDAR.add_calendar_days(start, 20)

    # then
    assert deadline == Deadline(
        due=date(2025, 3, 24),
        unit="calendar",
        amount=20,
        start=start,
        trace=(
            "start: 2025-03-04 (Tue), not counted (Civil Code Art 201)",
            "day 20: 2025-03-24 (Mon), a working day",
            "due: 2025-03-24",
        ),
    )


def test_calendar_days_ending_on_a_make_up_saturday_do_not_move() -> None:
    # given / when the 10th calendar day is Saturday 11 October 2025, a make-up workday
    deadline = CALENDAR.add_calendar_days(date(2025, 10, 1), 10)

    # then
    assert deadline.due == date(2025, 10, 11)
    assert deadline.trace == (
        "start: 2025-10-01 (Wed), not counted (Civil Code Art 201)",
        "day 10: 2025-10-11 (Sat), make-up workday for National Day, a working day",
        "due: 2025-10-11",
    )


def test_calendar_days_ending_on_an_ordinary_saturday_move_to_monday() -> None:
    # given / when
    deadline = CALENDAR.add_calendar_days(date(2025, 3, 1), 14)

    # then
    assert deadline.due == date(2025, 3, 17)
    assert deadline.trace == (
        "start: 2025-03-01 (Sat), not counted (Civil Code Art 201)",
        "day 14: 2025-03-15 (Sat), not a working day",
        "skipped 2025-03-15..2025-03-16: weekend",
        "moved to the next working day (Civil Code Art 203): 2025-03-17 (Mon)",
        "due: 2025-03-17",
    )


def test_calendar_days_ending_on_an_override_holiday_move_past_it() -> None:
    # given an administrator's 2027 schedule in which Friday 1 and Monday 4 January are days off
    calendar = _calendar_2027()

    # when the 10th calendar day is Friday 1 January 2027
    deadline = calendar.add_calendar_days(date(2026, 12, 22), 10)

    # then the period ends on Tuesday 5 January, the first working day after the run of days off
    assert deadline.due == date(2027, 1, 5)
    assert deadline.trace == (
        "start: 2026-12-22 (Tue), not counted (Civil Code Art 201)",
        "day 10: 2027-01-01 (Fri), not a working day",
        f"skipped 2027-01-01..2027-01-04: day off per {NOTICE}, weekend",
        "moved to the next working day (Civil Code Art 203): 2027-01-05 (Tue)",
        "due: 2027-01-05",
    )


def test_calendar_days_need_the_schedule_of_the_last_day_only() -> None:
    # given a calendar that knows one day of 2027 and not the rest of that year
    calendar = WorkingCalendar(
        overrides=[DayOverride(day=date(2027, 1, 5), working=True, source=NOTICE)]
    )

    # when the period crosses unknown days and ends on the known one
    deadline = calendar.add_calendar_days(date(2026, 12, 31), 5)

    # then the days in between are counted whatever they are
    assert deadline.due == date(2027, 1, 5)
    assert deadline.trace == (
        "start: 2026-12-31 (Thu), not counted (Civil Code Art 201)",
        f"day 5: 2027-01-05 (Tue), working day per {NOTICE}, a working day",
        "due: 2027-01-05",
    )


# --- Years without data and administrator overrides --------------------------------------------


def test_a_year_without_data_is_counted_provisionally_without_its_computed_holidays() -> None:
    # given a calendar without overrides, and 2027, which the package does not cover
    calendar = WorkingCalendar()

    # when / then: Monday to Friday less the statutory holidays computed for 2027
    assert calendar.is_year_known(2027) is False
    assert calendar.is_working_day(date(2027, 3, 1)) is True  # Mon
    assert calendar.is_working_day(date(2027, 3, 6)) is False  # Sat
    assert calendar.is_working_day(date(2027, 2, 8)) is False  # Mon, Spring Festival
    assert calendar.is_working_day(date(2027, 10, 1)) is False  # Fri, National Day
    assert calendar.is_provisional(date(2027, 3, 1)) is True
    assert calendar.is_provisional(date(2026, 3, 2)) is False


def test_a_working_day_deadline_into_an_unknown_year_is_provisional_and_says_why() -> None:
    # given no 2027 schedule; 28 Dec 2026 + 5 working days runs into January 2027
    calendar = WorkingCalendar()

    # when
    deadline = add(calendar, start=date(2026, 12, 28), amount=5, unit="working")

    # then New Year's Day 2027 (Fri) is skipped as a computed holiday, and the trace says so
    assert deadline.due == date(2027, 1, 5)
    assert deadline.provisional_years == (2027,)
    assert deadline.provisional is True
    assert deadline.trace == (
        "start: 2026-12-28 (Mon), not counted (Civil Code Art 201)",
        "1: 2026-12-29 (Tue)",
        "2: 2026-12-30 (Wed)",
        "3: 2026-12-31 (Thu)",
        "skipped 2027-01-01..2027-01-03: New Year's Day holiday, weekend",
        "4: 2027-01-04 (Mon)",
        "5: 2027-01-05 (Tue)",
        "due: 2027-01-05",
        "provisional: no State Council schedule is known for 2027; its days were counted Monday "
        "to Friday less the computed statutory holidays, without make-up workdays; recomputed "
        "when an administrator completes the year",
    )


def test_a_calendar_day_deadline_is_provisional_only_when_its_end_is_unknown() -> None:
    calendar = WorkingCalendar()

    # 20 calendar days from 20 Dec 2026 end on 9 Jan 2027 (Sat): moved to Monday 11 Jan
    late = add(calendar, start=date(2026, 12, 20), amount=20, unit="calendar")
    # 10 calendar days from 1 Dec 2026 end inside 2026
    early = add(calendar, start=date(2026, 12, 1), amount=10, unit="calendar")

    assert (late.due, late.provisional_years) == (date(2027, 1, 11), (2027,))
    assert (early.due, early.provisional_years) == (date(2026, 12, 11), ())
    assert early.trace[-1] == "due: 2026-12-11"


def test_a_complete_year_is_not_provisional() -> None:
    calendar = _calendar_2027()

    deadline = calendar.add_working_days(date(2026, 12, 30), 7)

    assert calendar.is_year_known(2027) is True
    assert deadline.provisional_years == ()


def test_a_complete_year_follows_its_overrides_and_monday_to_friday_rules() -> None:
    # given an administrator's 2027 schedule, the year marked complete
    calendar = _calendar_2027()

    # when / then: overrides are honoured, the other days follow Monday-to-Friday rules
    assert calendar.is_working_day(date(2027, 1, 1)) is False  # Fri, holiday by override
    assert calendar.is_working_day(date(2027, 1, 4)) is False  # Mon, holiday by override
    assert calendar.is_working_day(date(2027, 1, 9)) is True  # Sat, workday by override
    assert calendar.is_working_day(date(2027, 1, 5)) is True  # Tue
    assert calendar.is_working_day(date(2027, 1, 10)) is False  # Sun
    assert calendar.is_working_day(date(2027, 12, 31)) is True  # Fri


def test_working_days_across_into_a_complete_year_name_the_overrides() -> None:
    # given
    calendar = _calendar_2027()

    # when
    deadline = calendar.add_working_days(date(2026, 12, 30), 7)

    # then
    assert deadline.due == date(2027, 1, 11)
    assert deadline.trace == (
        "start: 2026-12-30 (Wed), not counted (Civil Code Art 201)",
        "1: 2026-12-31 (Thu)",
        f"skipped 2027-01-01..2027-01-04: day off per {NOTICE}, weekend",
        "2: 2027-01-05 (Tue)",
        "3: 2027-01-06 (Wed)",
        "4: 2027-01-07 (Thu)",
        "5: 2027-01-08 (Fri)",
        f"6: 2027-01-09 (Sat), working day per {NOTICE}",
        "skipped 2027-01-10 (Sun): weekend",
        "7: 2027-01-11 (Mon)",
        "due: 2027-01-11",
    )


def test_overrides_win_inside_a_year_the_package_covers() -> None:
    # given overrides that contradict the package in 2026
    calendar = WorkingCalendar(
        overrides=[
            DayOverride(day=date(2026, 10, 7), working=True, source=NOTICE),  # package: holiday
            DayOverride(day=date(2026, 10, 9), working=False, source=NOTICE),  # package: Fri
        ]
    )

    # when
    deadline = calendar.add_working_days(date(2026, 9, 30), 3)

    # then
    assert calendar.is_working_day(date(2026, 10, 7)) is True
    assert calendar.is_working_day(date(2026, 10, 9)) is False
    assert deadline.due == date(2026, 10, 10)
    assert deadline.trace == (
        "start: 2026-09-30 (Wed), not counted (Civil Code Art 201)",
        "skipped 2026-10-01..2026-10-06: National Day holiday",
        f"1: 2026-10-07 (Wed), working day per {NOTICE}",
        "2: 2026-10-08 (Thu)",
        f"skipped 2026-10-09 (Fri): day off per {NOTICE}",
        "3: 2026-10-10 (Sat), make-up workday for National Day",
        "due: 2026-10-10",
    )


def test_an_override_answers_for_its_own_day_even_in_an_incomplete_year() -> None:
    # given one 2027 override (a make-up Saturday), the year not marked complete
    calendar = WorkingCalendar(
        overrides=[DayOverride(day=date(2027, 1, 9), working=True, source=NOTICE)]
    )

    # when / then the overridden day is definite, its neighbour provisional
    assert calendar.is_working_day(date(2027, 1, 9)) is True
    assert calendar.is_provisional(date(2027, 1, 9)) is False
    assert calendar.is_provisional(date(2027, 1, 8)) is True


def test_two_overrides_for_the_same_day_are_refused() -> None:
    with pytest.raises(ValueError, match="More than one override for 2026-10-09"):
        WorkingCalendar(
            overrides=[
                DayOverride(day=date(2026, 10, 9), working=False, source=NOTICE),
                DayOverride(day=date(2026, 10, 9), working=True, source="another notice"),
            ]
        )


def test_an_override_must_cite_its_notice() -> None:
    with pytest.raises(ValueError, match="must name its notice"):
        DayOverride(day=date(2026, 10, 9), working=False, source="  ")


# --- Arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [0, -1, -20])
@pytest.mark.parametrize("unit", ["working", "calendar"])
def test_an_amount_below_one_is_refused(amount: int, unit: str) -> None:
    with pytest.raises(ValueError, match=f"at least one day, not {amount}"):
        add(CALENDAR, start=date(2025, 9, 29), amount=amount, unit=unit)


@pytest.mark.parametrize("amount", [0, -1])
def test_the_methods_refuse_an_amount_below_one(amount: int) -> None:
    with pytest.raises(ValueError, match="at least one day"):
        CALENDAR.add_working_days(date(2025, 9, 29), amount)
    with pytest.raises(ValueError, match="at least one day"):
        CALENDAR.add_calendar_days(date(2025, 9, 29), amount)


@pytest.mark.parametrize("unit", ["", "Working", "days", "natural"])
def test_an_unknown_unit_is_refused(unit: str) -> None:
    with pytest.raises(ValueError, match="Unknown day unit"):
        add(CALENDAR, start=date(2025, 9, 29), amount=5, unit=unit)


def test_add_dispatches_on_the_unit() -> None:
    # given / when
    working = add(CALENDAR, start=date(2025, 9, 29), amount=5, unit="working")
    calendar_days = add(CALENDAR, start=date(2025, 9, 15), amount=20, unit="calendar")

    # then
    assert working == CALENDAR.add_working_days(date(2025, 9, 29), 5)
    assert calendar_days == CALENDAR.add_calendar_days(date(2025, 9, 15), 20)
    assert (working.due, calendar_days.due) == (date(2025, 10, 13), date(2025, 10, 9))


def test_a_datetime_is_refused_because_its_day_depends_on_the_time_zone() -> None:
    moment = datetime(2025, 9, 29, 23, 30)  # noqa: DTZ001 - the value is refused either way

    with pytest.raises(TypeError, match=r"must be a datetime\.date, not datetime"):
        CALENDAR.add_working_days(moment, 5)
    with pytest.raises(TypeError, match=r"must be a datetime\.date, not datetime"):
        CALENDAR.is_working_day(moment)


# --- working_days_between -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (date(2025, 9, 29), date(2025, 10, 13), 5),
        (date(2025, 9, 29), date(2025, 10, 12), 4),
        (date(2025, 9, 30), date(2025, 10, 8), 0),  # the whole holiday
        (date(2025, 9, 29), date(2025, 9, 29), 0),  # empty interval
        (date(2025, 10, 13), date(2025, 9, 29), 0),  # end before start
        (date(2025, 9, 27), date(2025, 9, 28), 1),  # the make-up Sunday counts
    ],
)
def test_working_days_between_counts_the_interval_excluding_start_including_end(
    start: date, end: date, expected: int
) -> None:
    assert CALENDAR.working_days_between(start, end) == expected


# --- Caching ------------------------------------------------------------------------------------


def test_the_package_is_consulted_once_per_day(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a fresh calendar and a spy that counts the package look-ups (and still answers)
    looked_up: list[date] = []
    real = chinese_calendar.get_holiday_detail

    def spy(day: date) -> object:
        looked_up.append(day)
        return real(day)

    monkeypatch.setattr(chinese_calendar, "get_holiday_detail", spy)
    calendar = WorkingCalendar()

    # when the same days are asked about repeatedly, through every entry point
    for _ in range(3):
        calendar.add_working_days(date(2025, 9, 29), 5)
        calendar.add_calendar_days(date(2025, 9, 15), 20)
        calendar.working_days_between(date(2025, 9, 29), date(2025, 10, 13))
        calendar.is_working_day(date(2025, 10, 1))

    # then each day from 30 September to 13 October was looked up exactly once
    assert sorted(looked_up) == _days(date(2025, 9, 30), date(2025, 10, 13))


# --- Properties ---------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(start=STARTS, amount=AMOUNTS)
def test_adding_working_days_lands_on_the_nth_working_day_after_start(
    start: date, amount: int
) -> None:
    # when
    deadline = CALENDAR.add_working_days(start, amount)

    # then
    assert deadline.due > start
    assert CALENDAR.is_working_day(deadline.due) is True
    assert CALENDAR.working_days_between(start, deadline.due) == amount
    assert CALENDAR.working_days_between(start, deadline.due - timedelta(days=1)) == amount - 1
    assert (deadline.unit, deadline.amount, deadline.start) == ("working", amount, start)
    assert deadline.trace[-1] == f"due: {deadline.due.isoformat()}"


@PROPERTY_SETTINGS
@given(start=STARTS, amount=AMOUNTS)
def test_the_trace_counts_each_working_day_once_in_order(start: date, amount: int) -> None:
    # when
    deadline = CALENDAR.add_working_days(start, amount)

    # then
    counted = _counted_lines(deadline)
    working_days = [
        day
        for day in _days(start + timedelta(days=1), deadline.due)
        if CALENDAR.is_working_day(day)
    ]
    assert counted == list(enumerate(working_days, start=1))
    skipped_lines = [line for line in deadline.trace if line.startswith("skipped ")]
    assert len(deadline.trace) == 2 + amount + len(skipped_lines)


@PROPERTY_SETTINGS
@given(start=STARTS, first=AMOUNTS, second=AMOUNTS)
def test_adding_n_then_m_working_days_equals_adding_n_plus_m(
    start: date, first: int, second: int
) -> None:
    # when
    in_two_steps = CALENDAR.add_working_days(CALENDAR.add_working_days(start, first).due, second)
    in_one_step = CALENDAR.add_working_days(start, first + second)

    # then
    assert in_two_steps.due == in_one_step.due


@PROPERTY_SETTINGS
@given(start=STARTS, amount=AMOUNTS)
def test_calendar_days_move_only_off_a_day_off(start: date, amount: int) -> None:
    # given
    last = start + timedelta(days=amount)

    # when
    deadline = CALENDAR.add_calendar_days(start, amount)

    # then
    assert deadline.due >= last
    assert CALENDAR.is_working_day(deadline.due) is True
    assert (deadline.unit, deadline.amount, deadline.start) == ("calendar", amount, start)
    if CALENDAR.is_working_day(last):
        assert deadline.due == last
        assert len(deadline.trace) == 3
    else:
        assert deadline.due == CALENDAR.add_working_days(last, 1).due
        assert deadline.trace[-2].startswith(
            f"moved to the next working day (Civil Code Art 203): {deadline.due.isoformat()} ("
        )
    assert deadline.trace[-1] == f"due: {deadline.due.isoformat()}"


@PROPERTY_SETTINGS
@given(
    first=st.dates(min_value=date(2019, 1, 1), max_value=date(2026, 12, 31)),
    second=st.dates(min_value=date(2019, 1, 1), max_value=date(2026, 12, 31)),
    third=st.dates(min_value=date(2019, 1, 1), max_value=date(2026, 12, 31)),
)
def test_working_days_between_adds_up_over_consecutive_intervals(
    first: date, second: date, third: date
) -> None:
    # given three ordered days
    start, middle, end = sorted((first, second, third))

    # when / then
    assert CALENDAR.working_days_between(start, end) == (
        CALENDAR.working_days_between(start, middle) + CALENDAR.working_days_between(middle, end)
    )


def test_the_calendar_agrees_with_the_package_on_every_day_from_2019_to_2026() -> None:
    for day in _days(date(2019, 1, 1), date(2026, 12, 31)):
        assert CALENDAR.is_working_day(day) is chinese_calendar.is_workday(day), day
